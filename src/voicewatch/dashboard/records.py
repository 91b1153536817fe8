"""Artifact records as staff see them: the grid (filters, cursor pages) and one artifact's story.

Reads the pipeline's records, the event log (the timeline) and the retry
history; organization names come in one batched query per page
(``voicewatch.names``), never one per row. The API and the pages both read
artifacts through here.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from voicewatch import event_queries
from voicewatch.names import coach_labels, organization_names
from voicewatch.retry import retry_history
from voicewatch.store import read_connection
from voicewatch.store.tables import (
    insight_drafts,
    voice_note_claims,
    voice_note_entity_resolutions,
    voice_note_transcripts,
)
from voicewatch.store.tables import (
    voice_note_artifacts as artifacts_t,
)


@dataclass(frozen=True)
class ArtifactFilter:
    """Grid filters; times are epoch ms (``until`` exclusive); ``q`` is an id prefix."""

    status: str | None = None
    organization_id: str | None = None
    source_channel: str | None = None
    since: int | None = None
    until: int | None = None
    q: str | None = None

    def conditions(self) -> list[Any]:
        conds: list[Any] = []
        if self.status:
            conds.append(artifacts_t.c.status == self.status)
        if self.organization_id:
            conds.append(artifacts_t.c.organization_id == self.organization_id)
        if self.source_channel:
            conds.append(artifacts_t.c.source_channel == self.source_channel)
        if self.since is not None:
            conds.append(artifacts_t.c.created_at >= self.since)
        if self.until is not None:
            conds.append(artifacts_t.c.created_at < self.until)
        if self.q:
            escaped = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conds.append(artifacts_t.c.artifact_id.like(escaped + "%", escape="\\"))
        return conds


class CursorError(ValueError):
    """Not a cursor this server handed out."""


def _encode(created_at: int, artifact_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at}|{artifact_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()).decode()
        created, artifact_id = raw.split("|", 1)
        created_at = int(created)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise CursorError("invalid cursor") from exc
    if not 0 <= created_at < 2**63:
        raise CursorError("invalid cursor")
    return created_at, artifact_id


_GRID_COLUMNS = (
    artifacts_t.c.artifact_id,
    artifacts_t.c.organization_id,
    artifacts_t.c.coach_user_id,
    artifacts_t.c.source_channel,
    artifacts_t.c.kind,
    artifacts_t.c.status,
    artifacts_t.c.current_stage,
    artifacts_t.c.error_message,
    artifacts_t.c.attempt,
    artifacts_t.c.created_at,
    artifacts_t.c.updated_at,
    artifacts_t.c.completed_at,
)


def _name_coach(row: dict[str, Any], labels: dict[str, dict[str, str]]) -> None:
    """``coach_name`` (full) and ``coach_short`` ("J. Murphy") beside ``coach_user_id``.

    A coach nobody has named yet shows the id as the name (``names.coach_labels``).
    """
    label = labels.get(row["coach_user_id"] or "")
    row["coach_name"] = label["name"] if label else row["coach_user_id"]
    row["coach_short"] = label["short"] if label else row["coach_user_id"]


def list_artifacts(
    engine: Engine,
    filters: ArtifactFilter | None = None,
    *,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Artifacts newest first, a page at a time, with organization names and claim counts."""
    conds = (filters or ArtifactFilter()).conditions()
    if cursor:
        created, artifact_id = _decode(cursor)
        conds.append(
            or_(
                artifacts_t.c.created_at < created,
                and_(artifacts_t.c.created_at == created, artifacts_t.c.artifact_id < artifact_id),
            )
        )
    query = (
        select(*_GRID_COLUMNS)
        .where(*conds)
        .order_by(artifacts_t.c.created_at.desc(), artifacts_t.c.artifact_id.desc())
        .limit(limit + 1)
    )
    with read_connection(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = _encode(rows[-1]["created_at"], rows[-1]["artifact_id"])
        ids = [r["artifact_id"] for r in rows]
        names = organization_names(conn, (r["organization_id"] for r in rows))
        coaches = coach_labels(conn, (r["coach_user_id"] for r in rows))
        claim_stats: dict[str, dict[str, int]] = {}
        if ids:
            for claim in conn.execute(
                select(voice_note_claims.c.artifact_id, voice_note_claims.c.status).where(
                    voice_note_claims.c.artifact_id.in_(ids)
                )
            ):
                stat = claim_stats.setdefault(claim.artifact_id, {"claims": 0, "disambiguation": 0})
                stat["claims"] += 1
                stat["disambiguation"] += claim.status == "needs_disambiguation"
    for row in rows:
        row["organization_name"] = names.get(row["organization_id"], row["organization_id"])
        _name_coach(row, coaches)
        stat = claim_stats.get(row["artifact_id"], {"claims": 0, "disambiguation": 0})
        row["claim_count"] = stat["claims"]
        row["disambiguation_count"] = stat["disambiguation"]
        row["latency_ms"] = row["completed_at"] - row["created_at"] if row["completed_at"] else None
    return rows, next_cursor


def artifact_detail(engine: Engine, artifact_id: str) -> dict[str, Any] | None:
    """One artifact with transcript, claims (each with resolutions and draft), events, retries."""
    with read_connection(engine) as conn:
        row = conn.execute(
            select(artifacts_t).where(artifacts_t.c.artifact_id == artifact_id)
        ).first()
        if row is None:
            return None
        artifact = dict(row._mapping)
        artifact.pop("fail_plan", None)
        org = artifact["organization_id"]
        artifact["organization_name"] = organization_names(conn, [org]).get(org, org)
        _name_coach(artifact, coach_labels(conn, [artifact["coach_user_id"]]))
        transcript_row = conn.execute(
            select(voice_note_transcripts).where(
                voice_note_transcripts.c.artifact_id == artifact_id
            )
        ).first()
        transcript = dict(transcript_row._mapping) if transcript_row else None
        if transcript:
            transcript["segments"] = json.loads(transcript["segments"] or "[]")
        claims = [
            dict(r._mapping)
            for r in conn.execute(
                select(voice_note_claims)
                .where(voice_note_claims.c.artifact_id == artifact_id)
                .order_by(voice_note_claims.c.ordinal)
            )
        ]
        resolutions = [
            dict(r._mapping)
            for r in conn.execute(
                select(voice_note_entity_resolutions)
                .where(voice_note_entity_resolutions.c.artifact_id == artifact_id)
                .order_by(voice_note_entity_resolutions.c.resolution_id)
            )
        ]
        drafts = {
            r.claim_id: dict(r._mapping)
            for r in conn.execute(
                select(insight_drafts).where(insight_drafts.c.artifact_id == artifact_id)
            )
        }
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for res in resolutions:
        res["candidates"] = json.loads(res["candidates"] or "[]")
        by_claim.setdefault(res["claim_id"], []).append(res)
    for claim in claims:
        claim["mentioned_names"] = json.loads(claim["mentioned_names"] or "[]")
        claim["resolutions"] = by_claim.get(claim["claim_id"], [])
        claim["draft"] = drafts.get(claim["claim_id"])
    return {
        "artifact": artifact,
        "transcript": transcript,
        "claims": claims,
        "events": event_queries.artifact_timeline(engine, artifact_id),
        "retries": retry_history(engine, artifact_id),
    }
