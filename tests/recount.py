"""Recount the live counters from the stored events: the check after every fault.

The counters are written beside the events in one transaction, so after any
crash, outage or duplicate delivery they must equal a count made from the
events alone, cell by cell.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from voicewatch.clock import hour_start, minute_start, now_ms
from voicewatch.events import AI_COST, E2E_LATENCY, NOT_COST_BEARING, STAGE_LATENCY
from voicewatch.histogram import index_of
from voicewatch.metrics import aggregate_hour
from voicewatch.metrics.totals import COMPLETION_STAGE
from voicewatch.otlp.figures import UNMAPPED
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t


def stored_event_ids(engine: Engine) -> list[str]:
    """Every stored event id (duplicates would show up twice: the list is not a set)."""
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(select(events_t.c.event_id))]


def counters_from_table(engine: Engine) -> dict[tuple[str, int, str, str], int]:
    """The live counters' counts, keyed (scope, minute bucket, counter type, stage)."""
    c = counters_t.c
    with engine.connect() as conn:
        query = select(c.scope, c.bucket_start, c.counter_type, c.pipeline_stage, c.count)
        rows = conn.execute(query)
        skip = (E2E_LATENCY, UNMAPPED)  # not counts of events
        return {(r[0], r[1], r[2], r[3]): r[4] for r in rows if r[2] not in skip and r[4]}


def counters_recounted(engine: Engine) -> dict[tuple[str, int, str, str], int]:
    """The same counts, recounted from the stored events alone.

    Platform-wide and per organization; one per event type and stage, plus
    one ``ai_cost`` per cost-bearing event, plus (platform-wide) one stage
    latency histogram cell per stage completion with a duration. (End-to-end
    latency counts depend on the artifact state and are left out.)
    """
    e = events_t.c
    counts: Counter[tuple[str, int, str, str]] = Counter()
    with engine.connect() as conn:
        query = select(
            e.timestamp, e.event_type, e.organization_id, e.pipeline_stage, e.ai_cost, e.duration_ms
        )
        for ts, kind, org, stage, cost, duration in conn.execute(query):
            minute = minute_start(ts)
            for scope in [PLATFORM, *([org] if org else [])]:
                counts[(scope, minute, kind, stage or "")] += 1
                if cost is not None and kind not in NOT_COST_BEARING:
                    counts[(scope, minute, AI_COST, "")] += 1
            if duration is not None and kind in COMPLETION_STAGE:
                cell = f"{STAGE_LATENCY}{index_of(duration)}"
                counts[(PLATFORM, minute, cell, COMPLETION_STAGE[kind])] += 1
    return dict(counts)


def assert_counters_equal_recount(engine: Engine) -> int:
    """Exact equality, cell by cell; returns how many cells were compared."""
    live, recount = counters_from_table(engine), counters_recounted(engine)
    keys = live.keys() | recount.keys()
    differ = {k: (live.get(k), recount.get(k)) for k in keys if live.get(k) != recount.get(k)}
    assert differ == {}, f"{len(differ)} cells differ (live, recount): {list(differ.items())[:5]}"
    return len(live)


def hourly_snapshots(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(snapshots_t)
            .where(snapshots_t.c.period_type == "hourly")
            .order_by(snapshots_t.c.period_start, snapshots_t.c.scope)
        )
        return [{k: v for k, v in r._mapping.items() if k != "id"} for r in rows]


def build_hourly_twice(engine: Engine, hours: set[int]) -> list[dict[str, Any]]:
    """Aggregate ``hours``, then rebuild them; the two results must be identical."""
    stamp = now_ms()
    for hour in sorted(hours):
        aggregate_hour(engine, hour, now_ms=stamp)
    first = hourly_snapshots(engine)
    for hour in sorted(hours):
        aggregate_hour(engine, hour, now_ms=stamp)
    again = hourly_snapshots(engine)
    assert first == again
    assert first, "no snapshots were built"
    return first


def assert_every_check_after_a_fault(engine: Engine) -> None:
    """What must hold after any fault: each event stored once, counters equal a
    recount, and the hourly snapshots of every hour with events rebuild identically."""
    ids = stored_event_ids(engine)
    assert ids and len(ids) == len(set(ids))
    assert_counters_equal_recount(engine)
    with engine.connect() as conn:
        stamps = [r[0] for r in conn.execute(select(events_t.c.timestamp).distinct())]
    build_hourly_twice(engine, {hour_start(ts) for ts in stamps})
