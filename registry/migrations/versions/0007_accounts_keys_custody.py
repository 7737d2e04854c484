"""accounts, keys and custody: chip decommission and revocation, operator key history

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chips", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("decommissioned_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("decommission_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("decommission_log_index", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revocation_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("revocation_log_index", sa.BigInteger(), nullable=True))
    op.create_table(
        "operator_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_operator_keys_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_keys")),
    )
    op.create_index(
        op.f("ix_operator_keys_operator_id"), "operator_keys", ["operator_id"], unique=False
    )
    # Every existing operator's key is its first key (its operator record's log position is not
    # known here: NULL, the "before this migration" marker the snapshot code already uses).
    op.execute(
        "INSERT INTO operator_keys (operator_id, public_key, reason, valid_from, log_index) "
        "SELECT id, public_key, 'registered', created_at, NULL FROM operators"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_keys_operator_id"), table_name="operator_keys")
    op.drop_table("operator_keys")
    with op.batch_alter_table("chips", schema=None) as batch_op:
        for column in (
            "revocation_log_index",
            "revocation_reason",
            "revoked_at",
            "decommission_log_index",
            "decommission_reason",
            "decommissioned_at",
        ):
            batch_op.drop_column(column)
