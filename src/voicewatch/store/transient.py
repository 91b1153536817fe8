"""Transient store errors: which ones pass if you wait, and how long to wait.

A locked SQLite file (another writer held the lock past the busy timeout), a
PostgreSQL connection cut by a restart, a server still starting up, a
serialization failure or a deadlock: each goes away by itself, so the work
is tried again after a bounded, growing delay instead of failing a note or a
request. Anything else (bad data, a bug, a full disk) is *not* transient: it
fails at once, with its own message, because waiting would not help.

One policy object (``Backoff``) is used three ways: the task queue turns its
delays into Huey retries (``tasks``), a stage that holds its claim retries a
store step in place (``retrying``), and the web app retries a request's write
before it answers 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger("voicewatch.transient")
T = TypeVar("T")

#: SQLite's words for "another connection holds the lock" (SQLITE_BUSY / SQLITE_LOCKED).
_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")
#: PostgreSQL SQLSTATEs that pass: connection exceptions (class 08), serialization
#: failure, deadlock, lock not available, too many connections, and the server
#: shutting down, crashing or still starting (57P01-57P03).
_PG_TRANSIENT = {"40001", "40P01", "55P03", "53300", "57P01", "57P02", "57P03"}


class StoreBusy(Exception):
    """A writer waited its turn for longer than the busy timeout (a transient error)."""


def _sqlstate(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    return str(state) if state else None


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, the DBAPI error SQLAlchemy wrapped, and their causes (at most 5 deep)."""
    seen: list[BaseException] = []
    stack: list[BaseException | None] = [exc]
    while stack and len(seen) < 5:
        item = stack.pop(0)
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        stack += [getattr(item, "orig", None), item.__cause__, item.__context__]
    return seen


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is a store error that waiting a moment can cure."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    for error in _causes(exc):
        if isinstance(error, StoreBusy | sa_exc.DisconnectionError | sa_exc.TimeoutError):
            return True
        if isinstance(error, sqlite3.OperationalError):
            return any(words in str(error) for words in _SQLITE_BUSY)
        state = _sqlstate(error)
        if state is not None:
            return state.startswith("08") or state in _PG_TRANSIENT
        if type(error).__module__.startswith("psycopg") and isinstance(error, Exception):
            # psycopg raises OperationalError without a SQLSTATE when the
            # connection itself fails: refused, reset, closed by the server.
            return type(error).__name__ == "OperationalError"
    return False


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (for one-line logs and reasons)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__


@dataclass(frozen=True)
class Backoff:
    """Up to ``retries`` more tries, ``first_s`` apart, then ``factor`` times longer each,
    never more than ``max_s`` (seconds)."""

    retries: int = 8
    first_s: float = 0.5
    factor: float = 2.0
    max_s: float = 8.0

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (0-based)."""
        return float(min(self.max_s, self.first_s * self.factor ** max(0, retry)))

    def total_s(self) -> float:
        """The longest time spent waiting between tries (not counting the tries)."""
        return sum(self.delay(n) for n in range(self.retries))


#: Stage tasks and periodic jobs (Huey retries; in place after a stage's claim):
#: 0.5 + 1 + 2 + 4 + 8 x 4 = 39.5 s of waiting, plus each try's own busy timeout.
QUEUE_RETRY = Backoff(retries=8, first_s=0.5, factor=2.0, max_s=8.0)
#: A web request's write: 0.2 + 0.4 + 0.8 + 1.6 = 3 s of waiting plus each try's
#: busy timeout, then 503 with Retry-After (a client waits, it does not hang).
WEB_RETRY = Backoff(retries=4, first_s=0.2, factor=2.0, max_s=2.0)


def retrying(
    work: Callable[[], T],
    what: str,
    policy: Backoff = QUEUE_RETRY,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``work()``, tried again after each transient store error until ``policy`` is spent.

    Each retry is logged (``what`` says what was retried). The last error, or
    the first that is not transient, is raised as it came.
    """
    for retry in range(policy.retries + 1):
        try:
            return work()
        except Exception as exc:
            if retry >= policy.retries or not is_transient(exc):
                raise
            delay = policy.delay(retry)
            log.warning(
                "voicewatch: %s: transient store error (%s); retry %d of %d in %.1f s",
                what,
                first_line(exc),
                retry + 1,
                policy.retries,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
