"""Retention: raw events, snapshots and counter buckets older than their cutoffs go.

Deletes run in many short transactions (``delete_in_batches``), so a large
purge never holds the write lock (SQLite) or many row locks (PostgreSQL) for
long, and ingestion carries on between batches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Engine, delete, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from voicewatch.clock import DAY_MS
from voicewatch.clock import now_ms as _clock_now
from voicewatch.metrics.totals import DAILY, HOURLY
from voicewatch.store import write_transaction
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t


def delete_in_batches(
    engine: Engine,
    key: Iterable[Column[Any]],
    condition: ColumnElement[bool],
    *,
    batch_size: int,
) -> int:
    """Delete the rows matching ``condition``, ``batch_size`` at a time; returns the count.

    Each batch is its own short write transaction (``DELETE ... WHERE key IN
    (SELECT key ... LIMIT n)``), so a large purge never holds the write lock
    (SQLite) or many row locks (PostgreSQL) for long, and ingestion carries
    on between batches.
    """
    cols = list(key)
    table = cols[0].table
    picked = select(*cols).where(condition).limit(batch_size)
    target = cols[0] if len(cols) == 1 else tuple_(*cols)
    total = 0
    while True:
        with write_transaction(engine) as conn:
            deleted = conn.execute(delete(table).where(target.in_(picked))).rowcount or 0
        total += max(0, deleted)
        if deleted < batch_size:
            return total


def cleanup(
    engine: Engine,
    now: int | None = None,
    *,
    event_days: int = 30,
    hourly_days: int = 7,
    daily_days: int = 90,
    counter_days: int = 2,
    batch_size: int = 5000,
) -> dict[str, int]:
    """Apply retention: delete what is strictly older (``<``) than each cutoff.

    Cutoff = now - days (whole days of 86,400,000 ms): raw events by
    ``timestamp``, hourly and daily snapshots by ``period_start``, counter
    minute buckets by ``bucket_start``. An item exactly at its cutoff stays.
    Deletes ``batch_size`` rows per short transaction. Artifact states are
    kept (they are one row per artifact and hold the receipt time that
    end-to-end latency needs). Returns the rows deleted per kind.
    """
    now = _clock_now() if now is None else now
    s = snapshots_t.c

    def cutoff(days: int) -> int:
        return now - days * DAY_MS

    return {
        "events": delete_in_batches(
            engine, [events_t.c.id], events_t.c.timestamp < cutoff(event_days),
            batch_size=batch_size,
        ),
        "hourly_snapshots": delete_in_batches(
            engine, [s.id], (s.period_type == HOURLY) & (s.period_start < cutoff(hourly_days)),
            batch_size=batch_size,
        ),
        "daily_snapshots": delete_in_batches(
            engine, [s.id], (s.period_type == DAILY) & (s.period_start < cutoff(daily_days)),
            batch_size=batch_size,
        ),
        "counters": delete_in_batches(
            engine,
            [counters_t.c.scope, counters_t.c.bucket_start, counters_t.c.counter_type,
             counters_t.c.pipeline_stage],
            counters_t.c.bucket_start < cutoff(counter_days),
            batch_size=batch_size,
        ),
    }  # fmt: skip
