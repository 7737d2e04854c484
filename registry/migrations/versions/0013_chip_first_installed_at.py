"""chips.first_installed_at: when the chip's first declared installation began, kept on the
chip row so ingest reads it with the chain head instead of a min() over the chip's
installations for every chip of every batch; backfilled from the installations

Revision ID: 0013
Revises: 0010
Create Date: 2026-12-03 23:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite has ADD and DROP COLUMN): a batch operation
    # would copy the chips table, which its foreign keys forbid once installations exist.
    op.add_column("chips", sa.Column("first_installed_at", sa.DateTime(timezone=True)))
    op.execute(
        "UPDATE chips SET first_installed_at = ("
        "SELECT min(installations.installed_at) FROM installations "
        "WHERE installations.chip_id = chips.chip_id)"
    )


def downgrade() -> None:
    op.drop_column("chips", "first_installed_at")
