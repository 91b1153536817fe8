"""Alembic, driven from code: ``voicewatch migrate`` and first start both call ``migrate``.

Migrating must be safe when many start at once: threads of one process (the
web app's first requests, the emitter's writer) and processes (two servers
and two workers started together on a fresh database). So:

- a process-wide lock, because Alembic keeps its migration context in one
  module-level global (two threads upgrading at once fail with
  ``KeyError: 'config'``);
- a cheap read first: a store already at the wanted revision takes no lock at
  all, so a worker's start never holds SQLite's write lock;
- otherwise the upgrade runs inside one write transaction that serialises
  processes: ``BEGIN IMMEDIATE`` on SQLite, a transaction-scoped advisory lock
  on PostgreSQL. The second process in finds the schema at head and does
  nothing. DDL is transactional on both, so a failed upgrade leaves nothing.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from voicewatch.store.engine import make_engine, read_connection, write_transaction

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: ``pg_advisory_xact_lock`` key of schema migrations ("vwmigrat" in ASCII, folded to 63 bits).
_PG_MIGRATION_LOCK = 0x76776D6967726174 & 0x7FFFFFFFFFFFFFFF
_process_lock = threading.Lock()


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


@cache
def _heads() -> frozenset[str]:
    """The head revisions of our migration scripts (read once per process)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def is_current(engine: Engine, revision: str = "head") -> bool:
    """True when the store is already at ``revision`` (one read, no lock)."""
    wanted = _heads() if revision == "head" else frozenset({revision})
    with read_connection(engine) as conn:
        current = frozenset(MigrationContext.configure(conn).get_current_heads())
        conn.rollback()
    return current == wanted


def migrate(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (idempotent, safe to run concurrently)."""
    with _process_lock:
        if is_current(engine, revision):
            return
        with write_transaction(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def open_store(url: str, *, busy_timeout_ms: int = 5000, run_migrations: bool = True) -> Engine:
    """An engine for ``url``, with the schema created or upgraded on first use."""
    engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
    if run_migrations:
        migrate(engine)
    return engine
