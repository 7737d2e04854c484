"""running totals for the console and the inventory API on large fleets (issue 11): reports
and energy per (window, delivering operator, custodial facility) rolled up to a watermark,
chips and peak compute per facility as of a custody mark; the newest log entry of a kind
other than a usage report by index lookup; installations by log position

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 00:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from registry.db.base import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

NOT_A_REPORT = "kind <> 'usage_report'"


def upgrade() -> None:
    op.create_table(
        "report_totals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("window_end", UTCDateTime(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("reports", sa.BigInteger(), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.UniqueConstraint(
            "window_start", "window_end", "operator_id", "facility_id", name="uq_report_totals_key"
        ),
    )
    op.create_index("ix_report_totals_facility", "report_totals", ["facility_id", "window_start"])
    op.create_table(
        "facility_totals",
        sa.Column("facility_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("chips", sa.BigInteger(), nullable=False),
        sa.Column("peak_tflops_bf16", sa.Float(), nullable=False),
    )
    op.create_table(
        "rollup_state",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("report_log_index", sa.BigInteger(), nullable=False),
        sa.Column("custody_log_index", sa.BigInteger(), nullable=False),
        sa.Column("rolled_up_at", UTCDateTime(), nullable=True),
    )
    # Nothing rolled up yet: every report is in the tail until the first roll-up step, and no
    # custody is known to the totals (-2: the first step attributes every chip).
    op.execute(
        "INSERT INTO rollup_state (id, report_log_index, custody_log_index) VALUES (1, -1, -2)"
    )
    # The newest entry of a kind (the overview's last verifier run): a seek in an index that
    # holds no usage report, so ingest's log appends do not write to it.
    op.create_index(
        "ix_log_entries_kind_index",
        "log_entries",
        ["kind", "index"],
        sqlite_where=sa.text(NOT_A_REPORT),
        postgresql_where=sa.text(NOT_A_REPORT),
    )
    # The custody mark: the log position of the newest installation (every custody change
    # writes one).
    op.create_index("ix_installations_log_index", "installations", ["log_index"])


def downgrade() -> None:
    op.drop_index("ix_installations_log_index", table_name="installations")
    op.drop_index("ix_log_entries_kind_index", table_name="log_entries")
    op.drop_table("rollup_state")
    op.drop_table("facility_totals")
    op.drop_index("ix_report_totals_facility", table_name="report_totals")
    op.drop_table("report_totals")
