"""Group commit: ingest requests that arrive together share one SQLite transaction.

Each ``log_events`` call pays fixed costs (take the write lock, find new ids,
upsert artifact states and counters, commit: about 2 ms on SQLite) on top of
its per-event work, and a server's SQLite writers take turns anyway (see
``write_gate``). So while one batch is being written, the requests that
arrive queue here; the next one to get the gate writes all of them in one
``log_events`` call (up to ``MAX_GROUP_EVENTS``) and hands each request its
own share of the result. A failure of that transaction fails every request
of the group: nothing is half-written. Each request then tries again on its
own after a transient store error (``store.transient``), and answers 503
with ``Retry-After`` only once its retries are spent.

PostgreSQL needs no gate and writes each request on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from voicewatch import events
from voicewatch.store.transient import StoreBusy, is_transient, retrying
from voicewatch.validation import Invalid
from voicewatch.web.write_gate import WriteGate, busy

#: Most events written in one grouped transaction.
MAX_GROUP_EVENTS = 5000


@dataclass(eq=False)  # jobs are told apart by identity, not by their items
class _Job:
    items: Sequence[Any]
    checked: Collection[int] = ()  # indexes of items that are rows already (log_events)
    done: threading.Event = field(default_factory=threading.Event)
    result: events.LogResult | None = None
    error: BaseException | None = None


class GroupCommit:
    """``store(items)`` from a request thread; returns that request's ``LogResult``."""

    def __init__(self, engine: Engine, gate: WriteGate) -> None:
        self._engine = engine
        self._gate = gate
        self._lock = threading.Lock()
        self._pending: list[_Job] = []

    def store(self, items: Sequence[Any], checked: Collection[int] = ()) -> events.LogResult:
        """This request's share of a grouped write, tried again after a transient
        store error (``store.transient``); 503 once the retries are spent.

        ``checked``: indexes of ``items`` that are rows valid by construction
        (``events.log_events``)."""
        try:
            return retrying(
                lambda: self._store_once(items, checked), "store events", self._gate.policy
            )
        except Exception as exc:
            if is_transient(exc):
                raise busy() from exc
            raise

    def _store_once(self, items: Sequence[Any], checked: Collection[int]) -> events.LogResult:
        if not self._gate.serializes:
            return events.log_events(self._engine, items, checked=checked)
        job = _Job(items, checked)
        with self._lock:
            self._pending.append(job)
        try:
            with self._gate.turn():
                # Groups are written while the gate is held, so here our job is
                # either finished by an earlier leader or still pending: write
                # groups, oldest first, until it is finished.
                while not job.done.is_set():
                    self._write(self._take())
        except StoreBusy:
            # The gate stayed taken past the busy timeout. Withdraw the
            # job so that what the client is told (not stored) stays true; if
            # a leader has just taken it, its answer is moments away.
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
                    raise
            job.done.wait(self._gate.timeout_s)
            if not job.done.is_set():
                raise
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self) -> list[_Job]:
        """The oldest pending jobs, up to ``MAX_GROUP_EVENTS`` events (at least one job)."""
        with self._lock:
            jobs: list[_Job] = []
            size = 0
            while self._pending:
                if jobs and size + len(self._pending[0].items) > MAX_GROUP_EVENTS:
                    break
                job = self._pending.pop(0)
                jobs.append(job)
                size += len(job.items)
            return jobs

    def _write(self, jobs: list[_Job]) -> None:
        """One transaction for ``jobs``; each gets its share of the result, or the error."""
        combined = [item for job in jobs for item in job.items]
        checked: set[int] = set()
        offset = 0
        for job in jobs:
            checked.update(offset + index for index in job.checked)
            offset += len(job.items)
        try:
            result = events.log_events(self._engine, combined, checked=checked)
        except Exception as exc:  # every request of the group answers with it
            for job in jobs:
                job.error = exc
                job.done.set()
            return
        shares = split_result(result, combined, [len(job.items) for job in jobs])
        for job, share in zip(jobs, shares, strict=True):
            job.result = share
            job.done.set()


def split_result(
    result: events.LogResult, combined: Sequence[Any], sizes: Sequence[int]
) -> list[events.LogResult]:
    """Each request's share of a grouped write, as if it had been written alone after
    the ones before it: rejected items by the request's own index; of the valid
    items, the first to carry a newly stored id is accepted, the rest duplicates."""
    rejected: dict[int, Invalid] = {r.index: r for r in result.rejected}
    fresh = set(result.accepted_ids)
    shares: list[events.LogResult] = []
    offset = 0
    for size in sizes:
        share = events.LogResult()
        for index in range(offset, offset + size):
            bad = rejected.get(index)
            if bad is not None:
                share.rejected.append(Invalid(index - offset, bad.error))
                continue
            event_id = combined[index]["event_id"]
            if event_id in fresh:
                fresh.discard(event_id)
                share.accepted += 1
                share.accepted_ids.append(event_id)
            else:
                share.duplicates += 1
        shares.append(share)
        offset += size
    return shares
