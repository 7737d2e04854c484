"""read-side indexes for the console and the inventory API on large fleets (issue 11's
benchmark, docs/benchmarks.md): per-window sums read from an index alone, reports received
since an instant, a facility's chips' reports by chip, a facility's current installations

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-04 00:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The overview's reports per window: window and energy from the index, no row reads. It
    # starts with the columns of ix_reports_window, which it replaces.
    op.create_index(
        "ix_reports_window_energy", "reports", ["window_start", "window_end", "energy_j"]
    )
    op.drop_index("ix_reports_window", table_name="reports")
    # The overview's "reports accepted in the last hour" (was a scan of every report).
    op.create_index("ix_reports_received_at", "reports", ["received_at"])
    # A facility's power balance: its chips' reports, window and energy, by chip.
    op.create_index(
        "ix_reports_chip_window", "reports", ["chip_id", "window_start", "window_end", "energy_j"]
    )
    # A facility's current installations (chip lists, counts, aggregates, the power balance's
    # custody periods) from the index; it
    # starts with the column of ix_installations_facility_id, which it replaces.
    op.create_index(
        "ix_installations_facility_current",
        "installations",
        ["facility_id", "removed_at", "chip_id", "installed_at"],
    )
    op.drop_index("ix_installations_facility_id", table_name="installations")


def downgrade() -> None:
    op.create_index("ix_installations_facility_id", "installations", ["facility_id"])
    op.drop_index("ix_installations_facility_current", table_name="installations")
    op.drop_index("ix_reports_chip_window", table_name="reports")
    op.drop_index("ix_reports_received_at", table_name="reports")
    op.create_index("ix_reports_window", "reports", ["window_start", "window_end"])
    op.drop_index("ix_reports_window_energy", table_name="reports")
