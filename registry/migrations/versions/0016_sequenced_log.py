"""sequence first, integrate after (issue 15): ``log_sequence`` holds the number of sequenced
log entries (the next index to assign), apart from ``log_state``, which keeps the integrated
tree head (size, compact range, root) the integrator moves. Two rows, so that the sequencer's
lock and the integrator's lock never wait on each other (PostgreSQL locks rows).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 03:20:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_sequence")),
    )
    # Every entry stored so far was integrated when it was appended: sequenced = integrated.
    size = op.get_bind().scalar(sa.text("SELECT size FROM log_state WHERE id = 1")) or 0
    log_sequence = sa.table(
        "log_sequence",
        sa.column("id", sa.Integer),
        sa.column("size", sa.BigInteger),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        log_sequence,
        [{"id": 1, "size": int(size), "updated_at": datetime.now(UTC).replace(tzinfo=None)}],
    )


def downgrade() -> None:
    op.drop_table("log_sequence")
