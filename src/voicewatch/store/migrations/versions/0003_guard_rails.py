"""guard rails: audit log, rate-limit overrides, stage deferrals, simulated outages

Revision ID: 0003
Revises: 0002 (re-chained after security's 0002 when main was merged in)
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_target_at", "audit_log", ["target", "at_ms"], unique=False)
    op.create_index("ix_audit_log_at", "audit_log", ["at_ms"], unique=False)
    op.create_table(
        "rate_limit_overrides",
        sa.Column("organization_id", sa.String(length=128), nullable=False),
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("max_per_minute", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("organization_id", "service", name=op.f("pk_rate_limit_overrides")),
    )
    op.create_table(
        "stage_deferrals",
        sa.Column("artifact_id", sa.String(length=128), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("first_deferred_at", sa.BigInteger(), nullable=False),
        sa.Column("deferred_until", sa.BigInteger(), nullable=False),
        sa.Column("deferrals", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("artifact_id", "attempt", "stage", name=op.f("pk_stage_deferrals")),
    )
    op.create_table(
        "simulated_outages",
        sa.Column("service", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.BigInteger(), nullable=False),
        sa.Column("ends_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("service", name=op.f("pk_simulated_outages")),
    )


def downgrade() -> None:
    op.drop_table("simulated_outages")
    op.drop_table("stage_deferrals")
    op.drop_table("rate_limit_overrides")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index("ix_audit_log_target_at", table_name="audit_log")
    op.drop_table("audit_log")
