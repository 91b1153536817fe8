"""The coach loop's tables (issue 12): insights, decisions, auto-apply thresholds.

Coaches themselves are ``users`` rows with role "coach" (name, organization);
migration 0004 creates these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from voicewatch.store.tables.meta import ID, metadata

#: A confirmed draft applied to the player's record. A draft whose insight was
#: undone goes back to pending and may be confirmed again, so one draft can have
#: several insight rows over time (``insight_id`` is ``<draft_id>.i<n>``); at
#: most one of them has ``undone_at`` NULL.
voice_note_insights = Table(
    "voice_note_insights",
    metadata,
    Column("insight_id", ID, primary_key=True),
    Column("draft_id", ID, nullable=False),
    Column("artifact_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("coach_user_id", ID, nullable=False),
    Column("player_id", ID),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("auto_applied", Boolean, nullable=False, server_default="0"),
    Column("applied_at", BigInteger, nullable=False),
    Column("undone_at", BigInteger),
    Column("undone_by", String(320)),
    Index("ix_insights_draft", "draft_id"),
    Index("ix_insights_player_applied", "player_id", "applied_at"),
    Index("ix_insights_coach_applied", "coach_user_id", "applied_at"),
)

#: Every decision about a coach's item, one row each: who decided (``decided_by``,
#: a coach id, a staff email, or "system" for auto-apply and expiry) and for whom
#: (``coach_user_id``, the note's coach). ``subject`` is "draft" or "name";
#: ``text`` is the edited body or the rejection reason, stored exactly.
coach_decisions = Table(
    "coach_decisions",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("subject", String(16), nullable=False),  # draft | name
    Column("subject_id", ID, nullable=False),  # draft_id or resolution_id
    Column("artifact_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("coach_user_id", ID, nullable=False),
    Column("decided_by", String(320), nullable=False),
    Column("on_behalf", Boolean, nullable=False, server_default="0"),
    # confirmed | rejected | auto_applied | undone | expired | user_resolved | unresolved
    Column("action", String(32), nullable=False),
    Column("ai_confidence", Float),
    Column("waited_ms", BigInteger),
    Column("entity_id", ID),
    Column("text", Text),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_decisions_coach_at", "coach_user_id", "at_ms"),
    Index("ix_decisions_action_at", "action", "at_ms"),
    Index("ix_decisions_artifact", "artifact_id"),
)

#: Each coach's current auto-apply threshold (a draft at or above it is applied
#: without asking). No row: the configured default.
coach_thresholds = Table(
    "coach_thresholds",
    metadata,
    Column("coach_user_id", ID, primary_key=True),
    Column("organization_id", ID, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

#: Each change the calibration job made, with the figures that drove it (JSON).
coach_threshold_changes = Table(
    "coach_threshold_changes",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("coach_user_id", ID, nullable=False),
    Column("organization_id", ID, nullable=False),
    Column("previous", Float),
    Column("threshold", Float, nullable=False),
    Column("figures", Text, nullable=False, server_default="{}"),
    Column("run_key", String(32), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    UniqueConstraint("coach_user_id", "run_key", name="uq_threshold_changes_coach_run"),
)
# --- end of the coach loop block ----------------------------------------------------------
