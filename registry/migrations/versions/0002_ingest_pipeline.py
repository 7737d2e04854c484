"""ingest pipeline: each report envelope stored once, as its log entry's body

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 19:00:00

``reports.envelope`` duplicated ``log_entries.body`` byte for byte (the log entry at
``reports.log_index``); the ingest path now writes it once. Downgrade copies it back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("envelope")


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("envelope", sa.LargeBinary(), nullable=True))
    op.execute(
        "UPDATE reports SET envelope = (SELECT body FROM log_entries "
        'WHERE log_entries."index" = reports.log_index)'
    )
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("envelope", existing_type=sa.LargeBinary(), nullable=False)
