"""The ``/pipeline`` page and a stage's detail (``/pipeline/{stage}``).

The flow graph is the overview's (``overview.flow_graph``); the active
artifacts panel lists in-flight artifacts (``metrics.IN_FLIGHT``, at a stage
by ``metrics.at_stage``: the same rows the queue depth counts); a stage's
detail adds its 24-hour chart (snapshots, plus the current hour from the
counters), its failures by error code and its retry queue. Times are UTC
epoch ms.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from voicewatch import alerts, metrics, model
from voicewatch.clock import HOUR_MS, hour_start, now_ms
from voicewatch.dashboard.overview import flow_graph
from voicewatch.dashboard.summary import FLOW_STAGES, STAGE_LABELS
from voicewatch.names import coach_labels, coach_names, organization_names
from voicewatch.retry import RETRY_PLANS
from voicewatch.store import read_connection
from voicewatch.store.tables import voice_note_artifacts as artifacts_t
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t

#: The processing stage's snapshot column of average latency.
_LATENCY_COLUMN = {
    "transcription": "avg_transcription_latency",
    "claims_extraction": "avg_claims_extraction_latency",
    "entity_resolution": "avg_entity_resolution_latency",
    "draft_generation": "avg_draft_generation_latency",
}
_MAX_LIST = 60


def active_artifacts(
    engine: Engine, *, stage: str | None = None, limit: int = _MAX_LIST
) -> list[dict[str, Any]]:
    """In-flight artifacts (most recently active first), with names and channel."""
    query = select(states_t).where(metrics.IN_FLIGHT)
    if stage:
        query = query.where(metrics.at_stage(stage))
    query = query.order_by(states_t.c.updated_at.desc()).limit(limit)
    with read_connection(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        ids = [r["artifact_id"] for r in rows]
        channels: dict[str, str] = {}
        if ids:
            channels = dict(
                conn.execute(
                    select(artifacts_t.c.artifact_id, artifacts_t.c.source_channel).where(
                        artifacts_t.c.artifact_id.in_(ids)
                    )
                ).all()
            )
        orgs = organization_names(conn, (r["organization_id"] for r in rows))
        coaches = coach_names(conn, (r["coach_user_id"] for r in rows))
    stage_index = {s: i for i, (s, _l) in enumerate(FLOW_STAGES)}
    out = []
    for r in rows:
        current = r["current_stage"] or "ingestion"
        out.append(
            {
                "artifact_id": r["artifact_id"],
                "stage": current,
                "stage_label": STAGE_LABELS.get(current, current.replace("_", " ").title()),
                "stage_index": stage_index.get(current, 0),
                "stage_since": r["updated_at"],
                "last_event_type": r["last_event_type"],
                "coach": coaches.get(r["coach_user_id"] or "", r["coach_user_id"] or "—"),
                "organization_id": r["organization_id"],
                "organization_name": orgs.get(r["organization_id"] or "", r["organization_id"])
                or "—",
                "channel": channels.get(r["artifact_id"]),
            }
        )
    return out


def latency_series(engine: Engine, stage: str, now: int | None = None) -> dict[str, Any]:
    """Hourly figures of the last 24 h for the stage chart: snapshots, plus the current
    hour from the minute counters (``metrics.counter_window_totals``: the snapshots'
    definitions). Ingestion has no processing latency, so its chart shows artifacts
    received per hour."""
    now = now_ms() if now is None else now
    snapshots = metrics.history(engine, "24h", now=now)["snapshots"]
    column = _LATENCY_COLUMN.get(stage)
    by_hour: dict[int, float | None] = {}
    for snap in snapshots:
        if column:
            has = snap.get("artifacts_received", 0) or snap.get(column)
            by_hour[snap["period_start"]] = float(snap[column]) if has else None
        else:
            by_hour[snap["period_start"]] = float(snap["artifacts_received"])
    current = hour_start(now)
    if current not in by_hour:  # the hour not aggregated yet: the same figures, from counters
        live = metrics.counter_window_totals(engine, current, current + HOUR_MS)
        if column:
            n = live.latency_n[stage]
            by_hour[current] = live.latency_sum[stage] / n if n else None
        else:
            by_hour[current] = float(live.received)
    hours = list(range(current - 23 * HOUR_MS, current + HOUR_MS, HOUR_MS))
    values = [by_hour.get(h) for h in hours]
    return {
        "x": [h // 1000 for h in hours],
        "y": [None if v is None else round(v, 1) for v in values],
        "label": "Avg stage latency" if column else "Artifacts received / hour",
        "unit": "ms" if column else "artifacts",
        "has_data": any(v for v in values),
    }


def retry_queue(engine: Engine, stage: str, limit: int = _MAX_LIST) -> list[dict[str, Any]]:
    """Failed pipeline artifacts whose failing stage is ``stage``, newest first."""
    query = (
        select(
            artifacts_t.c.artifact_id,
            artifacts_t.c.organization_id,
            artifacts_t.c.coach_user_id,
            artifacts_t.c.source_channel,
            artifacts_t.c.error_code,
            artifacts_t.c.error_message,
            artifacts_t.c.attempt,
            artifacts_t.c.updated_at,
        )
        .where(
            artifacts_t.c.status == model.ArtifactStatus.FAILED.value,
            artifacts_t.c.current_stage == stage,
        )
        .order_by(artifacts_t.c.updated_at.desc())
        .limit(limit)
    )
    with read_connection(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        orgs = organization_names(conn, (r["organization_id"] for r in rows))
        coaches = coach_labels(conn, (r["coach_user_id"] for r in rows))
    retry_stage = stage if stage in RETRY_PLANS else "full"
    for r in rows:
        r["organization_name"] = orgs.get(r["organization_id"], r["organization_id"])
        r["coach_short"] = coaches.get(r["coach_user_id"], {}).get("short", r["coach_user_id"])
        r["retry_stage"] = retry_stage
    return rows


def stage_detail(engine: Engine, stage: str, now: int | None = None) -> dict[str, Any]:
    now = now_ms() if now is None else now
    return {
        "stage": stage,
        "label": STAGE_LABELS[stage],
        "chart": latency_series(engine, stage, now),
        "errors": metrics.error_breakdown(engine, stage, now),
        "retry_queue": retry_queue(engine, stage),
    }


def pipeline_live(engine: Engine, stage: str | None = None) -> dict[str, Any]:
    """What the pipeline page refreshes: the graph and the active artifacts panel."""
    now = now_ms()
    return {
        "nodes": flow_graph(engine, now),
        "active": active_artifacts(engine),
        "selected": stage,
        "stage_artifacts": active_artifacts(engine, stage=stage) if stage else None,
    }


def pipeline_page(engine: Engine, stage: str | None = None) -> dict[str, Any]:
    now = now_ms()
    return {
        **pipeline_live(engine, stage),
        "detail": stage_detail(engine, stage, now) if stage else None,
        "active_alert_count": alerts.count_active(engine),
    }
