"""detection hardening: findings no longer reference facilities by foreign key (a finding
names the facility a report claimed, which need not exist) and take subjects as long as two
chip ids joined (a link ``a|b`` is 129 characters), and cluster budgets keep every revision
(the verifier judges by the latest one logged before the audited log size)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_constraint("fk_findings_facility_id_facilities", type_="foreignkey")
        batch_op.alter_column(
            "subject_id",
            existing_type=sa.String(length=128),
            type_=sa.String(length=256),
            existing_nullable=False,
        )
    op.create_table(
        "cluster_budget_revisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("compute_budget_flop", sa.Float(), nullable=False),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["declared_clusters.id"],
            name=op.f("fk_cluster_budget_revisions_cluster_id_declared_clusters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_budget_revisions")),
    )
    with op.batch_alter_table("cluster_budget_revisions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_budget_revisions_cluster_id"), ["cluster_id"], unique=False
        )
    # Earlier revisions were overwritten; the budget in force is the one revision known.
    op.execute(
        "INSERT INTO cluster_budget_revisions"
        " (cluster_id, compute_budget_flop, declared_by, declared_at, log_index)"
        " SELECT cluster_id, compute_budget_flop, '', declared_at, log_index"
        " FROM cluster_budgets ORDER BY cluster_id"
    )


def downgrade() -> None:
    with op.batch_alter_table("cluster_budget_revisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_budget_revisions_cluster_id"))
    op.drop_table("cluster_budget_revisions")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.alter_column(
            "subject_id",
            existing_type=sa.String(length=256),
            type_=sa.String(length=128),
            existing_nullable=False,
        )
        batch_op.create_foreign_key(
            "fk_findings_facility_id_facilities", "facilities", ["facility_id"], ["id"]
        )
