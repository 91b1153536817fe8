"""Pending drafts expire after N days (``VOICEWATCH_DRAFT_EXPIRY_DAYS``), with a clear status.

A coach who never answers leaves drafts that would wait for ever; after the
window they become ``expired`` (deciding one is then a 409 that says so), and
each expiry is a ``coach_decisions`` row decided by ``system``. The cutoff is
"created at or before now minus the window", so a run after a missed one
catches up by itself, and a second run finds nothing left to do.
"""

from __future__ import annotations

from sqlalchemy import Engine, select, update

from voicewatch.clock import DAY_MS
from voicewatch.model import DraftStatus
from voicewatch.pipeline.decisions import SYSTEM, record_decision
from voicewatch.store import write_transaction
from voicewatch.store.tables import insight_drafts, voice_note_artifacts

#: Drafts expired per transaction: a long backlog never holds the write lock for long.
BATCH = 500


def expire_drafts(engine: Engine, now: int, *, days: int) -> int:
    """Expire every pending draft created at or before ``now - days``; returns how many."""
    cutoff = now - days * DAY_MS
    total = 0
    while True:
        with write_transaction(engine) as conn:
            rows = conn.execute(
                select(insight_drafts, voice_note_artifacts.c.coach_user_id)
                .join(
                    voice_note_artifacts,
                    voice_note_artifacts.c.artifact_id == insight_drafts.c.artifact_id,
                )
                .where(
                    insight_drafts.c.status == DraftStatus.PENDING.value,
                    insight_drafts.c.created_at <= cutoff,
                )
                .order_by(insight_drafts.c.created_at, insight_drafts.c.draft_id)
                .limit(BATCH)
            ).all()
            for row in rows:
                draft = dict(row._mapping)
                moved = conn.execute(
                    update(insight_drafts)
                    .where(
                        insight_drafts.c.draft_id == draft["draft_id"],
                        insight_drafts.c.status == DraftStatus.PENDING.value,
                    )
                    .values(status=DraftStatus.EXPIRED.value, decided_by=SYSTEM, decided_at=now)
                )
                if moved.rowcount == 1:
                    record_decision(
                        conn,
                        subject="draft",
                        subject_id=draft["draft_id"],
                        item=draft,
                        actor_id=SYSTEM,
                        on_behalf=False,
                        action="expired",
                        at=now,
                        ai_confidence=draft["ai_confidence"],
                        waited_ms=now - int(draft["created_at"]),
                    )
                    total += 1
        if len(rows) < BATCH:
            return total
