"""Every metric's one definition (DESIGN.md "Metric definitions").

Live figures are read from the minute-bucket counters that ``events.log_events``
keeps, never from a scan of the event log: their cost depends on the window
(60 buckets) and the number of counter types, not on how many events exist.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch.clock import MINUTE_MS, minute_start, now_ms
from voicewatch.events import AI_COST, E2E_LATENCY, count_in_flight
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM, ai_service_health
from voicewatch.store.tables import voice_pipeline_counters as counters_t

REALTIME_WINDOW_MINUTES = 60


def safe_divide(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0 when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else 0.0


def counter_totals(
    engine: Engine, *, scope: str = PLATFORM, since: int, until: int
) -> dict[tuple[str, str], tuple[int, float]]:
    """Sum the counters of ``scope`` over the minute buckets in [since, until).

    Returns ``{(counter_type, pipeline_stage): (count, total)}``.
    """
    query = (
        select(
            counters_t.c.counter_type,
            counters_t.c.pipeline_stage,
            func.sum(counters_t.c.count),
            func.sum(counters_t.c.total),
        )
        .where(
            counters_t.c.scope == scope,
            counters_t.c.bucket_start >= since,
            counters_t.c.bucket_start < until,
        )
        .group_by(counters_t.c.counter_type, counters_t.c.pipeline_stage)
    )
    with read_connection(engine) as conn:
        return {
            (row[0], row[1]): (int(row[2] or 0), float(row[3] or 0.0))
            for row in conn.execute(query)
        }


def circuit_breaker_state(engine: Engine) -> str:
    """The worst circuit state over the AI services: open > half_open > closed."""
    with read_connection(engine) as conn:
        states = {r[0] for r in conn.execute(select(ai_service_health.c.circuit_breaker_state))}
    for state in ("open", "half_open"):
        if state in states:
            return state
    return "closed"


def realtime(
    engine: Engine,
    *,
    organization_id: str | None = None,
    now: int | None = None,
    window_minutes: int = REALTIME_WINDOW_MINUTES,
) -> dict[str, Any]:
    """Live figures for the last ``window_minutes`` (the current minute included)."""
    now = now_ms() if now is None else now
    until = minute_start(now) + MINUTE_MS
    since = until - window_minutes * MINUTE_MS
    totals = counter_totals(engine, scope=organization_id or PLATFORM, since=since, until=until)
    by_type: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for (counter_type, _stage), (count, total) in totals.items():
        by_type[counter_type][0] += count
        by_type[counter_type][1] += total
    received = int(by_type["artifact_received"][0])
    completed = int(by_type["artifact_completed"][0])
    failed = int(by_type["artifact_failed"][0])
    e2e_count, e2e_total = by_type[E2E_LATENCY]
    return {
        "window_minutes": window_minutes,
        "since": since,
        "until": until,
        "organization_id": organization_id,
        "artifacts_received": received,
        "artifacts_completed": completed,
        "artifacts_failed": failed,
        "active_artifacts": count_in_flight(engine, organization_id),
        "failure_rate": safe_divide(failed, received),
        "avg_end_to_end_latency_ms": safe_divide(e2e_total, e2e_count),
        "total_ai_cost": round(by_type[AI_COST][1], 6),
        "events": int(sum(c for t, (c, _) in by_type.items() if t not in (AI_COST, E2E_LATENCY))),
        "circuit_breaker_state": circuit_breaker_state(engine),
    }
