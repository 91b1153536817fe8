"""Engine set-up for the two supported databases.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so readers
never block the writer and a second writer waits instead of failing at once.
Write transactions on SQLite start with ``BEGIN IMMEDIATE`` (see
``write_transaction``): taking the write lock up front means two writers queue
on the busy timeout rather than deadlocking when both try to upgrade a read
lock. PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from voicewatch.store import write_stats
from voicewatch.store.checkpoint import (
    WAL_CHECKPOINT_BYTES,
    ensure_checkpointer,
    finish_in_writer,
    stop_checkpointer,
    tail_wanted,
)

#: Page size of new SQLite stores (see ``_configure_sqlite``).
SQLITE_PAGE_SIZE = 4096


def normalize_url(url: str) -> str:
    """Map user-facing URLs onto SQLAlchemy drivers (``postgresql://`` -> psycopg 3)."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def make_engine(url: str, *, busy_timeout_ms: int = 5000, pool: bool = True) -> Engine:
    """Create an engine for ``url`` with voicewatch's connection settings."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.database and parsed.database != ":memory:":
            from pathlib import Path

            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_ms / 1000}
        if not pool:
            kwargs["poolclass"] = NullPool
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, busy_timeout_ms)
        if parsed.database and parsed.database != ":memory:":
            database = parsed.database
            # the file's checkpointer (started by the first write) ends with the engine
            event.listen(engine, "engine_disposed", lambda _engine: stop_checkpointer(database))
        return engine
    kwargs["pool_pre_ping"] = True
    kwargs["pool_size"] = 10
    kwargs["max_overflow"] = 20
    if not pool:
        kwargs = {"future": True, "poolclass": NullPool}
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
        # implicit BEGIN cannot be made IMMEDIATE).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # Takes effect only while the file is still empty (a new store). Each
        # batch of events dirties a page per scattered index entry (random
        # event ids), and every dirty page is written to the WAL at commit, so
        # small pages win once the store is large: measured at 600k-700k events
        # stored, 4 KB pages ingest 15,000-17,500 events/s, 32 KB ones 13,000-14,000
        # (32 KB only wins on a nearly empty file).
        cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # Fewer, larger WAL checkpoints (every ~40 MB of WAL) and a 64 MB page
        # cache: measured +15% ingest. The checkpoints are made by a thread of
        # their own, not inside some writer's COMMIT (``store.checkpoint``).
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        # once the WAL starts over, its file is cut back to the threshold (disk bound)
        cursor.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: ``BEGIN IMMEDIATE`` on SQLite, plain on PostgreSQL.

    How long it held the lock (from ``BEGIN`` returning to the end of the
    commit) goes to ``write_stats``, which keeps this process's longest.
    """
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            database = engine.url.database
            if database and database != ":memory:":
                ensure_checkpointer(database)
        with conn.begin():
            held_from = time.perf_counter()
            try:
                yield conn
            except BaseException:
                held_from = -1.0  # rolled back: not a transaction that wrote
                raise
        if held_from >= 0:
            held_ms = (time.perf_counter() - held_from) * 1000
            if held_ms > write_stats.longest()["ms"]:
                write_stats.record(held_ms, _caller())
            else:
                write_stats.record(held_ms, "")
            database = engine.url.database
            if is_sqlite(engine) and database and tail_wanted(database):
                finish_in_writer(database, conn.connection.driver_connection)


def _caller() -> str:
    """``module.function`` of the code that opened the write transaction."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename in (__file__, contextlib.__file__):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "?"
    module = frame.f_globals.get("__name__", "?")
    return f"{module}.{frame.f_code.co_qualname}"


@contextmanager
def read_connection(engine: Engine) -> Iterator[Connection]:
    """A connection for reads (deferred transaction; never takes the write lock)."""
    with engine.connect() as conn:
        yield conn
