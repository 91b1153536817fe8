"""Auto-apply: a draft at or above its coach's threshold is applied without asking.

Each coach's threshold is a row of ``coach_thresholds`` (set by the daily
calibration, ``coaching.calibration``, or by staff); a coach without one is
never auto-applied. An auto-applied draft becomes ``applied`` with an insight
marked ``auto_applied``, an audit row (``coach_decisions``, action
``auto_applied``, decided by ``system``) and a ``draft_confirmed`` event whose
``new_status`` is ``auto_applied`` (the confirmation stage's timeline shows it;
the decision metrics keep it apart from a person's confirms, ``metrics.decisions``).
Within the undo window the coach (or staff for them) may undo it: the insight
gets ``undone_at``/``undone_by``, the draft returns to ``pending`` for a person
to decide, and an ``undone`` row records who and when (no event: none of the 25
types says it). After the window, undo is a :class:`Conflict` (409).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from voicewatch.clock import now_ms, to_iso
from voicewatch.model import DraftStatus
from voicewatch.pipeline.context import PipelineContext
from voicewatch.pipeline.decisions import (
    SYSTEM,
    Actor,
    Conflict,
    DecisionError,
    apply_insight,
    emit_decision,
    load_draft,
    record_decision,
)
from voicewatch.store import write_transaction
from voicewatch.store.tables import (
    coach_thresholds,
    insight_drafts,
    voice_note_artifacts,
    voice_note_insights,
)


def threshold_of(conn: Connection, coach_user_id: str) -> float | None:
    """The coach's auto-apply threshold, or None (never auto-apply)."""
    value = conn.execute(
        select(coach_thresholds.c.threshold).where(
            coach_thresholds.c.coach_user_id == coach_user_id
        )
    ).scalar()
    return None if value is None else float(value)


def set_threshold(
    conn: Connection, coach_user_id: str, organization_id: str, threshold: float, at: int
) -> None:
    """Insert or replace the coach's threshold (inside the caller's transaction)."""
    if not 0.0 <= threshold <= 1.0:
        raise DecisionError("a threshold is between 0 and 1")
    done = conn.execute(
        update(coach_thresholds)
        .where(coach_thresholds.c.coach_user_id == coach_user_id)
        .values(threshold=threshold, organization_id=organization_id, updated_at=at)
    )
    if done.rowcount != 1:
        conn.execute(
            coach_thresholds.insert().values(
                coach_user_id=coach_user_id,
                organization_id=organization_id,
                threshold=threshold,
                updated_at=at,
            )
        )


#: ``new_status`` of the ``draft_confirmed`` event of a draft applied without asking.
AUTO_APPLIED = "auto_applied"


def apply_above_threshold(ctx: PipelineContext, artifact_id: str, now: int | None = None) -> int:
    """Auto-apply the artifact's pending drafts at or above its coach's threshold.

    Each applied draft is told as a confirmation: a ``draft_confirmed`` event at
    stage ``confirmation`` (``new_status`` ``auto_applied``, ``confidence_score`` the
    draft's), emitted after the transaction commits. Idempotent: only pending
    drafts move, each under the same guard as a person's decision. Returns how
    many were applied.
    """
    at = now_ms() if now is None else now
    with write_transaction(ctx.engine) as conn:
        applied = _apply(conn, artifact_id, at)
    for draft, decision_id, waited in applied:
        emit_decision(
            ctx,
            draft,
            "draft_confirmed",
            decision_id,
            at=at,
            waited_ms=waited,
            new_status=AUTO_APPLIED,
        )
    return len(applied)


def _apply(conn: Connection, artifact_id: str, at: int) -> list[tuple[dict[str, Any], int, int]]:
    """Apply what is at or above the threshold: ``[(draft, decision id, waited ms)]``."""
    note = conn.execute(
        select(voice_note_artifacts.c.coach_user_id).where(
            voice_note_artifacts.c.artifact_id == artifact_id
        )
    ).first()
    threshold = threshold_of(conn, note.coach_user_id) if note else None
    if threshold is None:
        return []
    candidates = conn.execute(
        select(insight_drafts.c.draft_id).where(
            insight_drafts.c.artifact_id == artifact_id,
            insight_drafts.c.status == DraftStatus.PENDING.value,
            insight_drafts.c.ai_confidence >= threshold,
        )
    ).all()
    applied = []
    for (draft_id,) in candidates:
        draft = load_draft(conn, draft_id, Actor.staff(SYSTEM))
        taken = conn.execute(
            update(insight_drafts)
            .where(
                insight_drafts.c.draft_id == draft_id,
                insight_drafts.c.status == DraftStatus.PENDING.value,
            )
            .values(status=DraftStatus.APPLIED.value, decided_by=SYSTEM, decided_at=at)
        )
        if taken.rowcount != 1:
            continue
        apply_insight(conn, draft, draft["body"], at, auto=True)
        waited = max(0, at - int(draft["created_at"]))
        decision_id = record_decision(
            conn,
            subject="draft",
            subject_id=draft_id,
            item=draft,
            actor_id=SYSTEM,
            on_behalf=False,
            action="auto_applied",
            at=at,
            ai_confidence=draft["ai_confidence"],
            waited_ms=waited,
            text=f"threshold {threshold:g}",
        )
        applied.append((draft, decision_id, waited))
    return applied


def undo_auto_apply(
    ctx: PipelineContext,
    draft_id: str,
    actor: Actor,
    *,
    window_ms: int,
    now: int | None = None,
) -> dict[str, Any]:
    """Undo an auto-applied draft within ``window_ms`` of its applying; back to pending.

    :raises NotFound: no such draft for this actor (``decisions.NotFound``).
    :raises Conflict: not auto-applied, already undone, or the window has closed.
    """
    at = now_ms() if now is None else now
    with write_transaction(ctx.engine) as conn:
        draft = load_draft(conn, draft_id, actor)
        insight = conn.execute(
            select(voice_note_insights).where(
                voice_note_insights.c.draft_id == draft_id,
                voice_note_insights.c.undone_at.is_(None),
            )
        ).first()
        if insight is None or not insight.auto_applied:
            raise Conflict(f"draft {draft_id} was not auto-applied: nothing to undo")
        closes = int(insight.applied_at) + window_ms
        if at > closes:
            raise Conflict(
                f"the undo window of draft {draft_id} closed at {to_iso(closes)}: "
                "the insight stays applied"
            )
        conn.execute(
            update(voice_note_insights)
            .where(voice_note_insights.c.insight_id == insight.insight_id)
            .values(undone_at=at, undone_by=actor.id[:320])
        )
        conn.execute(
            update(insight_drafts)
            .where(insight_drafts.c.draft_id == draft_id)
            .values(status=DraftStatus.PENDING.value, decided_by=None, decided_at=None)
        )
        record_decision(
            conn,
            subject="draft",
            subject_id=draft_id,
            item=draft,
            actor_id=actor.id,
            on_behalf=actor.on_behalf_of(draft["coach_user_id"]),
            action="undone",
            at=at,
            ai_confidence=draft["ai_confidence"],
            waited_ms=at - int(insight.applied_at),
        )
    return {"draft_id": draft_id, "status": DraftStatus.PENDING.value, "undone_at": at}
