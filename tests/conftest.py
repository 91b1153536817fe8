"""Shared fixtures: real SQLite and real PostgreSQL stores, a real server.

Every store test takes the ``engine`` fixture, which is parametrised over
SQLite and PostgreSQL (``VOICEWATCH_TEST_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/test``). When PostgreSQL cannot be
reached, its tests fail under CI and are skipped, loudly, elsewhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from voicewatch.store import make_engine, migrate
from voicewatch.store.tables import metadata

POSTGRES_URL = os.environ.get(
    "VOICEWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("VOICEWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
IN_CI = bool(os.environ.get("CI"))


def _postgres_available() -> str | None:
    try:
        engine = make_engine(POSTGRES_URL, pool=False)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return f"{type(exc).__name__}: {exc}"


def require_postgres() -> None:
    """Fail under CI, skip elsewhere, when PostgreSQL is not reachable."""
    problem = _postgres_available()
    if problem:
        message = f"PostgreSQL at {POSTGRES_URL} is not reachable ({problem})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


def reset_postgres(url: str = POSTGRES_URL) -> Engine:
    """Drop every voicewatch table in the PostgreSQL test database and migrate afresh."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    migrate(engine)
    return engine


def truncate_all(engine: Engine) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


@pytest.fixture(scope="session")
def _postgres_engine() -> Iterator[Engine | None]:
    if _postgres_available():
        yield None
        return
    engine = reset_postgres()
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a new SQLite file, or the cleared PostgreSQL test DB."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'voicewatch.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url
        return
    require_postgres()
    pg = request.getfixturevalue("_postgres_engine")
    truncate_all(pg)
    yield POSTGRES_URL


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url`` (SQLite and PostgreSQL)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database URL only (for tests of the embedded default)."""
    url = f"sqlite:///{tmp_path / 'voicewatch.db'}"
    eng = make_engine(url)
    migrate(eng)
    eng.dispose()
    return url
