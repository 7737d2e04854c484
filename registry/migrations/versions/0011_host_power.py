"""host power: a facility's declared host power model (idle W per host, W per GPU slot, busy W,
GPU slots per host), used by the ghost-chip rule instead of a fixed share of chip power

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 20:15:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_COLUMNS = (
    ("host_gpus_per_host", sa.Integer()),
    ("host_idle_w", sa.Float()),
    ("host_per_gpu_slot_w", sa.Float()),
    ("host_busy_w", sa.Float()),
)


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite has ADD and DROP COLUMN): a batch operation
    # would copy the facilities table, which foreign keys forbid once rows refer to it.
    for name, type_ in _COLUMNS:
        op.add_column("facilities", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _type in reversed(_COLUMNS):
        op.drop_column("facilities", name)
