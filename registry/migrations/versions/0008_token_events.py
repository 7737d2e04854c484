"""token events: the audit trail of API token issuance and revocation (who, what, when, why)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_token_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name=op.f("fk_token_events_token_id_api_tokens")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_events")),
    )
    op.create_index(op.f("ix_token_events_token_id"), "token_events", ["token_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_token_events_token_id"), table_name="token_events")
    op.drop_table("token_events")
