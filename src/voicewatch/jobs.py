"""The periodic jobs, each idempotent and run once per slot however many workers run.

Times are UTC (DESIGN.md "Jobs"): hourly aggregation at :30 for the previous
hour (and any hour missed while no worker ran), daily aggregation at 01:30,
the health check every 5 minutes, retention cleanup on Sundays at 04:30.

A transient store error (a locked SQLite file, a PostgreSQL restart) before
the claim has the queue run the job again later; after it, the job retries in
place. Either way a job that meets one does not wait for its next slot.

"Once" comes from ``job_runs``: a worker first claims ``(job, slot)`` with an
insert that only one transaction can win; the others skip. The work itself is
idempotent too (snapshots are replaced, alerts deduped), so a slot claimed by
a worker that then died is simply caught up by the next run.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.dialects import postgresql, sqlite

from voicewatch.clock import MINUTE_MS, day_start, hour_window, now_ms, to_datetime
from voicewatch.config import AlertThresholds, Settings
from voicewatch.store import write_transaction
from voicewatch.store.tables import job_runs
from voicewatch.store.transient import retrying

log = logging.getLogger("voicewatch.jobs")
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}"


def claim(engine: Engine, job: str, run_key: str, *, now: int | None = None) -> bool:
    """Claim one run of ``job`` for ``run_key``; True for exactly one caller."""
    stamp = now_ms() if now is None else now
    with write_transaction(engine) as conn:
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        won = conn.execute(
            dialect.insert(job_runs)
            .values(job=job, run_key=run_key, started_at=stamp, worker=WORKER_NAME)
            .on_conflict_do_nothing(index_elements=["job", "run_key"])
            .returning(job_runs.c.job)
        ).first()
        return won is not None


def run_once(engine: Engine, job: str, run_key: str, work: Callable[[], Any]) -> Any:
    """Run ``work`` if this worker wins ``(job, run_key)``; returns its result or None."""
    if not claim(engine, job, run_key):
        log.info("%s %s already ran elsewhere", job, run_key)
        return None
    # From here the slot is ours and nobody else will run it, so a transient
    # store error is retried in place (the work is idempotent); a transient
    # error before the claim goes back to the queue instead (``tasks``).
    result = retrying(work, f"{job} {run_key}")

    def finish() -> None:
        with write_transaction(engine) as conn:
            conn.execute(
                update(job_runs)
                .where(job_runs.c.job == job, job_runs.c.run_key == run_key)
                .values(finished_at=now_ms())
            )

    retrying(finish, f"{job} {run_key} (marking it finished)")
    return result


def hourly_aggregation(engine: Engine, now: int | None = None) -> list[int] | None:
    """Snapshots of the previous hour and of every hour missed since."""
    from voicewatch.metrics import catch_up_hours

    now = now_ms() if now is None else now
    return run_once(
        engine, "aggregate_hourly", hour_window(now), lambda: catch_up_hours(engine, now)
    )


def daily_aggregation(engine: Engine, now: int | None = None) -> list[int] | None:
    """Snapshots of the previous day (from its hours) and of every day missed since."""
    from voicewatch.metrics import catch_up_days

    now = now_ms() if now is None else now
    key = to_datetime(day_start(now)).strftime("%Y-%m-%d")
    return run_once(engine, "aggregate_daily", key, lambda: catch_up_days(engine, now))


def health_check(
    engine: Engine, thresholds: AlertThresholds | None = None, now: int | None = None
) -> Any:
    """The alert rules (with ``thresholds``, else the settings'), once per 5-minute slot."""
    from voicewatch import alerts

    now = now_ms() if now is None else now
    slot = now - now % (5 * MINUTE_MS)
    key = to_datetime(slot).strftime("%Y-%m-%dT%H:%M")
    return run_once(
        engine, "check_health", key, lambda: alerts.check_health(engine, now, thresholds)
    )


def retention_cleanup(engine: Engine, settings: Settings, now: int | None = None) -> Any:
    """Delete what retention no longer keeps (strictly older than each cutoff)."""
    from voicewatch.metrics import cleanup

    now = now_ms() if now is None else now
    key = to_datetime(day_start(now)).strftime("%Y-%m-%d")
    return run_once(
        engine,
        "cleanup",
        key,
        lambda: cleanup(
            engine,
            now,
            event_days=settings.event_retention_days,
            hourly_days=settings.hourly_retention_days,
            daily_days=settings.daily_retention_days,
        ),
    )


def stale_recovery(engine: Engine, recover: Callable[[int], Any], now: int | None = None) -> Any:
    """Fail artifacts whose worker died mid-stage, requeue lost tasks, once per 5 minutes.

    ``recover(now)`` is the pipeline's recovery, bound to its context by the
    composition root (``voicewatch.worker``): the jobs know no pipeline.
    """
    now = now_ms() if now is None else now
    slot = now - now % (5 * MINUTE_MS)
    key = to_datetime(slot).strftime("%Y-%m-%dT%H:%M")
    return run_once(engine, "stale_recovery", key, lambda: recover(now))
