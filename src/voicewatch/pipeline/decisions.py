"""The pipeline side of a coach's decisions about insight drafts: confirm, reject, undo.

A draft waits (``pending``) until its coach, or staff on the coach's behalf,
decides. Confirming (optionally with edited text) makes an insight in
``voice_note_insights`` applied to the player's record, and the draft becomes
``applied``; rejecting (optionally with a reason) makes it ``rejected``. Each
decision is one row of ``coach_decisions`` (who decided, for whom, the draft's
AI confidence and how long it waited) and one event through the pipeline's
emitter: ``draft_confirmed`` / ``draft_rejected`` at stage ``confirmation``.

Why the guarded UPDATE: two decisions about one draft (a double click, a coach
and staff at once) race; ``... WHERE status = 'pending'`` lets exactly one win,
and the other gets a :class:`Conflict` saying what happened first. A coach asking
about another coach's draft gets :class:`NotFound`, the same answer as for a
draft that does not exist, so the answer leaks nothing.

Names waiting for a person are :mod:`voicewatch.pipeline.disambiguation`;
auto-apply and undo are :mod:`voicewatch.pipeline.autoapply`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, update

from voicewatch.clock import now_ms
from voicewatch.model import DraftStatus, Stage
from voicewatch.pipeline.clubs import RecordError
from voicewatch.pipeline.context import PipelineContext
from voicewatch.store import write_transaction
from voicewatch.store.tables import (
    coach_decisions,
    insight_drafts,
    voice_note_artifacts,
    voice_note_insights,
)

#: Longest edited text and rejection reason a decision stores (characters).
MAX_TEXT = 10_000
MAX_REASON = 2_000
#: ``decided_by`` of what the pipeline decides itself (auto-apply, expiry).
SYSTEM = "system"


class DecisionError(RecordError):
    """A decision cannot be made as asked (bad text, a player not on the roster): 422."""

    status_code = 422


class NotFound(DecisionError):
    """No such item for this actor (absent, or another coach's): 404, never 403."""

    status_code = 404


class Conflict(DecisionError):
    """The item was already decided, expired, or the undo window closed: 409."""

    status_code = 409


@dataclass(frozen=True)
class Actor:
    """Who decides. A coach acts for themself; staff act on behalf of the item's coach.

    ``coach_user_id`` is set for a coach (their items only) and None for staff
    (any item, recorded as ``on_behalf``).
    """

    id: str
    coach_user_id: str | None = None

    @classmethod
    def coach(cls, user_id: str) -> Actor:
        return cls(user_id, user_id)

    @classmethod
    def staff(cls, who: str) -> Actor:
        return cls(who, None)

    def may_see(self, coach_user_id: str) -> bool:
        return self.coach_user_id is None or self.coach_user_id == coach_user_id

    def on_behalf_of(self, coach_user_id: str) -> bool:
        return self.id != coach_user_id


def load_draft(conn: Connection, draft_id: str, actor: Actor) -> dict[str, Any]:
    """The draft with its note's coach and ids, locked for this transaction, or NotFound."""
    query = (
        select(
            insight_drafts,
            voice_note_artifacts.c.coach_user_id,
            voice_note_artifacts.c.voice_note_id,
        )
        .join(
            voice_note_artifacts,
            voice_note_artifacts.c.artifact_id == insight_drafts.c.artifact_id,
        )
        .where(insight_drafts.c.draft_id == draft_id)
        .with_for_update(of=insight_drafts)
    )
    row = conn.execute(query).first()
    if row is None or not actor.may_see(row.coach_user_id):
        raise NotFound(f"no draft {draft_id}")
    return dict(row._mapping)


def conflict_for(draft: dict[str, Any]) -> Conflict:
    """The clear message for a draft that is no longer pending."""
    status = draft["status"]
    if status == DraftStatus.EXPIRED.value:
        return Conflict(f"draft {draft['draft_id']} expired: it can no longer be decided")
    who = draft.get("decided_by") or "someone"
    return Conflict(f"draft {draft['draft_id']} was already decided ({status} by {who})")


def record_decision(
    conn: Connection,
    *,
    subject: str,
    subject_id: str,
    item: dict[str, Any],
    actor_id: str,
    on_behalf: bool,
    action: str,
    at: int,
    ai_confidence: float | None = None,
    waited_ms: int | None = None,
    entity_id: str | None = None,
    text: str | None = None,
) -> int:
    """One row of ``coach_decisions``; returns its id (the decision's event id uses it)."""
    result = conn.execute(
        coach_decisions.insert()
        .values(
            subject=subject,
            subject_id=subject_id,
            artifact_id=item["artifact_id"],
            organization_id=item["organization_id"],
            coach_user_id=item["coach_user_id"],
            decided_by=actor_id[:320],
            on_behalf=on_behalf,
            action=action,
            ai_confidence=ai_confidence,
            waited_ms=waited_ms,
            entity_id=entity_id,
            text=text,
            at_ms=at,
        )
        .returning(coach_decisions.c.id)
    )
    return int(result.scalar_one())


def apply_insight(
    conn: Connection, draft: dict[str, Any], body: str, at: int, *, auto: bool
) -> dict[str, Any]:
    """Insert the draft's insight (applied to its player's record); returns the row."""
    count = conn.execute(
        select(func.count()).where(voice_note_insights.c.draft_id == draft["draft_id"])
    ).scalar_one()
    row = {
        "insight_id": f"{draft['draft_id']}.i{int(count) + 1}",
        "draft_id": draft["draft_id"],
        "artifact_id": draft["artifact_id"],
        "organization_id": draft["organization_id"],
        "coach_user_id": draft["coach_user_id"],
        "player_id": draft.get("player_id"),
        "title": draft["title"],
        "body": body,
        "auto_applied": auto,
        "applied_at": at,
        "undone_at": None,
        "undone_by": None,
    }
    conn.execute(voice_note_insights.insert().values(**row))
    return row


def _take(conn: Connection, draft: dict[str, Any], status: str, by: str, at: int) -> None:
    """Move a pending draft to ``status``; a Conflict when another decision won."""
    result = conn.execute(
        update(insight_drafts)
        .where(
            insight_drafts.c.draft_id == draft["draft_id"],
            insight_drafts.c.status == DraftStatus.PENDING.value,
        )
        .values(status=status, decided_by=by[:128], decided_at=at)
    )
    if result.rowcount != 1:
        raise conflict_for(draft)


def emit_decision(
    ctx: PipelineContext,
    item: dict[str, Any],
    event_type: str,
    decision_id: int,
    *,
    at: int,
    waited_ms: int | None,
    new_status: str,
) -> None:
    """A decision's event through the pipeline's emitter (never fails the decision).

    ``previous_status`` is the draft's (``pending``); ``new_status`` is what it became:
    ``applied`` or ``rejected`` by a person, ``auto_applied`` when the coach's
    threshold applied it without asking (``autoapply``), so the timeline and the
    event log tell a person's confirm from the pipeline's.
    """
    confidence = item.get("ai_confidence")  # the draft's, as the seed's metadata has it
    metadata = {"confidence_score": confidence} if confidence is not None else None
    ctx.emit(
        event_type,
        event_id=f"{item['artifact_id']}.decision.{decision_id}",
        artifact_id=item["artifact_id"],
        voice_note_id=item.get("voice_note_id"),
        organization_id=item["organization_id"],
        coach_user_id=item["coach_user_id"],
        pipeline_stage=Stage.CONFIRMATION.value,
        duration_ms=waited_ms,
        timestamp=at,
        previous_status=DraftStatus.PENDING.value,
        new_status=new_status,
        metadata=metadata,
    )


def _clean(text: str | None, limit: int, what: str, *, empty_ok: bool) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise DecisionError(f"{what} must be a string")
    if not text.strip():
        if empty_ok:
            return None
        raise DecisionError(f"{what} is empty")
    if len(text) > limit:
        raise DecisionError(f"{what} is longer than {limit} characters")
    return text  # stored exactly: pages escape it


def confirm_draft(
    ctx: PipelineContext,
    draft_id: str,
    actor: Actor,
    *,
    text: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Confirm a pending draft, optionally with edited ``text``; returns the insight.

    :raises NotFound: no such draft for this actor.
    :raises Conflict: already decided, or expired.
    :raises DecisionError: the edited text is empty or too long.
    """
    edited = _clean(text, MAX_TEXT, "the edited text", empty_ok=False)
    at = now_ms() if now is None else now
    with write_transaction(ctx.engine) as conn:
        draft = load_draft(conn, draft_id, actor)
        if edited == draft["body"]:
            edited = None  # the inbox form sends the text back unchanged: not an edit
        _take(conn, draft, DraftStatus.APPLIED.value, actor.id, at)
        insight = apply_insight(conn, draft, edited or draft["body"], at, auto=False)
        waited = max(0, at - int(draft["created_at"]))
        decision_id = record_decision(
            conn,
            subject="draft",
            subject_id=draft_id,
            item=draft,
            actor_id=actor.id,
            on_behalf=actor.on_behalf_of(draft["coach_user_id"]),
            action="confirmed",
            at=at,
            ai_confidence=draft["ai_confidence"],
            waited_ms=waited,
            text=edited,
        )
    emit_decision(
        ctx,
        draft,
        "draft_confirmed",
        decision_id,
        at=at,
        waited_ms=waited,
        new_status=DraftStatus.APPLIED.value,
    )
    return insight


def reject_draft(
    ctx: PipelineContext,
    draft_id: str,
    actor: Actor,
    *,
    reason: str | None = None,
    now: int | None = None,
) -> dict[str, Any]:
    """Reject a pending draft with an optional ``reason``; returns the decision.

    :raises NotFound: no such draft for this actor.
    :raises Conflict: already decided, or expired.
    """
    why = _clean(reason, MAX_REASON, "the reason", empty_ok=True)
    at = now_ms() if now is None else now
    with write_transaction(ctx.engine) as conn:
        draft = load_draft(conn, draft_id, actor)
        _take(conn, draft, DraftStatus.REJECTED.value, actor.id, at)
        waited = max(0, at - int(draft["created_at"]))
        on_behalf = actor.on_behalf_of(draft["coach_user_id"])
        decision_id = record_decision(
            conn,
            subject="draft",
            subject_id=draft_id,
            item=draft,
            actor_id=actor.id,
            on_behalf=on_behalf,
            action="rejected",
            at=at,
            ai_confidence=draft["ai_confidence"],
            waited_ms=waited,
            text=why,
        )
    emit_decision(
        ctx,
        draft,
        "draft_rejected",
        decision_id,
        at=at,
        waited_ms=waited,
        new_status=DraftStatus.REJECTED.value,
    )
    return {
        "draft_id": draft_id,
        "status": DraftStatus.REJECTED.value,
        "decided_by": actor.id,
        "on_behalf": on_behalf,
        "reason": why,
        "decided_at": at,
    }
