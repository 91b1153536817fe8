"""One SQLite writer at a time per server process, waiting in line in the process.

SQLite has a single write lock, and a connection that finds it taken does
not queue: its busy handler sleeps and polls (up to 100 ms a nap) until the
busy timeout. Under sustained ingest a request can lose every poll to the
writers that keep arriving and fail after the timeout with a 503, although
the database is fine (the load test, bench/bench_load.py, saw one in 9,000
batches). Here the server's own writers wait on an in-process lock instead,
woken as soon as it is free, so only one of them at a time meets SQLite's
lock (and the workers' writes, from other processes, meet one contender).

The wait is bounded by the same busy timeout, so a lock held elsewhere for
long (another process) still ends in the 503 with ``Retry-After`` clients
expect, never a queue that grows without end. PostgreSQL has row locks and
needs no gate.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import Request
from sqlalchemy import Engine

from voicewatch.web.errors import ApiError


class WriteGate:
    """``with gate.held():`` around a write transaction made for a request."""

    def __init__(self, engine: Engine, timeout_s: float) -> None:
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self.timeout_s = timeout_s

    @property
    def serializes(self) -> bool:
        """True when writers really take turns here (SQLite)."""
        return self._lock is not None

    @contextmanager
    def held(self) -> Iterator[None]:
        if self._lock is None:
            yield
            return
        if not self._lock.acquire(timeout=self.timeout_s):
            raise ApiError(503, "the database is busy; try again", headers={"Retry-After": "1"})
        try:
            yield
        finally:
            self._lock.release()


def write_gate(request: Request) -> WriteGate:
    """The app's gate (made by ``create_app``)."""
    return request.app.state.write_gate  # type: ignore[no-any-return]
