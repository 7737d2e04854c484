"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 17:49:05.463062
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_entries",
        sa.Column("index", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("index", name=op.f("pk_log_entries")),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("compact_range", sa.LargeBinary(), nullable=False),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_log_state")),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("name", name=op.f("uq_operators_name")),
    )
    op.create_table(
        "rejection_counts",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code", "chip_id", name=op.f("pk_rejection_counts")),
    )
    op.create_table(
        "vendors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("root_certificate_pem", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vendors")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_vendors_fingerprint")),
        sa.UniqueConstraint("name", name=op.f("uq_vendors_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_api_tokens_operator_id_operators")
        ),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_api_tokens_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "chips",
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("certificate_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("peak_tflops_bf16", sa.Float(), nullable=False),
        sa.Column("tdp_watts", sa.Float(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_digest", sa.String(length=64), nullable=False),
        sa.Column("last_window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_log_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["vendor_id"], ["vendors.id"], name=op.f("fk_chips_vendor_id_vendors")
        ),
        sa.PrimaryKeyConstraint("chip_id", name=op.f("pk_chips")),
        sa.UniqueConstraint("key_id", name=op.f("uq_chips_key_id")),
    )
    with op.batch_alter_table("chips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chips_vendor_id"), ["vendor_id"], unique=False)

    op.create_table(
        "facilities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("declared_power_kw", sa.Float(), nullable=False),
        sa.Column("pue", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_facilities_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facilities")),
        sa.UniqueConstraint("operator_id", "name", name=op.f("uq_facilities_operator_id")),
    )
    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_facilities_country"), ["country"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_facilities_operator_id"), ["operator_id"], unique=False
        )

    op.create_table(
        "declared_clusters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_declared_clusters_facility_id_facilities"),
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_declared_clusters_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_declared_clusters")),
    )
    with op.batch_alter_table("declared_clusters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_declared_clusters_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_declared_clusters_operator_id"), ["operator_id"], unique=False
        )

    op.create_table(
        "findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("policy_version", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("subject_type", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("details_json", sa.Text(), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.Column("citation", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_findings_facility_id_facilities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_findings")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_findings_fingerprint")),
    )
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_findings_country"), ["country"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_facility_id"), ["facility_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_severity"), ["severity"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_findings_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "installations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("declared_by_operator_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_installations_chip_id_chips")
        ),
        sa.ForeignKeyConstraint(
            ["declared_by_operator_id"],
            ["operators.id"],
            name=op.f("fk_installations_declared_by_operator_id_operators"),
        ),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_installations_facility_id_facilities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installations")),
    )
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_installations_chip_current", ["chip_id", "removed_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_installations_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "reports",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utilization", sa.Float(), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.Column("links_json", sa.Text(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_reports_chip_id_chips")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("chip_id", "seq", name=op.f("uq_reports_chip_id")),
        sa.UniqueConstraint("log_index", name=op.f("uq_reports_log_index")),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.create_index("ix_reports_window", ["window_start", "window_end"], unique=False)

    op.create_table(
        "cluster_members",
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_cluster_members_chip_id_chips")
        ),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["declared_clusters.id"],
            name=op.f("fk_cluster_members_cluster_id_declared_clusters"),
        ),
        sa.PrimaryKeyConstraint("cluster_id", "chip_id", name=op.f("pk_cluster_members")),
    )
    # The log starts empty: size 0, no compact range, root = SHA-256 of the empty string.
    log_state = sa.table(
        "log_state",
        sa.column("id", sa.Integer),
        sa.column("size", sa.BigInteger),
        sa.column("compact_range", sa.LargeBinary),
        sa.column("root_hash", sa.LargeBinary),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    op.bulk_insert(
        log_state,
        [
            {
                "id": 1,
                "size": 0,
                "compact_range": b"",
                "root_hash": hashlib.sha256(b"").digest(),
                "updated_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ],
    )


def downgrade() -> None:
    op.drop_table("cluster_members")
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_index("ix_reports_window")

    op.drop_table("reports")
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_installations_facility_id"))
        batch_op.drop_index("ix_installations_chip_current")

    op.drop_table("installations")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_findings_subject_id"))
        batch_op.drop_index(batch_op.f("ix_findings_status"))
        batch_op.drop_index(batch_op.f("ix_findings_severity"))
        batch_op.drop_index(batch_op.f("ix_findings_kind"))
        batch_op.drop_index(batch_op.f("ix_findings_facility_id"))
        batch_op.drop_index(batch_op.f("ix_findings_country"))

    op.drop_table("findings")
    with op.batch_alter_table("declared_clusters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_declared_clusters_operator_id"))
        batch_op.drop_index(batch_op.f("ix_declared_clusters_facility_id"))

    op.drop_table("declared_clusters")
    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facilities_operator_id"))
        batch_op.drop_index(batch_op.f("ix_facilities_country"))

    op.drop_table("facilities")
    with op.batch_alter_table("chips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chips_vendor_id"))

    op.drop_table("chips")
    op.drop_table("api_tokens")
    op.drop_table("vendors")
    op.drop_table("rejection_counts")
    op.drop_table("operators")
    op.drop_table("log_state")
    op.drop_table("log_entries")
