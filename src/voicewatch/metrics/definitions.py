"""Every metric's one definition (DESIGN.md "Metric definitions").

``fold_group`` picks the events each figure counts, ``end_to_end_ms`` is an
artifact's end-to-end latency, ``snapshot_values`` derives the metrics from
raw ``Totals`` (every ratio safe: 0, never NaN), and ``snapshot_weights`` /
``totals_from_snapshot`` keep the counts behind each average so that a
roll-up is weighted by them. Units: latencies ms, rates and confidences
fractions in [0, 1], costs USD.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from voicewatch.events import NOT_COST_BEARING
from voicewatch.histogram import LatencyHistogram, index_of
from voicewatch.metrics.period import read_period
from voicewatch.metrics.totals import (
    COMPLETION_STAGE,
    E2E,
    HISTOGRAMS,
    STAGES,
    EventGroup,
    Totals,
)
from voicewatch.model import PROCESSING_STAGES, STAGE_EVENTS, Stage
from voicewatch.store.tables import PLATFORM


def safe_divide(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, or 0 when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else 0.0


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
