"""Per-stage and per-organization breakdowns, and the one rule for a stage's health colour.

``HEALTH`` holds the green/yellow/red thresholds; ``stage_health`` applies
them. The API's ``/metrics/stages``, the dashboard's flow graph (including
its ingestion node, ``ingestion_figures``) and the Prometheus export all get
their colours from here, so they cannot disagree. Times are UTC epoch ms,
latencies ms, rates fractions in [0, 1], costs USD.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from voicewatch.clock import HOUR_MS, MINUTE_MS
from voicewatch.clock import now_ms as _clock_now
from voicewatch.metrics.definitions import safe_divide, totals_from_snapshot
from voicewatch.metrics.history import window_totals
from voicewatch.metrics.live import counter_totals, queue_depths
from voicewatch.metrics.snapshots import range_snapshots
from voicewatch.metrics.totals import E2E, STAGES, Totals
from voicewatch.model import Stage
from voicewatch.names import organization_names
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM


@dataclass(frozen=True)
class HealthThresholds:
    """A stage is red above the red thresholds, yellow above the yellow ones, else green.

    Failure rates are fractions (stage failed / started); queue depths count
    artifacts in flight at the stage. Comparisons are strict ("above").
    """

    red_failure_rate: float = 0.25
    yellow_failure_rate: float = 0.10
    red_queue_depth: int = 50
    yellow_queue_depth: int = 20


#: The thresholds every reader uses unless told otherwise.
HEALTH = HealthThresholds()


def stage_health(
    failure_rate: float, queue_depth: int, thresholds: HealthThresholds = HEALTH
) -> str:
    """green, yellow or red for a stage with this failure rate and queue depth."""
    t = thresholds
    if failure_rate > t.red_failure_rate or queue_depth > t.red_queue_depth:
        return "red"
    if failure_rate > t.yellow_failure_rate or queue_depth > t.yellow_queue_depth:
        return "yellow"
    return "green"


def _stage_row(
    stage: str, total: Totals, depth: int, window_hours: int, thresholds: HealthThresholds
) -> dict[str, Any]:
    rate = safe_divide(total.stage_failed[stage], total.started[stage])
    return {
        "stage": stage,
        "queue_depth": depth,
        "avg_latency_ms": safe_divide(total.latency_sum[stage], total.latency_n[stage]),
        "p95_latency_ms": total.histograms[stage].quantile(0.95),
        "throughput_per_hour": total.stage_completed[stage] / window_hours,
        "started": total.started[stage],
        "completed": total.stage_completed[stage],
        "failed": total.stage_failed[stage],
        "failure_rate": rate,
        "health": stage_health(rate, depth, thresholds),
    }


def stage_breakdown(
    engine: Engine,
    now: int | None = None,
    *,
    window_hours: int = 24,
    red_failure_rate: float = HEALTH.red_failure_rate,
    yellow_failure_rate: float = HEALTH.yellow_failure_rate,
    red_queue_depth: int = HEALTH.red_queue_depth,
    yellow_queue_depth: int = HEALTH.yellow_queue_depth,
) -> dict[str, Any]:
    """Per processing stage: queue depth now, and latency, throughput, failures over 24 h.

    - ``queue_depth``: in-flight artifacts whose tracked current stage is the
      stage (``live.queue_depths``).
    - ``avg_latency_ms``, ``p95_latency_ms``, ``throughput_per_hour`` (stage
      completion events per hour), ``failure_rate`` (stage failed / stage
      started, 0 when none started) over [now - window_hours, now): from the
      hourly snapshots and their per-stage histograms where fresh, from the
      counters for the rest (``window_totals``). The p95 therefore comes from
      a histogram (within 5% of the exact value).
    - ``health``: ``stage_health`` with the given thresholds (default ``HEALTH``).
    """
    now = _clock_now() if now is None else now
    since = now - window_hours * HOUR_MS
    total = window_totals(engine, since, now)
    depths = queue_depths(engine)
    thresholds = HealthThresholds(
        red_failure_rate, yellow_failure_rate, red_queue_depth, yellow_queue_depth
    )
    stages = [
        _stage_row(stage, total, depths.get(stage, 0), window_hours, thresholds) for stage in STAGES
    ]
    return {"since": since, "until": now, "window_hours": window_hours, "stages": stages}


def ingestion_figures(engine: Engine, now: int | None = None) -> dict[str, Any]:
    """The ingestion stage (which has no processing latency) over the last 24 h.

    ``queue_depth``: in-flight artifacts not yet past ingestion;
    ``throughput_per_hour``: artifacts received per hour; ``failure_rate``:
    artifact_failed events at ingestion / artifacts received; ``health`` as
    every other stage's (``stage_health``).
    """
    now = _clock_now() if now is None else now
    totals = counter_totals(engine, scope=PLATFORM, since=now - 24 * HOUR_MS, until=now + MINUTE_MS)
    received = sum(c for (t, _s), (c, _tot) in totals.items() if t == "artifact_received")
    failed = sum(
        c
        for (t, s), (c, _tot) in totals.items()
        if t == "artifact_failed" and s == Stage.INGESTION.value
    )
    depth = queue_depths(engine).get(Stage.INGESTION.value, 0)
    rate = safe_divide(failed, received)
    return {
        "stage": Stage.INGESTION.value,
        "queue_depth": depth,
        "throughput_per_hour": received / 24,
        "failure_rate": rate,
        "health": stage_health(rate, depth),
    }


def org_breakdown(
    engine: Engine, range_name: str = "24h", now: int | None = None
) -> dict[str, Any]:
    """Per organization over the last ``range_name``, from the snapshots (as ``history``).

    ``artifacts`` counts artifacts received; ``avg_latency_ms`` is the mean
    end-to-end latency (ms); ``total_ai_cost`` USD; ``failure_rate`` =
    artifacts failed / received. Names come from ONE query for all the
    organizations (no query per organization); an unknown id is "Unknown".
    Sorted by artifacts, most first.
    """
    now = _clock_now() if now is None else now
    with read_connection(engine) as conn:
        period_type, since, rows = range_snapshots(conn, range_name, now, organizations_only=True)
        per_org: dict[str, Totals] = {}
        for row in rows:
            per_org.setdefault(row["scope"], Totals()).merge(totals_from_snapshot(row))
        names = organization_names(conn, per_org)
    items: list[dict[str, Any]] = [
        {
            "organization_id": org,
            "organization_name": names.get(org, "Unknown"),
            "artifacts": t.received,
            "artifacts_completed": t.completed,
            "artifacts_failed": t.failed,
            "avg_latency_ms": safe_divide(t.e2e_sum, t.e2e_n),
            "p95_latency_ms": t.histograms[E2E].quantile(0.95),
            "total_ai_cost": round(t.ai_cost, 9),
            "failure_rate": safe_divide(t.failed, t.received),
        }
        for org, t in per_org.items()
    ]
    items.sort(key=lambda i: (-i["artifacts"], i["organization_id"]))
    return {
        "range": range_name,
        "period_type": period_type,
        "since": since,
        "until": now,
        "organizations": items,
    }
