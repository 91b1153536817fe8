"""users.session_generation: revocable sessions

Each session cookie carries the generation it was issued in; signing out, a
password change and removing the account move the user past it, so every
older cookie stops working at once (issue 16).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False),
    )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("session_generation")
