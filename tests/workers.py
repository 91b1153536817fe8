"""Each pytest-xdist worker gets its own PostgreSQL database and Redis db.

``make test`` runs the suite in two worker processes (``pytest -n 2``), one per
core. Tests truncate PostgreSQL and flush Redis between them, so two workers
sharing one database would wipe each other's rows mid-test. Worker ``gwN``
therefore uses the database ``<name>_gwN`` beside the configured one (created
on first use) and the Redis db ``<db> - N``. Without xdist (``pytest`` alone,
or ``-n 0``) the configured URLs are used unchanged.
"""

from __future__ import annotations

import functools
import os

from sqlalchemy import make_url, text

#: "gw0", "gw1", ... under pytest-xdist; "" in a plain run.
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def worker_number(worker: str) -> int:
    """0 for "gw0" (and for a plain run), 1 for "gw1", ..."""
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


def per_worker_postgres_url(url: str, worker: str) -> str:
    """The worker's own database beside ``url``'s (``test`` -> ``test_gw1``)."""
    if not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


def per_worker_redis_url(url: str, worker: str) -> str:
    """The worker's own Redis db: the configured db number minus the worker's number."""
    number = worker_number(worker)
    if number == 0:
        return url
    base, _, db = url.rpartition("/")
    if not db.isdigit() or int(db) < number:
        raise ValueError(f"cannot give worker {worker} its own Redis db below {url}")
    return f"{base}/{int(db) - number}"


@functools.cache
def ensure_postgres_database(base_url: str, url: str) -> None:
    """Create ``url``'s database (connecting through ``base_url``'s) when it is missing."""
    if url == base_url:
        return
    from voicewatch.store import make_engine

    name = make_url(url).database
    engine = make_engine(base_url, pool=False)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            ).first()
            if exists is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
