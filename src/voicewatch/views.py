"""What the live dashboard pages show: overview, pipeline, alerts, and the stream's reads.

Each public function returns a plain dict (or list) that a route hands to its
template or sends as JSON; the routes in ``voicewatch.web`` hold no SQL. Every
figure comes from ``metrics`` (counters, snapshots, stage breakdown),
``events``, ``alerts`` or a small bounded query here. Times are UTC epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch import alerts, events, metrics, model
from voicewatch.clock import DAY_MS, HOUR_MS, MINUTE_MS, day_start, hour_start, now_ms
from voicewatch.retry import RETRY_PLANS
from voicewatch.store import read_connection
from voicewatch.store.tables import PLATFORM, organizations, users
from voicewatch.store.tables import voice_note_artifacts as artifacts_t
from voicewatch.store.tables import voice_pipeline_alerts as alerts_t
from voicewatch.store.tables import voice_pipeline_artifact_states as states_t
from voicewatch.store.tables import voice_pipeline_events as events_t

#: The five stages of the flow graph, in pipeline order, with their labels.
FLOW_STAGES: tuple[tuple[str, str], ...] = (
    ("ingestion", "Ingestion"),
    ("transcription", "Transcription"),
    ("claims_extraction", "Claims Extraction"),
    ("entity_resolution", "Entity Resolution"),
    ("draft_generation", "Draft Generation"),
)
STAGE_LABELS: dict[str, str] = dict(FLOW_STAGES)
#: The processing stage's snapshot column of average latency.
_LATENCY_COLUMN = {
    "transcription": "avg_transcription_latency",
    "claims_extraction": "avg_claims_extraction_latency",
    "entity_resolution": "avg_entity_resolution_latency",
    "draft_generation": "avg_draft_generation_latency",
}
FEED_SIZE = 20
#: Ingestion health: in-flight artifacts not yet past ingestion (as metrics.stage_breakdown).
_RED_QUEUE, _YELLOW_QUEUE = 50, 20
_MAX_LIST = 60


def is_stage(stage: str | None) -> bool:
    return stage in STAGE_LABELS


# --- figures ----------------------------------------------------------------------------


def _day_figures(engine: Engine, now: int) -> dict[str, Any]:
    """``metrics.realtime`` over [UTC midnight, now) (the current minute included)."""
    until = (now // MINUTE_MS) * MINUTE_MS + MINUTE_MS
    minutes = max(1, (until - day_start(now)) // MINUTE_MS)
    return metrics.realtime(engine, now=now, window_minutes=int(minutes))


def status_cards(engine: Engine, now: int | None = None) -> dict[str, Any]:
    """The overview's six status cards (today = since UTC midnight)."""
    now = now_ms() if now is None else now
    today = _day_figures(engine, now)
    yesterday = _day_figures(engine, now - DAY_MS)  # yesterday up to the same time of day
    completed, before = today["artifacts_completed"], yesterday["artifacts_completed"]
    change = None if before == 0 else (completed - before) / before
    return {
        "active_artifacts": today["active_artifacts"],
        "completed_today": completed,
        "completed_yesterday": before,
        "completed_change": change,
        "failed_today": today["artifacts_failed"],
        "received_today": today["artifacts_received"],
        "failure_rate_today": today["failure_rate"],
        "avg_latency_ms": today["avg_end_to_end_latency_ms"] if completed else None,
        "circuit_breaker_state": today["circuit_breaker_state"],
        "cost_today": today["total_ai_cost"],
        "as_of": now,
    }


def _health(failure_rate: float, depth: int) -> str:
    if failure_rate > 0.25 or depth > _RED_QUEUE:
        return "red"
    if failure_rate > 0.10 or depth > _YELLOW_QUEUE:
        return "yellow"
    return "green"


def flow_graph(engine: Engine, now: int | None = None) -> list[dict[str, Any]]:
    """The five stage nodes: queue depth, health, average latency, throughput (24 h)."""
    now = now_ms() if now is None else now
    breakdown = {s["stage"]: s for s in metrics.stage_breakdown(engine, now)["stages"]}
    totals = metrics.counter_totals(
        engine, scope=PLATFORM, since=now - 24 * HOUR_MS, until=now + MINUTE_MS
    )
    received = sum(c for (t, _s), (c, _tot) in totals.items() if t == "artifact_received")
    ingest_failed = sum(
        c for (t, s), (c, _tot) in totals.items() if t == "artifact_failed" and s == "ingestion"
    )
    with read_connection(engine) as conn:
        waiting = conn.execute(
            select(func.count()).where(
                states_t.c.state == model.TrackedState.IN_FLIGHT.value,
                (states_t.c.current_stage == "ingestion") | states_t.c.current_stage.is_(None),
            )
        ).scalar_one()
    ingest_rate = metrics.safe_divide(ingest_failed, received)
    nodes = [
        {
            "stage": "ingestion",
            "label": STAGE_LABELS["ingestion"],
            "queue_depth": int(waiting),
            "avg_latency_ms": None,
            "throughput_per_hour": received / 24,
            "failure_rate": ingest_rate,
            "health": _health(ingest_rate, int(waiting)),
        }
    ]
    for stage, label in FLOW_STAGES[1:]:
        s = breakdown.get(stage, {})
        nodes.append(
            {
                "stage": stage,
                "label": label,
                "queue_depth": s.get("queue_depth", 0),
                "avg_latency_ms": s.get("avg_latency_ms") if s.get("completed") else None,
                "throughput_per_hour": s.get("throughput_per_hour", 0.0),
                "failure_rate": s.get("failure_rate", 0.0),
                "health": s.get("health", "green"),
            }
        )
    return nodes


# --- events -------------------------------------------------------------------------------


def _event_out(row: Any) -> dict[str, Any]:
    out = events.event_to_dict(row)
    out["id"] = int(row.id)
    out["kind"] = _kind(out["event_type"])
    out["summary"] = event_summary(out)
    return out


def _ms(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 120_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.1f} min"


def event_summary(event: dict[str, Any]) -> str:
    """One line of what an event says, for the activity feed."""
    parts: list[str] = []
    if event.get("pipeline_stage"):
        parts.append(STAGE_LABELS.get(event["pipeline_stage"], event["pipeline_stage"]))
    if event.get("duration_ms") is not None:
        parts.append(_ms(float(event["duration_ms"])))
    if event.get("previous_status") and event.get("new_status"):
        parts.append(f"{event['previous_status']} → {event['new_status']}")
    elif event.get("new_status"):
        parts.append(f"status {event['new_status']}")
    meta = event.get("metadata") or {}
    for key, noun in (
        ("claim_count", "claims"),
        ("entity_count", "entities"),
        ("draft_count", "drafts"),
        ("disambiguation_count", "to disambiguate"),
    ):
        if meta.get(key) is not None:
            parts.append(f"{meta[key]} {noun}")
    if meta.get("confidence_score") is not None:
        parts.append(f"confidence {float(meta['confidence_score']):.2f}")
    if meta.get("ai_cost"):
        parts.append(f"${float(meta['ai_cost']):.4f}")
    if meta.get("retry_attempt"):
        parts.append(f"attempt {meta['retry_attempt']}")
    if event.get("error_code") or event.get("error_message"):
        error = ": ".join(
            str(x) for x in (event.get("error_code"), event.get("error_message")) if x
        )
        parts.append(error[:200])
    return " · ".join(parts)


def _kind(event_type: str) -> str:
    found = model.EVENT_TYPES_BY_NAME.get(event_type)
    return found.kind.value if found else "info"


def recent_feed(engine: Engine, limit: int = FEED_SIZE) -> list[dict[str, Any]]:
    """The newest events (by stored order), newest first."""
    query = select(events_t).order_by(events_t.c.id.desc()).limit(limit)
    with read_connection(engine) as conn:
        return [_event_out(r) for r in conn.execute(query)]


def latest_event_id(engine: Engine) -> int:
    """The highest stored event row id (0 when there is none)."""
    with read_connection(engine) as conn:
        return int(conn.execute(select(func.max(events_t.c.id))).scalar_one() or 0)


def events_after(engine: Engine, last_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Events stored with a row id above ``last_id``, oldest first, at most ``limit``."""
    query = select(events_t).where(events_t.c.id > last_id).order_by(events_t.c.id).limit(limit)
    with read_connection(engine) as conn:
        return [_event_out(r) for r in conn.execute(query)]


def events_by_ids(engine: Engine, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The events among row ``ids`` that exist now (for ids skipped by a later commit)."""
    wanted = sorted(set(ids))[:1000]
    if not wanted:
        return []
    query = select(events_t).where(events_t.c.id.in_(wanted)).order_by(events_t.c.id)
    with read_connection(engine) as conn:
        return [_event_out(r) for r in conn.execute(query)]


# --- alerts -------------------------------------------------------------------------------


def active_alert_count(engine: Engine) -> int:
    with read_connection(engine) as conn:
        return int(
            conn.execute(select(func.count()).where(alerts_t.c.state == "active")).scalar_one()
        )


def alerts_state(engine: Engine) -> dict[str, Any]:
    """The active alerts (for the stream's change detection) and their count."""
    active = alerts.list_alerts(engine, state="active", limit=500)
    return {"active": active, "active_count": len(active)}


def get_alert(engine: Engine, alert_id: int) -> dict[str, Any] | None:
    return alerts.get_alert(engine, alert_id)


def alert_groups(engine: Engine) -> dict[str, Any]:
    """Active alerts split into unacknowledged and acknowledged, newest first."""
    active = alerts.list_alerts(engine, state="active", limit=500)
    return {
        "unacknowledged": [a for a in active if not a["acknowledged"]],
        "acknowledged": [a for a in active if a["acknowledged"]],
        "active_alert_count": len(active),
    }


def alerts_page(
    engine: Engine,
    *,
    severity: str | None = None,
    kind: str | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int = 200,
) -> dict[str, Any]:
    """Active groups plus the history table (all states), filtered, newest first."""
    query = select(alerts_t)
    if severity:
        query = query.where(alerts_t.c.severity == severity)
    if kind:
        query = query.where(alerts_t.c.alert_kind == kind)
    if since is not None:
        query = query.where(alerts_t.c.raised_at >= since)
    if until is not None:
        query = query.where(alerts_t.c.raised_at < until)
    query = query.order_by(alerts_t.c.raised_at.desc(), alerts_t.c.id.desc()).limit(limit + 1)
    with read_connection(engine) as conn:
        rows = [alerts.alert_to_dict(r) for r in conn.execute(query)]
    return {
        **alert_groups(engine),
        "history": rows[:limit],
        "history_truncated": len(rows) > limit,
        "severities": [s.value for s in alerts.Severity],
        "kinds": [k.value for k in alerts.AlertKind],
    }


# --- pages --------------------------------------------------------------------------------


def overview_live(engine: Engine, now: int | None = None) -> dict[str, Any]:
    """What the overview refreshes: the status cards and the flow graph."""
    now = now_ms() if now is None else now
    return {"cards": status_cards(engine, now), "nodes": flow_graph(engine, now)}


def overview_page(engine: Engine, now: int | None = None) -> dict[str, Any]:
    return {
        **overview_live(engine, now),
        "feed": recent_feed(engine),
        "active_alert_count": active_alert_count(engine),
    }


def _names(
    conn: Any, org_ids: set[str], coach_ids: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    orgs: dict[str, str] = {}
    coaches: dict[str, str] = {}
    if org_ids:
        orgs = dict(
            conn.execute(
                select(organizations.c.organization_id, organizations.c.name).where(
                    organizations.c.organization_id.in_(sorted(org_ids))
                )
            ).all()
        )
    if coach_ids:
        coaches = {
            r[0]: r[1]
            for r in conn.execute(
                select(users.c.user_id, users.c.name).where(users.c.user_id.in_(sorted(coach_ids)))
            )
            if r[1]
        }
    return orgs, coaches


def active_artifacts(
    engine: Engine, *, stage: str | None = None, limit: int = _MAX_LIST
) -> list[dict[str, Any]]:
    """In-flight artifacts (most recently active first), with names and channel."""
    query = select(states_t).where(states_t.c.state == model.TrackedState.IN_FLIGHT.value)
    if stage == "ingestion":
        query = query.where(
            (states_t.c.current_stage == "ingestion") | states_t.c.current_stage.is_(None)
        )
    elif stage:
        query = query.where(states_t.c.current_stage == stage)
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
        orgs, coaches = _names(
            conn,
            {r["organization_id"] for r in rows if r["organization_id"]},
            {r["coach_user_id"] for r in rows if r["coach_user_id"]},
        )
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
    hour from the minute counters. Ingestion has no processing latency, so its chart
    shows artifacts received per hour."""
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
    if current not in by_hour:
        totals = metrics.counter_totals(
            engine, scope=PLATFORM, since=current, until=current + HOUR_MS
        )
        if column:
            completions = set(model.STAGE_EVENTS[model.Stage(stage)].completed)
            count = sum(c for (t, s), (c, _x) in totals.items() if t in completions and s == stage)
            total = sum(x for (t, s), (_c, x) in totals.items() if t in completions and s == stage)
            by_hour[current] = total / count if count else None
        else:
            by_hour[current] = float(
                sum(c for (t, _s), (c, _x) in totals.items() if t == "artifact_received")
            )
    hours = list(range(current - 23 * HOUR_MS, current + HOUR_MS, HOUR_MS))
    values = [by_hour.get(h) for h in hours]
    return {
        "x": [h // 1000 for h in hours],
        "y": [None if v is None else round(v, 1) for v in values],
        "label": "Avg stage latency" if column else "Artifacts received / hour",
        "unit": "ms" if column else "artifacts",
        "has_data": any(v for v in values),
    }


def error_breakdown(engine: Engine, stage: str, now: int | None = None) -> list[dict[str, Any]]:
    """Failure events at ``stage`` over the last 24 h, counted by error code."""
    now = now_ms() if now is None else now
    failure_types = sorted(model.FAILURE_EVENT_TYPES)
    query = (
        select(
            events_t.c.error_code,
            func.count(),
            func.max(events_t.c.error_message),
            func.max(events_t.c.timestamp),
        )
        .where(
            events_t.c.pipeline_stage == stage,
            events_t.c.timestamp >= now - DAY_MS,
            events_t.c.event_type.in_(failure_types),
        )
        .group_by(events_t.c.error_code)
        .order_by(func.count().desc())
        .limit(30)
    )
    with read_connection(engine) as conn:
        rows = conn.execute(query).all()
    total = sum(int(r[1]) for r in rows) or 1
    return [
        {
            "error_code": r[0] or "unknown",
            "count": int(r[1]),
            "share": int(r[1]) / total,
            "sample_message": r[2],
            "last_seen": r[3],
        }
        for r in rows
    ]


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
        orgs, _coaches = _names(conn, {r["organization_id"] for r in rows}, set())
    retry_stage = stage if stage in RETRY_PLANS else "full"
    for r in rows:
        r["organization_name"] = orgs.get(r["organization_id"], r["organization_id"])
        r["retry_stage"] = retry_stage
    return rows


def stage_detail(engine: Engine, stage: str, now: int | None = None) -> dict[str, Any]:
    now = now_ms() if now is None else now
    return {
        "stage": stage,
        "label": STAGE_LABELS[stage],
        "chart": latency_series(engine, stage, now),
        "errors": error_breakdown(engine, stage, now),
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
        "active_alert_count": active_alert_count(engine),
    }
