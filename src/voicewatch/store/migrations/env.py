"""Alembic environment: runs on the engine handed in by ``voicewatch.store.migrate``."""

from __future__ import annotations

from alembic import context

from voicewatch.store.engine import make_engine
from voicewatch.store.tables import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        # ``store.migrate`` hands in a connection inside its own write transaction
        # (the lock that serialises concurrent migrations); it commits.
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = config.attributes.get("engine")
    if engine is None:  # plain `alembic` CLI use, e.g. autogenerate
        engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///alembic.db")
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
