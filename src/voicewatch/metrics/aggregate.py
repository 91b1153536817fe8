"""Building snapshots: an hour from its events, a day from its hours, and the catch-up jobs.

``aggregate_hour`` builds an hour's snapshots (platform-wide and per
organization) from the raw events with a few grouped SQL queries and an exact
p95; ``aggregate_day`` builds a day from its hourly snapshots (sums,
count-weighted averages, merged latency histograms); ``catch_up_hours`` /
``catch_up_days`` are the periodic jobs, which also fill gaps left while no
worker ran. Every run is idempotent: it replaces the period's rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from voicewatch.clock import DAY_MS, HOUR_MS, day_start, hour_start, hour_window
from voicewatch.clock import now_ms as _clock_now
from voicewatch.metrics.decisions import attach_decision_metrics
from voicewatch.metrics.definitions import (
    period_totals,
    snapshot_values,
    snapshot_weights,
    totals_from_snapshot,
)
from voicewatch.metrics.snapshots import (
    dumps,
    missing_days,
    missing_hours,
    platform_period_starts,
    read_snapshots,
    write_snapshots,
)
from voicewatch.metrics.totals import (
    CATCH_UP_LOOKBACK_DAYS,
    DAILY,
    HOURLY,
    PERIOD_MS,
    Totals,
)
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM


def _snapshot_row(
    totals: Totals, period_type: str, scope: str, start: int, created_at: int
) -> dict[str, Any]:
    end = start + PERIOD_MS[period_type]
    window = hour_window(start)
    return {
        "period_type": period_type,
        "scope": scope,
        "period_start": start,
        "period_end": end,
        "time_window": window if period_type == HOURLY else window[:10],
        **snapshot_values(totals),
        "weights": dumps(snapshot_weights(totals)),
        "latency_histogram": dumps({n: h.to_dict() for n, h in totals.histograms.items()}),
        "created_at": created_at,
    }


def aggregate_hour(engine: Engine, hour_start_ms: int, *, now_ms: int | None = None) -> int:
    """Build (or rebuild) the hourly snapshots of [hour_start, hour_start + 1 h).

    Computed from the raw events with grouped SQL: the platform-wide snapshot
    (zeros for an empty hour) and one per organization with events in the hour.
    Idempotent: the hour's rows are replaced in one transaction, and two
    workers running it at once leave one row per scope. ``now_ms`` is stored
    as ``created_at`` (a snapshot built before its hour ended counts as
    stale for the catch-up). Returns the number of snapshot rows written.
    """
    if hour_start_ms % HOUR_MS:
        raise ValueError(f"{hour_start_ms} is not the start of a UTC hour")
    created = _clock_now() if now_ms is None else now_ms
    totals = period_totals(engine, hour_start_ms, hour_start_ms + HOUR_MS)
    rows = [_snapshot_row(t, HOURLY, scope, hour_start_ms, created) for scope, t in totals.items()]
    attach_decision_metrics(engine, rows, hour_start_ms, hour_start_ms + HOUR_MS)  # coach loop
    return write_snapshots(engine, HOURLY, hour_start_ms, rows)


def aggregate_day(
    engine: Engine, day_start_ms: int, *, now_ms: int | None = None, fill_hours: bool = True
) -> int:
    """Build (or rebuild) the daily snapshots of a UTC day from its 24 hourly ones.

    Counts and totals are summed, averages weighted by their counts (kept in
    ``weights``), latency histograms merged (the daily p95 comes from them).
    With ``fill_hours`` the day's hours that have events but no (fresh) hourly
    snapshot are aggregated first. A day whose hourly snapshots are all gone
    (hourly retention) keeps its existing daily snapshots rather than being
    overwritten with zeros. Returns the number of snapshot rows written.
    """
    if day_start_ms % DAY_MS:
        raise ValueError(f"{day_start_ms} is not the start of a UTC day")
    created = _clock_now() if now_ms is None else now_ms
    end = day_start_ms + DAY_MS
    if fill_hours:
        for hour in missing_hours(engine, created, since=day_start_ms, until=end):
            aggregate_hour(engine, hour, now_ms=created)
    with read_connection(engine) as conn:
        hourly = read_snapshots(conn, HOURLY, start_from=day_start_ms, start_before=end)
        if not hourly and platform_period_starts(conn, DAILY, day_start_ms, day_start_ms + 1):
            return 0
    totals: dict[str, Totals] = {PLATFORM: Totals()}
    for row in hourly:
        totals.setdefault(row["scope"], Totals()).merge(totals_from_snapshot(row))
    rows = [_snapshot_row(t, DAILY, scope, day_start_ms, created) for scope, t in totals.items()]
    attach_decision_metrics(engine, rows, day_start_ms, end)  # coach loop
    return write_snapshots(engine, DAILY, day_start_ms, rows)


def aggregate_range(
    engine: Engine, start_ms: int, end_ms: int, period: str = HOURLY, *, now_ms: int | None = None
) -> int:
    """Aggregate every hour (or day) that starts in [floor(start), end); returns rows written.

    The backfill behind ``voicewatch aggregate --from --to``.
    """
    step = PERIOD_MS[period]
    written = 0
    at = start_ms - start_ms % step
    while at < end_ms:
        if period == HOURLY:
            written += aggregate_hour(engine, at, now_ms=now_ms)
        else:
            written += aggregate_day(engine, at, now_ms=now_ms)
        at += step
    return written


def catch_up_hours(
    engine: Engine, now: int | None = None, *, lookback_days: int = CATCH_UP_LOOKBACK_DAYS
) -> list[int]:
    """The hourly job: aggregate the previous hour, plus every missing hour; returns them."""
    now = _clock_now() if now is None else now
    hours = set(missing_hours(engine, now, lookback_days=lookback_days))
    hours.add(hour_start(now) - HOUR_MS)
    for hour in sorted(hours):
        aggregate_hour(engine, hour, now_ms=now)
    return sorted(hours)


def catch_up_days(
    engine: Engine, now: int | None = None, *, lookback_days: int = CATCH_UP_LOOKBACK_DAYS
) -> list[int]:
    """The daily job: aggregate the previous day, plus every missing day; returns them."""
    now = _clock_now() if now is None else now
    days = set(missing_days(engine, now, lookback_days=lookback_days))
    days.add(day_start(now) - DAY_MS)
    for day in sorted(days):
        aggregate_day(engine, day, now_ms=now)
    return sorted(days)
