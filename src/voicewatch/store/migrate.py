"""Alembic, driven from code: ``voicewatch migrate`` and first start both call ``migrate``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from voicewatch.store.engine import make_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def open_store(url: str, *, busy_timeout_ms: int = 5000, run_migrations: bool = True) -> Engine:
    """An engine for ``url``, with the schema created or upgraded on first use."""
    engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
    if run_migrations:
        migrate(engine)
    return engine
