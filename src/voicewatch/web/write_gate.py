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
long (another process) never makes a queue that grows without end. A wait
that runs out, like a transient store error (SQLite busy, PostgreSQL
restarting), is retried with the bounded backoff of ``store.transient``
(``run``); only when the retries are spent does the client get the 503 with
``Retry-After``. PostgreSQL has row locks and needs no gate (its writes are
still retried).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from fastapi import Request
from sqlalchemy import Engine

from voicewatch.store.transient import WEB_RETRY, Backoff, StoreBusy, is_transient, retrying
from voicewatch.web.errors import ApiError

T = TypeVar("T")


def busy() -> ApiError:
    """The answer when the store stayed busy or unavailable through every retry."""
    return ApiError(503, "the database is busy; try again", headers={"Retry-After": "1"})


class WriteGate:
    """``gate.run(work, what)`` (or ``with gate.held():``) around a request's write."""

    def __init__(self, engine: Engine, timeout_s: float, policy: Backoff = WEB_RETRY) -> None:
        self._lock = threading.Lock() if engine.dialect.name == "sqlite" else None
        self.timeout_s = timeout_s
        self.policy = policy

    @property
    def serializes(self) -> bool:
        """True when writers really take turns here (SQLite)."""
        return self._lock is not None

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the gate; ``StoreBusy`` (transient) when the wait passes the busy timeout."""
        if self._lock is None:
            yield
            return
        if not self._lock.acquire(timeout=self.timeout_s):
            raise StoreBusy(f"waited {self.timeout_s:g} s for this server's turn to write")
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def held(self) -> Iterator[None]:
        """One try: hold the gate, or 503 with ``Retry-After`` after the busy timeout."""
        try:
            with self.turn():
                yield
        except StoreBusy as exc:
            raise busy() from exc

    def run(self, work: Callable[[], T], what: str) -> T:
        """``work()`` with the gate held, tried again (gate released in between) after
        each transient store error; 503 with ``Retry-After`` only once the retries are
        spent. Other errors (bad data, a full disk) come out as they are."""

        def once() -> T:
            with self.turn():
                return work()

        try:
            return retrying(once, what, self.policy)
        except Exception as exc:
            if is_transient(exc):
                raise busy() from exc
            raise


def write_gate(request: Request) -> WriteGate:
    """The app's gate (made by ``create_app``)."""
    return request.app.state.write_gate  # type: ignore[no-any-return]
