"""audit parity: the log index of every verifier input the registry logs as a record or
declaration, so the verifier's snapshot is cut at the same log size a partner replays

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TABLES = (
    "installations",
    "landmarks",
    "meters",
    "transfer_conditions",
    "cluster_budgets",
    "cluster_notifications",
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("log_index", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("log_index")
