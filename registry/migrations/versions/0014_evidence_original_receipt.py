"""evidence ledger: the receipt time of the accepted report a rejected copy names (its
logged ``original.received_at``), so the registry judges a replay's delay from what the log
states; the log positions of chip enrollments and facility records, so a verifier run cuts
chips and facilities at its log size as a partner replaying the log does

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-04 00:00:00.000000
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from attestation.logentries import parse_timestamp
from registry.db.base import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite has ADD and DROP COLUMN): a batch operation
    # would copy the tables, which their foreign keys forbid once rows refer to them.
    op.add_column(
        "rejected_submissions",
        sa.Column("original_received_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("chips", sa.Column("enrollment_log_index", sa.BigInteger(), nullable=True))
    op.add_column("facilities", sa.Column("log_index", sa.BigInteger(), nullable=True))
    backfill(op.get_bind())


def backfill(bind: sa.engine.Connection) -> None:
    """Fill the new columns of existing rows from the log, the authority partners replay: a
    rejected copy's ``original.received_at``, each chip's ``enrollment`` record and each
    facility's ``facility`` record."""
    submissions = sa.table(
        "rejected_submissions",
        sa.column("id", sa.BigInteger()),
        sa.column("outcome", sa.String()),
        sa.column("log_index", sa.BigInteger()),
        sa.column("original_received_at", UTCDateTime()),
    )
    entries = sa.table(
        "log_entries",
        sa.column("index", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("body"),
    )
    chips = sa.table("chips", sa.column("chip_id", sa.String()), sa.column("enrollment_log_index"))
    facilities = sa.table("facilities", sa.column("id", sa.Integer()), sa.column("log_index"))
    copies = bind.execute(
        sa.select(submissions.c.id, entries.c.body)
        .join(entries, entries.c.index == submissions.c.log_index)
        .where(submissions.c.outcome.in_(("replayed_report", "forbidden")))
    ).all()
    for row_id, body in copies:
        original = json.loads(bytes(body)).get("original")
        if isinstance(original, dict) and isinstance(original.get("received_at"), str):
            bind.execute(
                submissions.update()
                .where(submissions.c.id == row_id)
                .values(original_received_at=parse_timestamp(original["received_at"]))
            )
    records = bind.execute(
        sa.select(entries.c.index, entries.c.kind, entries.c.body).where(
            entries.c.kind.in_(("enrollment", "facility"))
        )
    ).all()
    for index, kind, body in records:
        record = json.loads(bytes(body))
        if kind == "enrollment":
            bind.execute(
                chips.update()
                .where(chips.c.chip_id == record["chip_id"])
                .values(enrollment_log_index=index)
            )
        else:
            bind.execute(
                facilities.update()
                .where(facilities.c.id == record["facility_id"])
                .values(log_index=index)
            )


def downgrade() -> None:
    op.drop_column("facilities", "log_index")
    op.drop_column("chips", "enrollment_log_index")
    op.drop_column("rejected_submissions", "original_received_at")
