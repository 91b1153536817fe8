"""coach loop: insights, decisions, auto-apply thresholds and their history

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 01:55:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.String(length=128)
_AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("coach_user_id", _ID, nullable=True))
    with op.batch_alter_table("voice_pipeline_metrics_snapshots") as batch:
        batch.add_column(
            sa.Column("decision_metrics", sa.Text(), server_default="{}", nullable=False)
        )
    op.create_table(
        "voice_note_insights",
        sa.Column("insight_id", _ID, nullable=False),
        sa.Column("draft_id", _ID, nullable=False),
        sa.Column("artifact_id", _ID, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("coach_user_id", _ID, nullable=False),
        sa.Column("player_id", _ID, nullable=True),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("auto_applied", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
        sa.Column("undone_at", sa.BigInteger(), nullable=True),
        sa.Column("undone_by", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("insight_id", name=op.f("pk_voice_note_insights")),
    )
    op.create_index("ix_insights_draft", "voice_note_insights", ["draft_id"])
    op.create_index(
        "ix_insights_player_applied", "voice_note_insights", ["player_id", "applied_at"]
    )
    op.create_index(
        "ix_insights_coach_applied", "voice_note_insights", ["coach_user_id", "applied_at"]
    )
    op.create_table(
        "coach_decisions",
        sa.Column("id", _AUTO_ID, nullable=False),
        sa.Column("subject", sa.String(length=16), nullable=False),
        sa.Column("subject_id", _ID, nullable=False),
        sa.Column("artifact_id", _ID, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("coach_user_id", _ID, nullable=False),
        sa.Column("decided_by", sa.String(length=320), nullable=False),
        sa.Column("on_behalf", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("ai_confidence", sa.Float(), nullable=True),
        sa.Column("waited_ms", sa.BigInteger(), nullable=True),
        sa.Column("entity_id", _ID, nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coach_decisions")),
    )
    op.create_index("ix_decisions_coach_at", "coach_decisions", ["coach_user_id", "at_ms"])
    op.create_index("ix_decisions_action_at", "coach_decisions", ["action", "at_ms"])
    op.create_index("ix_decisions_artifact", "coach_decisions", ["artifact_id"])
    op.create_table(
        "coach_thresholds",
        sa.Column("coach_user_id", _ID, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("coach_user_id", name=op.f("pk_coach_thresholds")),
    )
    op.create_table(
        "coach_threshold_changes",
        sa.Column("id", _AUTO_ID, nullable=False),
        sa.Column("coach_user_id", _ID, nullable=False),
        sa.Column("organization_id", _ID, nullable=False),
        sa.Column("previous", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("figures", sa.Text(), server_default="{}", nullable=False),
        sa.Column("run_key", sa.String(length=32), nullable=False),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coach_threshold_changes")),
        sa.UniqueConstraint("coach_user_id", "run_key", name="uq_threshold_changes_coach_run"),
    )


def downgrade() -> None:
    op.drop_table("coach_threshold_changes")
    op.drop_table("coach_thresholds")
    for name in ("ix_decisions_artifact", "ix_decisions_action_at", "ix_decisions_coach_at"):
        op.drop_index(name, table_name="coach_decisions")
    op.drop_table("coach_decisions")
    for name in ("ix_insights_coach_applied", "ix_insights_player_applied", "ix_insights_draft"):
        op.drop_index(name, table_name="voice_note_insights")
    op.drop_table("voice_note_insights")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("coach_user_id")
    with op.batch_alter_table("voice_pipeline_metrics_snapshots") as batch:
        batch.drop_column("decision_metrics")
