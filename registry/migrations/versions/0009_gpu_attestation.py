"""GPU attestation: the chip's GPU hardware identity and the registry's GPU challenges

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 20:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chips", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hardware_id", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("hardware_attested_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.create_unique_constraint(op.f("uq_chips_hardware_id"), ["hardware_id"])
    op.create_table(
        "gpu_challenges",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("chip_public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_gpu_challenges")),
    )
    op.create_table(
        "gpu_attestations",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("hardware_id", sa.String(length=64), nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_gpu_attestations_chip_id_chips")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_attestations")),
        sa.UniqueConstraint("log_index", name=op.f("uq_gpu_attestations_log_index")),
    )
    op.create_index(
        op.f("ix_gpu_attestations_chip_id"), "gpu_attestations", ["chip_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_gpu_attestations_chip_id"), table_name="gpu_attestations")
    op.drop_table("gpu_attestations")
    op.drop_table("gpu_challenges")
    with op.batch_alter_table("chips", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("uq_chips_hardware_id"), type_="unique")
        batch_op.drop_column("hardware_attested_at")
        batch_op.drop_column("hardware_id")
