"""verifier channels: landmarks, meters, transfer conditions, cluster budgets and
notifications, rejected submissions, finding transitions, webhooks, verifier progress

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 18:29:59.255371
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "landmarks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("latitude", sa.Float(), nullable=False),
        sa.Column("longitude", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landmarks")),
        sa.UniqueConstraint("key_id", name=op.f("uq_landmarks_key_id")),
        sa.UniqueConstraint("name", name=op.f("uq_landmarks_name")),
    )
    op.create_table(
        "rejected_submissions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("facility_claim", sa.Integer(), nullable=True),
        sa.Column("source_operator_id", sa.Integer(), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_submissions")),
        sa.UniqueConstraint("log_index", name=op.f("uq_rejected_submissions_log_index")),
    )
    with op.batch_alter_table("rejected_submissions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_rejected_submissions_chip_id"), ["chip_id"], unique=False
        )

    op.create_table(
        "verifier_progress",
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("judged_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("policy_id", name=op.f("pk_verifier_progress")),
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("min_severity", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_subscriptions")),
        sa.UniqueConstraint("name", name=op.f("uq_webhook_subscriptions_name")),
    )
    op.create_table(
        "landmark_challenges",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("landmark_id", sa.Integer(), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_landmark_challenges_chip_id_chips")
        ),
        sa.ForeignKeyConstraint(
            ["landmark_id"],
            ["landmarks.id"],
            name=op.f("fk_landmark_challenges_landmark_id_landmarks"),
        ),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_landmark_challenges")),
    )
    with op.batch_alter_table("landmark_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_landmark_challenges_landmark_id"), ["landmark_id"], unique=False
        )

    op.create_table(
        "landmark_measurements",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("landmark_id", sa.Integer(), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("rtt_ms", sa.Float(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_landmark_measurements_chip_id_chips")
        ),
        sa.ForeignKeyConstraint(
            ["landmark_id"],
            ["landmarks.id"],
            name=op.f("fk_landmark_measurements_landmark_id_landmarks"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_landmark_measurements")),
        sa.UniqueConstraint("log_index", name=op.f("uq_landmark_measurements_log_index")),
        sa.UniqueConstraint("nonce", name=op.f("uq_landmark_measurements_nonce")),
    )
    with op.batch_alter_table("landmark_measurements", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_landmark_measurements_chip_id"), ["chip_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_landmark_measurements_landmark_id"), ["landmark_id"], unique=False
        )

    op.create_table(
        "meters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"], ["facilities.id"], name=op.f("fk_meters_facility_id_facilities")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meters")),
        sa.UniqueConstraint("key_id", name=op.f("uq_meters_key_id")),
        sa.UniqueConstraint("name", name=op.f("uq_meters_name")),
    )
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meters_facility_id"), ["facility_id"], unique=False)

    op.create_table(
        "transfer_conditions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chip_id", sa.String(length=64), nullable=False),
        sa.Column("allowed_countries", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("declared_role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["chip_id"], ["chips.chip_id"], name=op.f("fk_transfer_conditions_chip_id_chips")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfer_conditions")),
    )
    with op.batch_alter_table("transfer_conditions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transfer_conditions_chip_id"), ["chip_id"], unique=False
        )

    op.create_table(
        "cluster_budgets",
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("compute_budget_flop", sa.Float(), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["declared_clusters.id"],
            name=op.f("fk_cluster_budgets_cluster_id_declared_clusters"),
        ),
        sa.PrimaryKeyConstraint("cluster_id", name=op.f("pk_cluster_budgets")),
    )
    op.create_table(
        "cluster_notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cluster_id", sa.Integer(), nullable=False),
        sa.Column("threshold_flop", sa.Float(), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("declared_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["cluster_id"],
            ["declared_clusters.id"],
            name=op.f("fk_cluster_notifications_cluster_id_declared_clusters"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_notifications")),
    )
    with op.batch_alter_table("cluster_notifications", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_notifications_cluster_id"), ["cluster_id"], unique=False
        )

    op.create_table(
        "finding_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=False),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor_token_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name=op.f("fk_finding_transitions_finding_id_findings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_finding_transitions")),
    )
    with op.batch_alter_table("finding_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_finding_transitions_finding_id"), ["finding_id"], unique=False
        )

    op.create_table(
        "meter_readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("energy_j", sa.Float(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("log_index", sa.BigInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_meter_readings_facility_id_facilities"),
        ),
        sa.ForeignKeyConstraint(
            ["meter_id"], ["meters.id"], name=op.f("fk_meter_readings_meter_id_meters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meter_readings")),
        sa.UniqueConstraint("log_index", name=op.f("uq_meter_readings_log_index")),
        sa.UniqueConstraint("meter_id", "window_start", name=op.f("uq_meter_readings_meter_id")),
    )
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_meter_readings_facility_id"), ["facility_id"], unique=False
        )

    op.create_table(
        "webhook_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["finding_id"], ["findings.id"], name=op.f("fk_webhook_outbox_finding_id_findings")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name=op.f("fk_webhook_outbox_subscription_id_webhook_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_outbox")),
    )
    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_outbox_due", ["delivered_at", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_outbox_finding_id"), ["finding_id"], unique=False
        )

    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("non_it_load_kw", sa.Float(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("facility_claim", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("source_operator_id", sa.Integer(), nullable=True))


def downgrade() -> None:

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("source_operator_id")
        batch_op.drop_column("facility_claim")

    with op.batch_alter_table("facilities", schema=None) as batch_op:
        batch_op.drop_column("non_it_load_kw")

    with op.batch_alter_table("webhook_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_outbox_finding_id"))
        batch_op.drop_index("ix_webhook_outbox_due")

    op.drop_table("webhook_outbox")
    with op.batch_alter_table("meter_readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meter_readings_facility_id"))

    op.drop_table("meter_readings")
    with op.batch_alter_table("finding_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_transitions_finding_id"))

    op.drop_table("finding_transitions")
    with op.batch_alter_table("cluster_notifications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_notifications_cluster_id"))

    op.drop_table("cluster_notifications")
    op.drop_table("cluster_budgets")
    with op.batch_alter_table("transfer_conditions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_conditions_chip_id"))

    op.drop_table("transfer_conditions")
    with op.batch_alter_table("meters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meters_facility_id"))

    op.drop_table("meters")
    with op.batch_alter_table("landmark_measurements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_landmark_measurements_landmark_id"))
        batch_op.drop_index(batch_op.f("ix_landmark_measurements_chip_id"))

    op.drop_table("landmark_measurements")
    with op.batch_alter_table("landmark_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_landmark_challenges_landmark_id"))

    op.drop_table("landmark_challenges")
    op.drop_table("webhook_subscriptions")
    op.drop_table("verifier_progress")
    with op.batch_alter_table("rejected_submissions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_submissions_chip_id"))

    op.drop_table("rejected_submissions")
    op.drop_table("landmarks")
