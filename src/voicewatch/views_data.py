"""What the data pages show: the artifacts grid, one artifact, the event log, metrics.

Each page's route calls ONE function here and renders the plain dict it
returns. They assemble the services (``artifacts``, ``events``, ``metrics``,
``retry``) and add the little the pages need beyond them: organization and
coach names for a page of rows (one batched query each), per-artifact AI
cost (one grouped query over the page's artifacts), the retry options, the
one-line "details" of an event, and the chart series. Times are UTC epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Engine, func, select

from voicewatch import alerts, artifacts, events, metrics, model
from voicewatch.clock import DAY_MS, now_ms
from voicewatch.retry import RETRY_PLANS
from voicewatch.store import read_connection
from voicewatch.store.tables import organizations, users
from voicewatch.store.tables import voice_pipeline_events as events_t

PAGE_SIZE = 50
ARTIFACT_STATUSES = [s.value for s in model.ArtifactStatus]
SOURCE_CHANNELS = ("whatsapp", "app")
METRIC_RANGES = ("1h", "6h", "24h", "7d", "30d")
#: The processing stages whose average latency the stacked chart shows, in pipeline order.
LATENCY_STAGES = ("transcription", "claims_extraction", "entity_resolution", "draft_generation")
#: Confidence histogram: the most recent this-many confidences per kind in the range.
CONFIDENCE_SAMPLE = 5000
CONFIDENCE_BINS = 10
_STAGE_ORDER = [s.value for s in model.Stage]
_RETRY_LABELS = {
    "full": "Full pipeline",
    "transcription": "Transcription",
    "claims_extraction": "Claims extraction",
    "entity_resolution": "Entity resolution",
}


class BadFilter(ValueError):
    """A filter value the page cannot use (answered with 422)."""


# --- shared helpers ---------------------------------------------------------------------


def day_range(start: str | None, end: str | None) -> tuple[int | None, int | None]:
    """``YYYY-MM-DD`` dates (UTC, both inclusive) as [since, until) epoch ms."""

    def parse(text: str) -> int:
        try:
            day = date.fromisoformat(text)
        except ValueError as exc:
            raise BadFilter(f"not a date (YYYY-MM-DD): {text[:20]}") from exc
        return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)

    since = parse(start) if start else None
    until = parse(end) + DAY_MS if end else None
    return since, until


def organization_choices(engine: Engine) -> list[dict[str, str]]:
    """Every organization (id, name) by name, for the filter dropdowns."""
    query = select(organizations.c.organization_id, organizations.c.name).order_by(
        organizations.c.name, organizations.c.organization_id
    )
    with read_connection(engine) as conn:
        return [{"id": r[0], "name": r[1]} for r in conn.execute(query)]


def _names(
    engine: Engine, org_ids: Iterable[str | None], user_ids: Iterable[str | None]
) -> tuple[dict[str, str], dict[str, str]]:
    orgs = sorted({o for o in org_ids if o})
    people = sorted({u for u in user_ids if u})
    org_names: dict[str, str] = {}
    user_names: dict[str, str] = {}
    with read_connection(engine) as conn:
        if orgs:
            org_names = dict(
                conn.execute(
                    select(organizations.c.organization_id, organizations.c.name).where(
                        organizations.c.organization_id.in_(orgs)
                    )
                ).all()
            )
        if people:
            user_names = {
                r[0]: r[1]
                for r in conn.execute(
                    select(users.c.user_id, users.c.name).where(users.c.user_id.in_(people))
                )
                if r[1]
            }
    return org_names, user_names


def _costs(engine: Engine, artifact_ids: list[str]) -> dict[str, float]:
    """AI cost per artifact (sum of its cost-bearing events), for a page of artifacts."""
    if not artifact_ids:
        return {}
    query = (
        select(events_t.c.artifact_id, func.sum(events_t.c.ai_cost))
        .where(
            events_t.c.artifact_id.in_(artifact_ids),
            events_t.c.ai_cost.is_not(None),
            events_t.c.event_type.not_in(sorted(events.NOT_COST_BEARING)),
        )
        .group_by(events_t.c.artifact_id)
    )
    with read_connection(engine) as conn:
        return {r[0]: float(r[1]) for r in conn.execute(query) if r[1] is not None}


def event_details(event: dict[str, Any]) -> str:
    """The one-line summary of an event for tables and timelines (plain text)."""
    meta = event.get("metadata") or {}
    parts: list[str] = []
    if meta.get("claim_count") is not None:
        parts.append(f"{meta['claim_count']} claims")
    if meta.get("entity_count") is not None:
        parts.append(f"{meta['entity_count']} entities")
    if meta.get("disambiguation_count"):
        parts.append(f"{meta['disambiguation_count']} need review")
    if meta.get("draft_count") is not None:
        parts.append(f"{meta['draft_count']} drafts")
    if meta.get("confidence_score") is not None:
        parts.append(f"confidence {float(meta['confidence_score']):.2f}")
    if meta.get("transcript_word_count") is not None:
        parts.append(f"{meta['transcript_word_count']} words")
    if meta.get("transcript_duration") is not None:
        parts.append(f"{float(meta['transcript_duration']):.0f}s audio")
    if meta.get("retry_attempt") is not None:
        parts.append(f"attempt {meta['retry_attempt']}")
    if event.get("new_status"):
        parts.append(f"{event.get('previous_status') or '—'} → {event['new_status']}")
    if meta.get("ai_cost") is not None and event.get("event_type") not in events.NOT_COST_BEARING:
        parts.append(f"${float(meta['ai_cost']):.4f}")
    if event.get("error_code"):
        parts.append(f"[{event['error_code']}]")
    if event.get("error_message"):
        parts.append(str(event["error_message"]))
    return " · ".join(parts)


# --- /artifacts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ArtifactQuery:
    """The grid's query string as the page takes it (dates as ``YYYY-MM-DD``)."""

    status: str = ""
    organization_id: str = ""
    source_channel: str = ""
    date_from: str = ""
    date_to: str = ""
    q: str = ""
    cursor: str = ""
    compact: bool = False

    def to_filter(self) -> artifacts.ArtifactFilter:
        if self.status and self.status not in ARTIFACT_STATUSES:
            raise BadFilter(f"unknown status: {self.status[:32]}")
        if self.source_channel and self.source_channel not in SOURCE_CHANNELS:
            raise BadFilter(f"unknown channel: {self.source_channel[:32]}")
        since, until = day_range(self.date_from, self.date_to)
        return artifacts.ArtifactFilter(
            status=self.status or None,
            organization_id=self.organization_id or None,
            source_channel=self.source_channel or None,
            since=since,
            until=until,
            q=self.q.strip() or None,
        )

    def params(self, **override: Any) -> dict[str, str]:
        """The non-empty query parameters (for "Next page" and toggles)."""
        values = {
            "status": self.status,
            "organization_id": self.organization_id,
            "source_channel": self.source_channel,
            "from": self.date_from,
            "to": self.date_to,
            "q": self.q,
            "compact": "1" if self.compact else "",
        } | {k: str(v) for k, v in override.items()}
        return {k: v for k, v in values.items() if v}


def artifacts_page(
    engine: Engine, query: ArtifactQuery, *, limit: int | None = None
) -> dict[str, Any]:
    """The artifacts grid: one page of rows with names and costs, the filter choices."""
    limit = limit or PAGE_SIZE
    filters = query.to_filter()
    try:
        rows, next_cursor = artifacts.list_artifacts(
            engine, filters, limit=limit, cursor=query.cursor or None
        )
    except artifacts.CursorError as exc:
        raise BadFilter("invalid cursor") from exc
    _orgs, coaches = _names(engine, (), (r["coach_user_id"] for r in rows))
    costs = _costs(engine, [r["artifact_id"] for r in rows])
    for row in rows:
        row["coach_name"] = coaches.get(row["coach_user_id"], row["coach_user_id"])
        row["ai_cost"] = costs.get(row["artifact_id"])
        row["retry_stage"] = grid_retry_stage(row.get("current_stage"))
    return {
        "query": query,
        "items": rows,
        "next_cursor": next_cursor,
        "next_params": query.params(cursor=next_cursor) if next_cursor else None,
        "organizations": organization_choices(engine),
        "statuses": ARTIFACT_STATUSES,
        "channels": SOURCE_CHANNELS,
        "filtered": bool(query.params(compact="")) or bool(query.cursor),
    }


def grid_retry_stage(failed_stage: str | None) -> str:
    """The grid's one-click retry: re-run the stage that failed (the detail page offers all)."""
    if failed_stage in RETRY_PLANS:
        return str(failed_stage)
    if failed_stage == model.Stage.DRAFT_GENERATION.value:
        return model.Stage.ENTITY_RESOLUTION.value  # its retry runs resolution, then drafts
    return "full"


# --- /artifacts/{id} --------------------------------------------------------------------


def retry_options(artifact: dict[str, Any], retries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each retry of RETRY_PLANS with whether it can start now and, if not, why."""
    running = next((r for r in retries if r["status"] == "running"), None)
    reached = artifact.get("completed_stage") or model.Stage.INGESTION.value
    options = []
    for stage, (_status, completed_before, _queued) in RETRY_PLANS.items():
        reason = None
        if running is not None:
            reason = f"retry {running['attempt']} is still running"
        elif artifact["status"] != model.ArtifactStatus.FAILED.value:
            reason = f"only failed artifacts can be retried (this one is {artifact['status']})"
        elif _STAGE_ORDER.index(completed_before) > _STAGE_ORDER.index(reached):
            reason = f"the artifact never got past {reached}"
        options.append(
            {"stage": stage, "label": _RETRY_LABELS.get(stage, stage), "enabled": reason is None,
             "reason": reason}
        )  # fmt: skip
    return options


def _timeline(raw: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "details": event_details(e)} for e in raw]


def artifact_page(engine: Engine, artifact_id: str) -> dict[str, Any] | None:
    """One artifact: header, timeline, transcript, claims, retry panel and history."""
    if not artifact_id or len(artifact_id) > model.ID_MAX_LEN:
        return None
    detail = artifacts.artifact_detail(engine, artifact_id)
    if detail is None:
        return None
    artifact = detail["artifact"]
    _orgs, coaches = _names(engine, (), [artifact["coach_user_id"]])
    artifact["coach_name"] = coaches.get(artifact["coach_user_id"], artifact["coach_user_id"])
    end = artifact.get("completed_at")
    if end is None and artifact["status"] == model.ArtifactStatus.FAILED.value:
        end = artifact.get("updated_at")
    artifact["processing_ms"] = end - artifact["created_at"] if end else None
    costs = _costs(engine, [artifact_id])
    artifact["ai_cost"] = costs.get(artifact_id)
    return {
        **detail,
        "artifact": artifact,
        "events": _timeline(detail["events"]),
        "retry_options": retry_options(artifact, detail["retries"]),
        "can_retry": artifact["status"] == model.ArtifactStatus.FAILED.value,
    }


# --- /events ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventQuery:
    event_types: tuple[str, ...] = ()
    pipeline_stage: str = ""
    organization_id: str = ""
    artifact_id: str = ""
    errors_only: bool = False
    date_from: str = ""
    date_to: str = ""
    cursor: str = ""

    def to_filter(self) -> events.EventFilter:
        unknown = [t for t in self.event_types if t not in model.EVENT_TYPE_NAMES]
        if unknown:
            raise BadFilter(f"unknown event type: {unknown[0][:64]}")
        if self.pipeline_stage and self.pipeline_stage not in _STAGE_ORDER:
            raise BadFilter(f"unknown stage: {self.pipeline_stage[:64]}")
        since, until = day_range(self.date_from, self.date_to)
        return events.EventFilter(
            event_types=self.event_types,
            pipeline_stage=self.pipeline_stage or None,
            organization_id=self.organization_id or None,
            artifact_id=self.artifact_id.strip() or None,
            errors_only=self.errors_only,
            since=since,
            until=until,
        )

    def params(self) -> list[tuple[str, str]]:
        """The page's own query parameters (repeatable ``event_type``)."""
        out = [("event_type", t) for t in self.event_types]
        for key, value in (
            ("pipeline_stage", self.pipeline_stage),
            ("organization_id", self.organization_id),
            ("artifact_id", self.artifact_id.strip()),
            ("errors_only", "1" if self.errors_only else ""),
            ("from", self.date_from),
            ("to", self.date_to),
        ):
            if value:
                out.append((key, value))
        return out


def _api_event_params(f: events.EventFilter) -> list[tuple[str, str]]:
    """The same filters as ``/api/v1/events(.csv)`` takes them (times in epoch ms)."""
    out = [("event_type", t) for t in f.event_types]
    for key, value in (
        ("pipeline_stage", f.pipeline_stage),
        ("organization_id", f.organization_id),
        ("artifact_id", f.artifact_id),
        ("errors_only", "true" if f.errors_only else None),
        ("since", f.since),
        ("until", f.until),
    ):
        if value is not None:
            out.append((key, str(value)))
    return out


def _decorate_events(engine: Engine, items: list[dict[str, Any]]) -> None:
    orgs, _users = _names(engine, (e.get("organization_id") for e in items), ())
    for item in items:
        item["payload"] = dict(item)  # the event as stored and served by the API
        item["organization_name"] = orgs.get(item.get("organization_id") or "", None)
        item["details"] = event_details(item)
        item["kind"] = _kind(item["event_type"])


def _kind(event_type: str) -> str:
    found = model.EVENT_TYPES_BY_NAME.get(event_type)
    return found.kind.value if found else "info"


def events_page(engine: Engine, query: EventQuery, *, limit: int | None = None) -> dict[str, Any]:
    """The event log, newest first, with names, one-line details and the export filters."""
    limit = limit or PAGE_SIZE
    filters = query.to_filter()
    try:
        items, next_cursor = events.recent_events(
            engine, filters, limit=limit, cursor=query.cursor or None
        )
    except events.CursorError as exc:
        raise BadFilter("invalid cursor") from exc
    _decorate_events(engine, items)
    orgs = organization_choices(engine)
    api_params = _api_event_params(filters)
    return {
        "query": query,
        "items": items,
        "next_cursor": next_cursor,
        "page_params": query.params(),
        "api_params": api_params,
        "organizations": orgs,
        "event_types": [t.name for t in model.EVENT_TYPES],
        "stages": _STAGE_ORDER,
        # what the live updates need to tell whether a new event matches the filters
        "live": {
            "event_types": list(filters.event_types),
            "pipeline_stage": filters.pipeline_stage,
            "organization_id": filters.organization_id,
            "artifact_id": filters.artifact_id,
            "errors_only": filters.errors_only,
            "since": filters.since,
            "until": filters.until,
            "failure_types": sorted(model.FAILURE_EVENT_TYPES),
            "kinds": {t.name: t.kind.value for t in model.EVENT_TYPES},
            "org_names": {o["id"]: o["name"] for o in orgs},
            "paused": bool(query.cursor),
        },
    }


# --- /metrics -----------------------------------------------------------------------------


def _confidences(engine: Engine, since: int, until: int) -> dict[str, Any]:
    """Histogram of transcript and claim confidences in [since, until).

    A bounded query: the most recent ``CONFIDENCE_SAMPLE`` ``transcription_completed``
    and ``claims_extracted`` events of the range (their ``confidence_score``: the
    transcript's confidence, and the average confidence of the note's claims),
    read through the (event_type, timestamp) index, bucketed in tenths.
    """
    out: dict[str, Any] = {"bins": [round((i + 0.5) / CONFIDENCE_BINS, 3)
                                    for i in range(CONFIDENCE_BINS)]}  # fmt: skip
    with read_connection(engine) as conn:
        for key, event_type in (
            ("transcript", "transcription_completed"),
            ("claims", "claims_extracted"),
        ):
            query = (
                select(events_t.c.confidence_score)
                .where(
                    events_t.c.event_type == event_type,
                    events_t.c.timestamp >= since,
                    events_t.c.timestamp < until,
                    events_t.c.confidence_score.is_not(None),
                )
                .order_by(events_t.c.timestamp.desc())
                .limit(CONFIDENCE_SAMPLE)
            )
            counts = [0] * CONFIDENCE_BINS
            n = 0
            for (value,) in conn.execute(query):
                index = min(CONFIDENCE_BINS - 1, max(0, int(float(value) * CONFIDENCE_BINS)))
                counts[index] += 1
                n += 1
            out[key] = counts
            out[f"{key}_n"] = n
    out["sample"] = CONFIDENCE_SAMPLE
    return out


def metrics_page(engine: Engine, range_name: str, *, now: int | None = None) -> dict[str, Any]:
    """Cards, chart series and the per-organization table for the last ``range_name``."""
    if range_name not in METRIC_RANGES:
        raise BadFilter(f"range must be one of {', '.join(METRIC_RANGES)}")
    now = now_ms() if now is None else now
    hist = metrics.history(engine, range_name, now=now)
    summary = hist["summary"]
    snaps = hist["snapshots"]
    received = summary["artifacts_received"]
    cards = {
        "received": received,
        "completed": summary["artifacts_completed"],
        "failed": summary["artifacts_failed"],
        "completion_rate": summary["artifacts_completed"] / received if received else None,
        "avg_e2e_ms": summary["avg_end_to_end_latency"] if summary["artifacts_completed"] else None,
        "p95_e2e_ms": summary["p95_end_to_end_latency"] if summary["artifacts_completed"] else None,
        "total_ai_cost": summary["total_ai_cost"],
        "auto_resolution_rate": summary["auto_resolution_rate"]
        if summary["total_entities_resolved"] or summary["auto_resolution_rate"]
        else None,
        "disambiguation_backlog": alerts.disambiguation_backlog(engine),
    }
    charts = {
        "period_type": hist["period_type"],
        "period_seconds": 3600 if hist["period_type"] == "hourly" else 86400,
        "x": [s["period_start"] // 1000 for s in snaps],
        "received": [s["artifacts_received"] for s in snaps],
        "completed": [s["artifacts_completed"] for s in snaps],
        "failed": [s["artifacts_failed"] for s in snaps],
        "latency": {stage: [s[f"avg_{stage}_latency"] for s in snaps] for stage in LATENCY_STAGES},
        "failure_rate": [s["overall_failure_rate"] for s in snaps],
        "stage_failure_rate": {
            stage: [s[f"{stage}_failure_rate"] for s in snaps]
            for stage in ("transcription", "claims_extraction", "entity_resolution")
        },
        "cost": [s["total_ai_cost"] for s in snaps],
        "confidence": _confidences(engine, hist["since"], now),
    }
    return {
        "range": range_name,
        "ranges": METRIC_RANGES,
        "since": hist["since"],
        "until": now,
        "period_type": hist["period_type"],
        "periods": len(snaps),
        "cards": cards,
        "charts": charts,
        "orgs": metrics.org_breakdown(engine, range_name, now=now)["organizations"],
    }
