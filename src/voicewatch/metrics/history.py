"""Figures over a past window: snapshot history, and stage totals of the last hours.

``history`` reads the snapshots of a range (hourly or daily) and rolls them
up; ``window_totals`` combines fresh hourly snapshots with the minute
counters for the partial hours, so a 24-hour figure never scans the event
log; ``historical_avg_end_to_end_latency`` is the latency rule's baseline.
Times are UTC epoch ms, latencies ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch.clock import MINUTE_MS, minute_start
from voicewatch.clock import now_ms as _clock_now
from voicewatch.events import AI_COST, STAGE_LATENCY
from voicewatch.metrics.definitions import (
    fold_group,
    safe_divide,
    snapshot_values,
    totals_from_snapshot,
)
from voicewatch.metrics.live import counter_totals
from voicewatch.metrics.snapshots import plan_window, public_snapshot, range_snapshots
from voicewatch.metrics.totals import HOURLY, EventGroup, Totals
from voicewatch.model import EVENT_TYPE_NAMES
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t


def history(
    engine: Engine,
    range_name: str = "24h",
    organization_id: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Snapshots overlapping the last ``range_name`` (1h/6h/24h hourly, 7d/30d daily).

    Reads snapshots only (an index range on the period start: at most 31 rows
    per scope), oldest first, each with DESIGN.md's fields. ``summary`` is the
    whole range rolled up (sums, weighted averages, p95 from the merged
    histograms). Periods not aggregated yet (the current hour) are absent.
    """
    now = _clock_now() if now is None else now
    with read_connection(engine) as conn:
        period_type, since, rows = range_snapshots(
            conn, range_name, now, scope=organization_id or PLATFORM
        )
    total = Totals()
    for row in rows:
        total.merge(totals_from_snapshot(row))
    return {
        "range": range_name,
        "period_type": period_type,
        "organization_id": organization_id or None,
        "since": since,
        "until": now,
        "snapshots": [public_snapshot(r) for r in rows],
        "summary": {"periods": len(rows), **snapshot_values(total)},
    }


def window_totals(engine: Engine, since: int, until: int) -> Totals:
    """Platform-wide stage figures of [since, until): hourly snapshots where fresh, else counters.

    Whole hours with a fresh platform snapshot (built after the hour ended) are
    read from it; the partial hours at both ends and any hour not aggregated
    yet come from the minute-bucket counters (``counter_window_totals``), so
    this never reads the event log however busy the current hour is: ~24
    snapshot rows plus the counter cells of the last hour or so.
    """
    with read_connection(engine) as conn:
        rows, live = plan_window(conn, since, until)
    total = Totals()
    for row in rows:
        total.merge(totals_from_snapshot(row))
    for start, end in live:
        total.merge(counter_window_totals(engine, start, end))
    return total


def counter_window_totals(engine: Engine, since: int, until: int) -> Totals:
    """The figures the counters carry for [since, until), platform-wide, to the minute.

    Artifact and stage counts come from the per-event-type cells (with the
    same definitions as the snapshots, ``fold_group``); stage latency sums,
    counts and histograms from the ``STAGE_LATENCY`` cells; AI cost from its
    cell. Confidences and end-to-end percentiles are not in the counters and
    stay zero (the stage breakdown does not use them).
    """
    cells = counter_totals(
        engine, scope=PLATFORM, since=minute_start(since), until=minute_start(until - 1) + MINUTE_MS
    )
    total = Totals()
    for (counter_type, stage), (count, amount) in cells.items():
        if counter_type.startswith(STAGE_LATENCY):
            index = int(counter_type[len(STAGE_LATENCY) :])
            total.histograms[stage].add_bucket(index, int(count))
            total.latency_sum[stage] += amount
            total.latency_n[stage] += int(count)
        elif counter_type == AI_COST:
            total.ai_cost += amount
        elif counter_type in EVENT_TYPE_NAMES:
            fold_group(total, EventGroup(None, counter_type, stage or None, int(count)))
    return total


def historical_avg_end_to_end_latency(
    engine: Engine, *, since: int, until: int
) -> tuple[float, int]:
    """The platform-wide average end-to-end latency (ms) over the hourly snapshots
    lying wholly in [since, until), weighted by each hour's
    ``artifacts_completed`` (so a quiet hour with one slow note does not count
    as much as a busy one). Returns (average, artifacts completed); (0.0, 0)
    when there is no history.
    """
    s = snapshots_t.c
    query = select(
        func.sum(s.avg_end_to_end_latency * s.artifacts_completed),
        func.sum(s.artifacts_completed),
    ).where(
        s.period_type == HOURLY,
        s.scope == PLATFORM,
        s.period_start >= since,
        s.period_end <= until,
    )
    with read_connection(engine) as conn:
        weighted, completed = conn.execute(query).one()
    completed = int(completed or 0)
    return safe_divide(float(weighted or 0.0), completed), completed
