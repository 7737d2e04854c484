"""reports keyed by ``(chip_id, seq)`` (issue 15, docs/SCALE.md): the surrogate ``id`` goes and
``log_index`` keeps an index instead of a unique constraint, so that every unique key of the
table holds the chip id and the table can be distributed by chip (Citus). ``(chip_id, seq)`` was
unique already; the sequencer assigns each log index once.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 13:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite rebuilds the table (copying its rows); PostgreSQL alters it in place.
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_constraint("uq_reports_log_index", type_="unique")
        batch_op.drop_constraint("uq_reports_chip_id", type_="unique")
        batch_op.drop_constraint("pk_reports", type_="primary")
        batch_op.drop_column("id")
        batch_op.create_primary_key("pk_reports", ["chip_id", "seq"])
        batch_op.create_index("ix_reports_log_index", ["log_index"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_log_index")
        batch_op.drop_constraint("pk_reports", type_="primary")
        batch_op.create_unique_constraint("uq_reports_chip_id", ["chip_id", "seq"])
        batch_op.create_unique_constraint("uq_reports_log_index", ["log_index"])
    # A surrogate key again, numbered in log order (the order rows were written in).
    renumber = (
        "UPDATE reports SET id = r.n FROM (SELECT chip_id, seq, row_number() OVER "
        "(ORDER BY log_index) AS n FROM reports) AS r "
        "WHERE reports.chip_id = r.chip_id AND reports.seq = r.seq"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE reports ADD COLUMN id BIGSERIAL")
        op.execute(renumber)
        op.execute(
            "SELECT setval(pg_get_serial_sequence('reports', 'id'), "
            "coalesce((SELECT max(id) FROM reports), 0) + 1, false)"
        )
        op.create_primary_key("pk_reports", "reports", ["id"])
        return
    # SQLite (UPDATE ... FROM: 3.33 or later): add the column, number it, make it the key.
    op.add_column("reports", sa.Column("id", sa.Integer(), nullable=True))
    op.execute(renumber)
    with op.batch_alter_table("reports", schema=None, recreate="always") as batch_op:
        batch_op.alter_column("id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_primary_key("pk_reports", ["id"])
