"""A coach's inbox: pending drafts and names waiting for a person, oldest first.

One query each (drafts joined to their note, claim and player; names joined to
their note and claim), so a page of items costs the same however long it is.
``coach_user_id=None`` is every coach's (the staff's disambiguation queue), and
each item carries its coach's id and label so staff see whom they act for.
A name "waits" when it is ambiguous, or matched nobody and no person said so
yet (``not_on_roster``: a new player or a nickname, or not a player at all).
Beside them, what was applied without asking and may still be undone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from voicewatch.metrics.live import waiting_condition
from voicewatch.model import DraftStatus, ResolutionStatus
from voicewatch.names import coach_labels, organization_names
from voicewatch.store import read_connection
from voicewatch.store.tables import (
    insight_drafts,
    players,
    voice_note_artifacts,
    voice_note_claims,
    voice_note_entity_resolutions,
    voice_note_insights,
)

art = voice_note_artifacts
res_t = voice_note_entity_resolutions
MAX_ITEMS = 500


@dataclass(frozen=True)
class Created:
    """Items created in [``since``, ``until``] (epoch ms, both ends in; None: open)."""

    since: int | None = None
    until: int | None = None


ANY_TIME = Created()


def _page(
    query: Any,
    table: Any,
    coach_user_id: str | None,
    organization_id: str | None,
    limit: int,
    created: Created = ANY_TIME,
) -> Any:
    """``query`` narrowed to one coach (None: all), organization and creation time, a page
    of at most ``limit``."""
    if coach_user_id is not None:
        owner = table.c.coach_user_id if "coach_user_id" in table.c else art.c.coach_user_id
        query = query.where(owner == coach_user_id)
    if organization_id:
        query = query.where(table.c.organization_id == organization_id)
    if created.since is not None:
        query = query.where(table.c.created_at >= created.since)
    if created.until is not None:
        query = query.where(table.c.created_at <= created.until)
    return query.limit(max(1, min(limit, MAX_ITEMS)))


def _rows(engine: Engine, query: Any) -> list[dict[str, Any]]:
    """The page's rows, each with its coach's label and organization's name."""
    with read_connection(engine) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
        _label(conn, rows)
    return rows


def pending_drafts(
    engine: Engine,
    coach_user_id: str | None,
    *,
    organization_id: str | None = None,
    limit: int = 100,
    created: Created = ANY_TIME,
) -> list[dict[str, Any]]:
    """Pending drafts of one coach (or all), oldest first, with the player's name."""
    query = (
        select(
            insight_drafts,
            art.c.coach_user_id,
            art.c.created_at.label("note_created_at"),
            voice_note_claims.c.topic,
            voice_note_claims.c.source_text,
            players.c.name.label("player_name"),
        )
        .join(art, art.c.artifact_id == insight_drafts.c.artifact_id)
        .join(voice_note_claims, voice_note_claims.c.claim_id == insight_drafts.c.claim_id)
        .outerjoin(players, players.c.player_id == insight_drafts.c.player_id)
        .where(insight_drafts.c.status == DraftStatus.PENDING.value)
        .order_by(insight_drafts.c.created_at, insight_drafts.c.draft_id)
    )
    page = _page(query, insight_drafts, coach_user_id, organization_id, limit, created)
    return _rows(engine, page)


def auto_applied(
    engine: Engine,
    coach_user_id: str | None,
    *,
    since: int,
    organization_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Insights applied without asking at or after ``since`` (epoch ms) and not undone,
    newest first: what the coach may still undo (``since`` = now minus the undo window)."""
    ins = voice_note_insights
    query = (
        select(
            ins,
            voice_note_claims.c.source_text,
            players.c.name.label("player_name"),
            insight_drafts.c.ai_confidence,
        )
        .join(insight_drafts, insight_drafts.c.draft_id == ins.c.draft_id)
        .join(voice_note_claims, voice_note_claims.c.claim_id == insight_drafts.c.claim_id)
        .outerjoin(players, players.c.player_id == ins.c.player_id)
        .where(
            ins.c.auto_applied.is_(True),
            ins.c.undone_at.is_(None),
            ins.c.applied_at >= since,
            insight_drafts.c.status == DraftStatus.APPLIED.value,
        )
        .order_by(ins.c.applied_at.desc(), ins.c.insight_id)
    )
    return _rows(engine, _page(query, ins, coach_user_id, organization_id, limit))


def waiting_names(
    engine: Engine,
    coach_user_id: str | None,
    *,
    organization_id: str | None = None,
    limit: int = 100,
    created: Created = ANY_TIME,
) -> list[dict[str, Any]]:
    """Names waiting for a person, oldest first, with the candidates and the claim's text."""
    query = (
        select(
            res_t,
            art.c.coach_user_id,
            voice_note_claims.c.topic,
            voice_note_claims.c.source_text,
        )
        .join(art, art.c.artifact_id == res_t.c.artifact_id)
        .join(voice_note_claims, voice_note_claims.c.claim_id == res_t.c.claim_id)
        .where(waiting_condition())
        .order_by(res_t.c.created_at, res_t.c.resolution_id)
    )
    rows = _rows(engine, _page(query, res_t, coach_user_id, organization_id, limit, created))
    for row in rows:
        row["candidates"] = json.loads(row["candidates"] or "[]")
        row["not_on_roster"] = row["status"] == ResolutionStatus.UNRESOLVED.value
    return rows


def inbox_view(
    engine: Engine, coach_user_id: str | None, *, now: int, undo_window_ms: int
) -> dict[str, Any]:
    """The inbox page's context: ``names`` (each with ``others``: the roster players not
    among its candidates, one roster read per organization), ``drafts`` and ``applied``
    (what may still be undone, each with ``undo_until`` in epoch ms)."""
    from voicewatch.pipeline.facade import roster

    names = waiting_names(engine, coach_user_id)
    rosters = {org: roster(engine, org) for org in {n["organization_id"] for n in names}}
    for item in names:
        offered = {c["entity_id"] for c in item["candidates"]}
        item["others"] = [
            e
            for e in rosters[item["organization_id"]]
            if e.entity_type == "player" and e.entity_id not in offered
        ]
    applied = auto_applied(engine, coach_user_id, since=now - undo_window_ms)
    for row in applied:
        row["undo_until"] = int(row["applied_at"]) + undo_window_ms
    return {"names": names, "drafts": pending_drafts(engine, coach_user_id), "applied": applied}


def _label(conn: Any, rows: list[dict[str, Any]]) -> None:
    """Each row's coach label and organization name (one query per kind for the page)."""
    coaches = coach_labels(conn, (r["coach_user_id"] for r in rows))
    orgs = organization_names(conn, (r["organization_id"] for r in rows))
    for row in rows:
        row["coach"] = coaches.get(row["coach_user_id"])
        row["organization_name"] = orgs.get(row["organization_id"], row["organization_id"])
