"""sent forms

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sent_forms",
        sa.Column("session_hash", sa.String(length=64), nullable=False),
        sa.Column("form_id", sa.String(length=22), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_hash"],
            ["console_sessions.token_hash"],
            name=op.f("fk_sent_forms_session_hash_console_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_hash", "form_id", name=op.f("pk_sent_forms")),
    )


def downgrade() -> None:
    op.drop_table("sent_forms")
