"""The ``/artifacts`` grid and the ``/artifacts/{id}`` page: one read model each.

Each page's route calls one function here and renders the plain dict it
returns: the records (``dashboard.records``, with organization and coach names
in one batched query per kind), per-artifact AI cost (``metrics.artifact_costs``, one
grouped query over the page's artifacts), the retry options and the
timeline's one-line summaries. Times are UTC epoch ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from voicewatch import model
from voicewatch.dashboard import filters as page
from voicewatch.dashboard import records
from voicewatch.dashboard.filters import BadFilter, day_range
from voicewatch.dashboard.summary import event_summary
from voicewatch.metrics import artifact_costs
from voicewatch.names import organization_choices
from voicewatch.retry import RETRY_PLANS

ARTIFACT_STATUSES = [s.value for s in model.ArtifactStatus]
SOURCE_CHANNELS = ("whatsapp", "app")
_STAGE_ORDER = [s.value for s in model.Stage]
_RETRY_LABELS = {
    "full": "Full pipeline",
    "transcription": "Transcription",
    "claims_extraction": "Claims extraction",
    "entity_resolution": "Entity resolution",
}


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

    def to_filter(self) -> records.ArtifactFilter:
        if self.status and self.status not in ARTIFACT_STATUSES:
            raise BadFilter(f"unknown status: {self.status[:32]}")
        if self.source_channel and self.source_channel not in SOURCE_CHANNELS:
            raise BadFilter(f"unknown channel: {self.source_channel[:32]}")
        since, until = day_range(self.date_from, self.date_to)
        return records.ArtifactFilter(
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
    limit = limit or page.PAGE_SIZE
    filters = query.to_filter()
    try:
        rows, next_cursor = records.list_artifacts(
            engine, filters, limit=limit, cursor=query.cursor or None
        )
    except records.CursorError as exc:
        raise BadFilter("invalid cursor") from exc
    costs = artifact_costs(engine, [r["artifact_id"] for r in rows])
    for row in rows:
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
    return [{**e, "details": event_summary(e)} for e in raw]


def artifact_page(engine: Engine, artifact_id: str) -> dict[str, Any] | None:
    """One artifact: header, timeline, transcript, claims, retry panel and history."""
    if not artifact_id or len(artifact_id) > model.ID_MAX_LEN:
        return None
    detail = records.artifact_detail(engine, artifact_id)
    if detail is None:
        return None
    artifact = detail["artifact"]
    _with_decisions(engine, artifact_id, detail["claims"])  # the coach loop
    end = artifact.get("completed_at")
    if end is None and artifact["status"] == model.ArtifactStatus.FAILED.value:
        end = artifact.get("updated_at")
    artifact["processing_ms"] = end - artifact["created_at"] if end else None
    costs = artifact_costs(engine, [artifact_id])
    artifact["ai_cost"] = costs.get(artifact_id)
    return {
        **detail,
        "artifact": artifact,
        "events": _timeline(detail["events"]),
        "retry_options": retry_options(artifact, detail["retries"]),
        "can_retry": artifact["status"] == model.ArtifactStatus.FAILED.value,
    }


def _with_decisions(engine: Engine, artifact_id: str, claims: list[dict[str, Any]]) -> None:
    """Each claim's draft gets its decisions (who, for whom, what) and applied insight."""
    from voicewatch.coaching.staff import draft_decisions

    decided = draft_decisions(engine, artifact_id)
    for claim in claims:
        draft = claim.get("draft")
        if draft:
            draft.update(decided.get(draft["draft_id"], {"decisions": [], "insight": None}))
