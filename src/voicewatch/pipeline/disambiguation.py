"""The pipeline side of a name waiting for a person: resolve it, move the claim on.

Entity resolution leaves a name ``needs_disambiguation`` when several players
fit, and ``unresolved`` when none does (shown to the coach as "not on the
roster?", because a new player or a nickname looks exactly like that). A
person picks one of the candidates, another player of the roster, or "not a
player":

- the resolution becomes ``user_resolved`` (with the entity) or ``unresolved``,
  with ``resolved_by`` set, so it leaves the backlog;
- when no name of the claim waits any longer, the claim becomes ``resolved`` and
  its draft is generated then (``draft_generation_started`` and ``drafts_generated``
  through the emitter); a claim that already had a draft (an "unresolved" name
  does not hold its claim back) gets its player filled in while still pending;
- a chosen player teaches an alias for that coach (``use_count`` grows), so the
  next note from that coach with the same name resolves by itself.

Why the claim row is locked first: two names of one claim resolved at once
(PostgreSQL runs both transactions together) would each see the other still
waiting, and neither would generate the draft.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select, update

from voicewatch.clock import now_ms
from voicewatch.model import ClaimStatus, DraftStatus, ResolutionStatus, Stage
from voicewatch.pipeline import clubs
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.decisions import (
    Actor,
    Conflict,
    DecisionError,
    NotFound,
    record_decision,
)
from voicewatch.pipeline.drafts import draft_for_claim
from voicewatch.store import write_transaction
from voicewatch.store.tables import (
    insight_drafts,
    voice_note_artifacts,
    voice_note_claims,
    voice_note_entity_resolutions,
)

res_t = voice_note_entity_resolutions
NEEDS = ResolutionStatus.NEEDS_DISAMBIGUATION.value
UNRESOLVED = ResolutionStatus.UNRESOLVED.value


def is_waiting(row: Any) -> bool:
    """A name a person can act on: ambiguous, or matched nobody and no person said so."""
    return row.status == NEEDS or (row.status == UNRESOLVED and not row.resolved_by)


def _load(conn: Connection, resolution_id: str, actor: Actor) -> dict[str, Any]:
    query = (
        select(res_t, voice_note_artifacts.c.coach_user_id, voice_note_artifacts.c.voice_note_id)
        .join(voice_note_artifacts, voice_note_artifacts.c.artifact_id == res_t.c.artifact_id)
        .where(res_t.c.resolution_id == resolution_id)
    )
    row = conn.execute(query).first()
    if row is None or not actor.may_see(row.coach_user_id):
        raise NotFound(f"no waiting name {resolution_id}")
    # The claim first (see the module docstring), then the resolution again under it.
    conn.execute(
        select(voice_note_claims.c.claim_id)
        .where(voice_note_claims.c.claim_id == row.claim_id)
        .with_for_update()
    ).first()
    fresh = conn.execute(select(res_t).where(res_t.c.resolution_id == resolution_id)).one()
    if not is_waiting(fresh):
        raise Conflict(
            f"the name {fresh.raw_text!r} was already resolved "
            f"({fresh.status} by {fresh.resolved_by or 'the pipeline'})"
        )
    item = dict(row._mapping) | dict(fresh._mapping)
    item["candidates"] = json.loads(item["candidates"] or "[]")
    return item


def _entity(engine_roster: list[Any], entity_id: str, organization_id: str) -> Any:
    for entry in engine_roster:
        if entry.entity_id == entity_id:
            return entry
    raise DecisionError(f"{entity_id} is not on the roster of {organization_id}")


def _chosen_first(candidates: list[dict[str, Any]], entry: Any) -> list[dict[str, Any]]:
    """The candidates with the person's choice first (the draft's title names it)."""
    if entry is None:
        return candidates
    chosen = {
        "entity_id": entry.entity_id,
        "name": entry.name,
        "entity_type": entry.entity_type,
        "score": 100.0,
    }
    return [chosen, *(c for c in candidates if c.get("entity_id") != entry.entity_id)]


def resolve_waiting_name(
    ctx: PipelineContext,
    resolution_id: str,
    actor: Actor,
    *,
    entity_id: str | None,
    now: int | None = None,
) -> dict[str, Any]:
    """Resolve a waiting name to ``entity_id`` (a roster player or team) or None (not a player).

    Returns ``{"resolution": ..., "draft": the draft generated or updated, or None}``.

    :raises NotFound: no such name for this actor.
    :raises Conflict: somebody already resolved it.
    :raises DecisionError: ``entity_id`` is not on the organization's roster.
    """
    at = now_ms() if now is None else now
    with write_transaction(ctx.engine) as conn:
        item = _load(conn, resolution_id, actor)
        roster = clubs.roster(ctx.engine, item["organization_id"]) if entity_id else []
        entry = _entity(roster, entity_id, item["organization_id"]) if entity_id else None
        status = ResolutionStatus.USER_RESOLVED.value if entry else UNRESOLVED
        conn.execute(
            update(res_t)
            .where(res_t.c.resolution_id == resolution_id)
            .values(
                status=status,
                resolved_entity_id=entry.entity_id if entry else None,
                resolved_entity_type=entry.entity_type if entry else None,
                score=100.0 if entry else None,
                candidates=json.dumps(_chosen_first(item["candidates"], entry)),
                resolved_by=actor.id[:128],
                updated_at=at,
            )
        )
        record_decision(
            conn,
            subject="name",
            subject_id=resolution_id,
            item=item,
            actor_id=actor.id,
            on_behalf=actor.on_behalf_of(item["coach_user_id"]),
            action=status,
            at=at,
            waited_ms=max(0, at - int(item["created_at"])),
            entity_id=entry.entity_id if entry else None,
        )
        draft, generated = _move_claim_on(conn, item["claim_id"], at)
    if entry is not None:
        clubs.learn_alias(
            ctx.engine,
            item["coach_user_id"],
            item["organization_id"],
            item["raw_text"],
            entry.entity_id,
        )
    if generated and draft is not None:
        _emit_late_draft(ctx, item, draft, at)
        from voicewatch.pipeline.autoapply import apply_above_threshold

        if apply_above_threshold(ctx, item["artifact_id"], at):
            draft["status"] = "applied"
    item.update(status=status, resolved_entity_id=entry.entity_id if entry else None)
    return {"resolution": item, "draft": draft}


def _move_claim_on(conn: Connection, claim_id: str, at: int) -> tuple[dict[str, Any] | None, bool]:
    """Generate the claim's draft once no name of it waits; (draft, whether it is new)."""
    resolutions = [
        dict(r._mapping) | {"candidates": json.loads(r.candidates or "[]")}
        for r in conn.execute(select(res_t).where(res_t.c.claim_id == claim_id))
    ]
    if any(r["status"] == NEEDS for r in resolutions):
        return None, False
    claim = conn.execute(
        select(voice_note_claims).where(voice_note_claims.c.claim_id == claim_id)
    ).one()
    fields = draft_for_claim(dict(claim._mapping), resolutions)
    existing = conn.execute(
        select(insight_drafts).where(insight_drafts.c.claim_id == claim_id)
    ).first()
    if existing is not None:
        if existing.status == DraftStatus.PENDING.value and fields["player_id"]:
            conn.execute(
                update(insight_drafts)
                .where(insight_drafts.c.draft_id == existing.draft_id)
                .values(player_id=fields["player_id"], title=fields["title"][:300])
            )
        row = conn.execute(
            select(insight_drafts).where(insight_drafts.c.draft_id == existing.draft_id)
        ).one()
        return dict(row._mapping), False
    conn.execute(
        update(voice_note_claims)
        .where(voice_note_claims.c.claim_id == claim_id)
        .values(status=ClaimStatus.RESOLVED.value)
    )
    draft = {
        "draft_id": f"{claim_id}.d",
        "artifact_id": claim.artifact_id,
        "claim_id": claim_id,
        "organization_id": claim.organization_id,
        "player_id": fields["player_id"],
        "title": fields["title"][:300],
        "body": fields["body"],
        "ai_confidence": fields["ai_confidence"],
        "status": DraftStatus.PENDING.value,
        "created_at": at,
    }
    conn.execute(insight_drafts.insert().values(**draft))
    return draft, True


def _emit_late_draft(
    ctx: PipelineContext, item: dict[str, Any], draft: dict[str, Any], at: int
) -> None:
    """The claim's draft generation, told as the draft stage tells it (ids per claim)."""
    base = {
        "artifact_id": item["artifact_id"],
        "voice_note_id": item.get("voice_note_id"),
        "organization_id": item["organization_id"],
        "coach_user_id": item["coach_user_id"],
        "pipeline_stage": Stage.DRAFT_GENERATION.value,
    }
    prefix = f"{item['artifact_id']}.claim.{draft['claim_id']}"
    ctx.emit(
        "draft_generation_started",
        event_id=f"{prefix}.draft_generation_started",
        stage_started_at=at,
        timestamp=at,
        **base,
    )
    ctx.emit(
        "drafts_generated",
        event_id=f"{prefix}.drafts_generated",
        stage_started_at=at,
        stage_completed_at=at,
        duration_ms=0.0,
        timestamp=at,
        metadata={"draft_count": 1, "confidence_score": draft["ai_confidence"]},
        **base,
    )
