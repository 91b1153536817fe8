"""Every metric's one definition (DESIGN.md "Metric definitions").

Live figures are read from the minute-bucket counters that ``events.log_events``
keeps, never from a scan of the event log: their cost depends on the window
(60 buckets) and the number of counter types, not on how many events exist.

History comes from metric snapshots. ``aggregate_hour`` builds an hour's
snapshots (platform-wide and per organization) from the raw events with a few
grouped SQL queries and an exact p95; ``aggregate_day`` builds a day from its
hourly snapshots (sums, count-weighted averages, merged latency histograms);
``catch_up_hours`` / ``catch_up_days`` are the periodic jobs, which also fill
gaps left while no worker ran. ``history``, ``stage_breakdown`` and
``org_breakdown`` read them; ``cleanup`` applies retention.

The definitions live here (``fold_group``, ``end_to_end_ms``,
``snapshot_values``); ``snapshots.py`` only reads and writes rows and
``histogram.py`` is the mergeable latency histogram. Units: times are UTC epoch
ms, latencies ms, rates and confidences fractions in [0, 1], costs USD.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch.clock import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    day_start,
    hour_start,
    hour_window,
    minute_start,
    now_ms,
)
from voicewatch.events import (
    AI_COST,
    E2E_LATENCY,
    NOT_COST_BEARING,
    STAGE_LATENCY,
    count_in_flight,
)
from voicewatch.histogram import LatencyHistogram, index_of
from voicewatch.model import EVENT_TYPE_NAMES, PROCESSING_STAGES, STAGE_EVENTS, Stage
from voicewatch.snapshots import (
    CATCH_UP_LOOKBACK_DAYS,
    COMPLETION_STAGE,
    DAILY,
    E2E,
    HISTOGRAMS,
    HOURLY,
    PERIOD_MS,
    STAGES,
    EventGroup,
    Totals,
    delete_in_batches,
    dumps,
    missing_days,
    missing_hours,
    plan_window,
    platform_period_starts,
    public_snapshot,
    queue_depths,
    range_snapshots,
    read_period,
    read_snapshots,
    write_snapshots,
)
from voicewatch.snapshots import RANGES as RANGES
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM, ai_service_health, organizations
from voicewatch.store.tables import voice_pipeline_counters as counters_t
from voicewatch.store.tables import voice_pipeline_events as events_t
from voicewatch.store.tables import voice_pipeline_metrics_snapshots as snapshots_t

#: The clock, under a name that the ``now_ms`` keyword arguments below do not shadow.
_clock_now = now_ms

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
        "events": int(sum(c for t, (c, _) in by_type.items() if t in EVENT_TYPE_NAMES)),
        "circuit_breaker_state": circuit_breaker_state(engine),
    }


# --- snapshot metrics: the definitions ------------------------------------------------------

_RESOLUTION_COMPLETIONS = frozenset(STAGE_EVENTS[Stage.ENTITY_RESOLUTION].completed)


def p95(values: Sequence[float]) -> float:
    """The seed's p95: ``sorted(values)[floor(n * 0.95)]``, 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[math.floor(len(ordered) * 0.95)])


def end_to_end_ms(
    completed_at: int, received_at: int | None, duration_ms: float | None
) -> float | None:
    """An artifact's end-to-end latency (ms) at its ``artifact_completed`` event.

    Its completion timestamp minus its (first) ``artifact_received`` timestamp,
    never negative; when the receipt was never seen, the completion event's own
    ``duration_ms``; else unknown (None: the artifact counts as completed but
    not in the latency figures). The live ``e2e_latency`` counter uses the same rule.
    """
    if received_at is not None:
        return float(max(0, completed_at - int(received_at)))
    if duration_ms is not None:
        return float(duration_ms)
    return None


def fold_group(totals: Totals, group: EventGroup) -> None:
    """Add one (organization, event type, stage) group of events to ``totals``.

    This is where DESIGN.md's definitions pick their events:
    artifacts_* count artifact_received / completed / failed; a stage's
    latency averages ``duration_ms`` of its completion events; a stage's
    failures are its ``*_failed`` events, or for entity resolution and draft
    generation the ``artifact_failed`` events carrying that stage; confidences
    come from transcription_completed / claims_extracted; the resolution rates
    from the entity resolution completion events; the totals sum
    claim/entity/draft counts over all events; AI cost sums ``ai_cost`` except
    on budget events (whose ``ai_cost`` is a running total, not a cost incurred).
    """
    kind, n = group.event_type, group.events
    if kind == "artifact_received":
        totals.received += n
    elif kind == "artifact_completed":
        totals.completed += n
    elif kind == "artifact_failed":
        totals.failed += n
    for stage_events in PROCESSING_STAGES:
        stage = stage_events.stage.value
        if kind == stage_events.started:
            totals.started[stage] += n
        if kind in stage_events.completed:
            totals.stage_completed[stage] += n
            totals.latency_sum[stage] += group.duration_sum
            totals.latency_n[stage] += group.duration_n
        if kind == stage_events.failed and (
            kind != "artifact_failed" or group.pipeline_stage == stage
        ):
            totals.stage_failed[stage] += n
    if kind == "transcription_completed":
        totals.transcript_conf_sum += group.confidence_sum
        totals.transcript_conf_n += group.confidence_n
    elif kind == "claims_extracted":
        totals.claim_conf_sum += group.confidence_sum
        totals.claim_conf_n += group.confidence_n
    if kind in _RESOLUTION_COMPLETIONS:
        totals.resolution_entities += group.entities
        totals.resolution_disambiguations += group.disambiguations
    totals.claims += group.claims
    totals.entities += group.entities
    totals.drafts += group.drafts
    if kind not in NOT_COST_BEARING:
        totals.ai_cost += group.ai_cost


def period_totals(
    engine: Engine, start: int, end: int, *, platform_only: bool = False
) -> dict[str, Totals]:
    """Raw figures of [start, end) (epoch ms) from the event log, per scope.

    Always holds PLATFORM (zeros for an empty period) and, unless
    ``platform_only``, every organization with an event in the period. Events
    without an organization count platform-wide only.
    """
    data = read_period(engine, start, end)
    totals: dict[str, Totals] = defaultdict(Totals)
    platform = totals[PLATFORM]

    def scoped(org: str | None) -> tuple[Totals, ...]:
        return (platform, totals[org]) if org and not platform_only else (platform,)

    for group in data.groups:
        for target in scoped(group.organization_id):
            fold_group(target, group)
            if group.bucket is not None:
                stage = COMPLETION_STAGE[group.event_type]
                target.histograms[stage].add_bucket(group.bucket, group.duration_n)
    per_org: dict[str, set[str]] = defaultdict(set)
    for org, artifact_id in data.cost_artifacts:
        if org and not platform_only:
            per_org[org].add(artifact_id)
    platform.cost_artifacts = len({artifact_id for _org, artifact_id in data.cost_artifacts})
    for org, artifacts in per_org.items():
        totals[org].cost_artifacts = len(artifacts)
    latencies: dict[str, tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
    for org, completed_at, received_at, duration in data.completions:
        latency = end_to_end_ms(completed_at, received_at, duration)
        if latency is not None:
            bucket = index_of(latency)
            for scope in (PLATFORM, org) if org and not platform_only else (PLATFORM,):
                values, buckets = latencies[scope]
                values.append(latency)
                buckets.append(bucket)
    for scope, (values, buckets) in latencies.items():
        totals[scope].add_e2e(values, buckets)
    for org, event_type, duration in data.stage_durations:
        stage, bucket = COMPLETION_STAGE[event_type], index_of(duration)
        for target in scoped(org):
            target.histograms[stage].add_bucket(bucket)
    return dict(totals)


def snapshot_values(totals: Totals) -> dict[str, Any]:
    """The metrics of DESIGN.md from raw figures; every ratio is safe (0, never NaN).

    Latencies are ms, confidences and rates fractions in [0, 1], cost USD.
    The p95 is exact when the period's latencies are at hand (an hour), else
    read from the merged histogram (within 5%).
    """
    t = totals
    values: dict[str, Any] = {
        "artifacts_received": t.received,
        "artifacts_completed": t.completed,
        "artifacts_failed": t.failed,
    }
    for stage in STAGES:
        values[f"avg_{stage}_latency"] = safe_divide(t.latency_sum[stage], t.latency_n[stage])
    values["avg_end_to_end_latency"] = safe_divide(t.e2e_sum, t.e2e_n)
    values["p95_end_to_end_latency"] = (
        p95(t.e2e_values) if t.e2e_values is not None else t.histograms[E2E].quantile(0.95)
    )
    entities, ambiguous = t.resolution_entities, t.resolution_disambiguations
    values |= {
        "avg_transcript_confidence": safe_divide(t.transcript_conf_sum, t.transcript_conf_n),
        "avg_claim_confidence": safe_divide(t.claim_conf_sum, t.claim_conf_n),
        "auto_resolution_rate": safe_divide(max(0, entities - ambiguous), entities),
        "disambiguation_rate": safe_divide(ambiguous, entities),
    }
    for stage in ("transcription", "claims_extraction", "entity_resolution"):
        values[f"{stage}_failure_rate"] = safe_divide(t.stage_failed[stage], t.started[stage])
    values |= {
        "overall_failure_rate": safe_divide(t.failed, t.received),
        "total_claims_extracted": t.claims,
        "total_entities_resolved": t.entities,
        "total_drafts_generated": t.drafts,
        "total_ai_cost": round(t.ai_cost, 9),
        "avg_cost_per_artifact": safe_divide(t.ai_cost, t.cost_artifacts),
    }
    return values


def snapshot_weights(totals: Totals) -> dict[str, int]:
    """The counts behind each average and rate (stored as ``weights``), for roll-ups."""
    t = totals
    weights = {
        "end_to_end_latency": t.e2e_n,
        "transcript_confidence": t.transcript_conf_n,
        "claim_confidence": t.claim_conf_n,
        "resolution_entities": t.resolution_entities,
        "cost_artifacts": t.cost_artifacts,
    }
    for stage in STAGES:
        weights[f"{stage}_latency"] = t.latency_n[stage]
        weights[f"{stage}_started"] = t.started[stage]
        weights[f"{stage}_completed"] = t.stage_completed[stage]
        weights[f"{stage}_failed"] = t.stage_failed[stage]
    return weights


def totals_from_snapshot(row: dict[str, Any]) -> Totals:
    """Raw figures back from a stored snapshot: each sum is its average times its weight.

    So a roll-up's average is the average of its parts weighted by their counts.
    """
    w: dict[str, int] = json.loads(row["weights"] or "{}")
    hist = json.loads(row["latency_histogram"] or "{}")
    t = Totals(
        received=int(row["artifacts_received"]),
        completed=int(row["artifacts_completed"]),
        failed=int(row["artifacts_failed"]),
        claims=int(row["total_claims_extracted"]),
        entities=int(row["total_entities_resolved"]),
        drafts=int(row["total_drafts_generated"]),
        ai_cost=float(row["total_ai_cost"]),
        cost_artifacts=int(w.get("cost_artifacts", 0)),
        e2e_n=int(w.get("end_to_end_latency", 0)),
        transcript_conf_n=int(w.get("transcript_confidence", 0)),
        claim_conf_n=int(w.get("claim_confidence", 0)),
        resolution_entities=int(w.get("resolution_entities", 0)),
    )
    t.e2e_sum = float(row["avg_end_to_end_latency"]) * t.e2e_n
    t.transcript_conf_sum = float(row["avg_transcript_confidence"]) * t.transcript_conf_n
    t.claim_conf_sum = float(row["avg_claim_confidence"]) * t.claim_conf_n
    t.resolution_disambiguations = round(float(row["disambiguation_rate"]) * t.resolution_entities)
    for stage in STAGES:
        t.latency_n[stage] = int(w.get(f"{stage}_latency", 0))
        t.latency_sum[stage] = float(row[f"avg_{stage}_latency"]) * t.latency_n[stage]
        t.started[stage] = int(w.get(f"{stage}_started", 0))
        t.stage_completed[stage] = int(w.get(f"{stage}_completed", 0))
        t.stage_failed[stage] = int(w.get(f"{stage}_failed", 0))
    t.histograms = {name: LatencyHistogram.from_dict(hist.get(name)) for name in HISTOGRAMS}
    return t


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


# --- reading snapshots -------------------------------------------------------------------


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


def _health(
    failure_rate: float, queue_depth: int, thresholds: tuple[float, float, int, int]
) -> str:
    red_rate, yellow_rate, red_queue, yellow_queue = thresholds
    if failure_rate > red_rate or queue_depth > red_queue:
        return "red"
    if failure_rate > yellow_rate or queue_depth > yellow_queue:
        return "yellow"
    return "green"


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


def stage_breakdown(
    engine: Engine,
    now: int | None = None,
    *,
    window_hours: int = 24,
    red_failure_rate: float = 0.25,
    yellow_failure_rate: float = 0.10,
    red_queue_depth: int = 50,
    yellow_queue_depth: int = 20,
) -> dict[str, Any]:
    """Per processing stage: queue depth now, and latency, throughput, failures over 24 h.

    - ``queue_depth``: in-flight artifacts whose tracked current stage is the
      stage (``voice_pipeline_artifact_states``; an artifact stays at a stage
      after finishing it until the next one starts).
    - ``avg_latency_ms``, ``p95_latency_ms``, ``throughput_per_hour`` (stage
      completion events per hour), ``failure_rate`` (stage failed / stage
      started, 0 when none started) over [now - window_hours, now): from the
      hourly snapshots and their per-stage histograms where fresh, from the
      events for the rest (``window_totals``). The p95 therefore comes from a
      histogram (within 5% of the exact value).
    - ``health``: red if failure_rate > ``red_failure_rate`` or queue_depth >
      ``red_queue_depth``, yellow past the yellow thresholds, else green.
    """
    now = _clock_now() if now is None else now
    since = now - window_hours * HOUR_MS
    total = window_totals(engine, since, now)
    depths = queue_depths(engine)
    thresholds = (red_failure_rate, yellow_failure_rate, red_queue_depth, yellow_queue_depth)
    stages = []
    for stage in STAGES:
        failure_rate = safe_divide(total.stage_failed[stage], total.started[stage])
        depth = depths.get(stage, 0)
        stages.append(
            {
                "stage": stage,
                "queue_depth": depth,
                "avg_latency_ms": safe_divide(total.latency_sum[stage], total.latency_n[stage]),
                "p95_latency_ms": total.histograms[stage].quantile(0.95),
                "throughput_per_hour": total.stage_completed[stage] / window_hours,
                "started": total.started[stage],
                "completed": total.stage_completed[stage],
                "failed": total.stage_failed[stage],
                "failure_rate": failure_rate,
                "health": _health(failure_rate, depth, thresholds),
            }
        )
    return {"since": since, "until": now, "window_hours": window_hours, "stages": stages}


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
        names: dict[str, str] = {}
        if per_org:
            query = select(organizations.c.organization_id, organizations.c.name).where(
                organizations.c.organization_id.in_(sorted(per_org))
            )
            names = {r[0]: r[1] for r in conn.execute(query)}
    items: list[dict[str, Any]] = []
    for org, t in per_org.items():
        items.append(
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
        )
    items.sort(key=lambda i: (-i["artifacts"], i["organization_id"]))
    return {
        "range": range_name,
        "period_type": period_type,
        "since": since,
        "until": now,
        "organizations": items,
    }


# --- retention ---------------------------------------------------------------------------


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
