"""log records: stored tiles, published checkpoints, witness cosignatures, leaf-hash index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 18:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from attestation import tiles

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    log_tiles = op.create_table(
        "log_tiles",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hashes", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "index", name=op.f("pk_log_tiles")),
    )
    op.create_table(
        "log_checkpoints",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("size", name=op.f("pk_log_checkpoints")),
    )
    op.create_table(
        "log_cosignatures",
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("witness", sa.String(length=200), nullable=False),
        sa.Column("line", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["size"],
            ["log_checkpoints.size"],
            name=op.f("fk_log_cosignatures_size_log_checkpoints"),
        ),
        sa.PrimaryKeyConstraint("size", "witness", name=op.f("pk_log_cosignatures")),
    )
    op.create_index("ix_log_entries_leaf_hash", "log_entries", ["leaf_hash"], unique=False)
    _backfill_tiles(log_tiles)


def _backfill_tiles(log_tiles: sa.Table) -> None:
    # A log that predates stored tiles gets them built once from its leaf hashes.
    bind = op.get_bind()
    entries = sa.table("log_entries", sa.column("index", sa.BigInteger), sa.column("leaf_hash"))
    rows = bind.execute(sa.select(entries.c.leaf_hash).order_by(entries.c.index))
    hashes = [bytes(r[0]) for r in rows]
    if hashes:
        built = tiles.extend_tiles(0, hashes, {})
        op.bulk_insert(
            log_tiles,
            [{"level": lvl, "index": idx, "hashes": blob} for (lvl, idx), blob in built.items()],
        )


def downgrade() -> None:
    op.drop_index("ix_log_entries_leaf_hash", table_name="log_entries")
    op.drop_table("log_cosignatures")
    op.drop_table("log_checkpoints")
    op.drop_table("log_tiles")
