"""ORM models: the registry's tables.

Chips carry their hash-chain head (``last_seq``, ``last_digest``, ``last_window_end``) so the
ingest path checks sequence and chain with one read per chip. The exact envelope bytes that were
verified are stored once, as the body of the report's log entry (``reports.log_index``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from registry.db.base import Base, UTCDateTime

__all__ = [
    "ApiToken",
    "Chip",
    "ClusterBudget",
    "ClusterBudgetRevision",
    "ClusterMember",
    "ClusterNotification",
    "ConsoleSession",
    "DeclaredCluster",
    "Facility",
    "Finding",
    "FindingTransition",
    "Installation",
    "Landmark",
    "LandmarkChallenge",
    "LandmarkMeasurement",
    "LogCheckpoint",
    "LogCosignature",
    "LogEntry",
    "LogState",
    "LogTile",
    "Meter",
    "MeterReading",
    "Operator",
    "OperatorKey",
    "ReadAccess",
    "RejectedSubmission",
    "RejectionCount",
    "Report",
    "TransferCondition",
    "Vendor",
    "VerifierProgress",
    "WebhookDelivery",
    "WebhookSubscription",
]

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT for big tables.
BigId = BigInteger().with_variant(Integer, "sqlite")

GENESIS = "0" * 64


class Vendor(Base):
    __tablename__ = "vendors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root_certificate_pem: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Operator(Base):
    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    public_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    vendor_id: Mapped[int | None] = mapped_column(ForeignKey("vendors.id"))
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Facility(Base):
    __tablename__ = "facilities"
    __table_args__ = (UniqueConstraint("operator_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2), index=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    declared_power_kw: Mapped[float] = mapped_column(Float)
    pue: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Declared constant non-IT load beyond what PUE covers (offices, other tenants), kW.
    non_it_load_kw: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # Position of the ``facility`` record (a run's inputs are cut at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)
    # Declared host power model (all four set, or none): see verifier.facts.HostPowerFact.
    host_gpus_per_host: Mapped[int | None] = mapped_column(Integer)
    host_idle_w: Mapped[float | None] = mapped_column(Float)
    host_per_gpu_slot_w: Mapped[float | None] = mapped_column(Float)
    host_busy_w: Mapped[float | None] = mapped_column(Float)

    operator: Mapped[Operator] = relationship(lazy="joined")

    @property
    def host_power(self) -> dict[str, float] | None:
        """The declared host power model as its record fields, ``None`` if not declared."""
        if self.host_gpus_per_host is None:
            return None
        return {
            "gpus_per_host": self.host_gpus_per_host,
            "idle_w": self.host_idle_w or 0.0,
            "per_gpu_slot_w": self.host_per_gpu_slot_w or 0.0,
            "busy_w": self.host_busy_w or 0.0,
        }

    @property
    def operator_name(self) -> str:
        return self.operator.name


class Chip(Base):
    __tablename__ = "chips"

    chip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor_id: Mapped[int] = mapped_column(ForeignKey("vendors.id"), index=True)
    model: Mapped[str] = mapped_column(String(100))
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    certificate_pem: Mapped[str] = mapped_column(Text)
    certificate_fingerprint: Mapped[str] = mapped_column(String(64))
    peak_tflops_bf16: Mapped[float] = mapped_column(Float)
    tdp_watts: Mapped[float] = mapped_column(Float)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Hash-chain head: the last accepted report of this chip.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_digest: Mapped[str] = mapped_column(String(64), default=GENESIS)
    last_window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_log_index: Mapped[int | None] = mapped_column(BigInteger)
    # End of service (docs/PROTOCOL.md 6.1): a decommissioned chip is no longer expected to
    # report; a revoked chip's key is no longer trusted. Each is logged as a chip_status record.
    decommissioned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decommission_reason: Mapped[str | None] = mapped_column(Text)
    decommission_log_index: Mapped[int | None] = mapped_column(BigInteger)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(Text)
    revocation_log_index: Mapped[int | None] = mapped_column(BigInteger)
    # GPU device identity (attestation.gpu: SHA-256 of the device identity key), set when the
    # chip enrolled with verified GPU evidence. Unique: one GPU, one chip.
    hardware_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    hardware_attested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Position of the ``enrollment`` record (a run's inputs are cut at a log size).
    enrollment_log_index: Mapped[int | None] = mapped_column(BigInteger)
    # When the first declared installation began (the earliest installed_at of the chip's
    # installations, kept here by ChipRepository.note_installation): no report window starts
    # earlier. On the chip row so ingest reads it with the chain head.
    first_installed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    vendor: Mapped[Vendor] = relationship(lazy="joined")


class Installation(Base):
    """One link of the chain of custody: a chip at a facility from ``installed_at``."""

    __tablename__ = "installations"
    __table_args__ = (
        Index("ix_installations_chip_current", "chip_id", "removed_at"),
        Index(
            "ix_installations_facility_current",
            "facility_id",
            "removed_at",
            "chip_id",
            "installed_at",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"))
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    declared_by_operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)

    facility: Mapped[Facility] = relationship(lazy="joined")


class DeclaredCluster(Base):
    __tablename__ = "declared_clusters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(Text)
    start: Mapped[datetime] = mapped_column(UTCDateTime)
    end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    members: Mapped[list[ClusterMember]] = relationship(
        lazy="selectin", cascade="all, delete-orphan"
    )


class ClusterMember(Base):
    __tablename__ = "cluster_members"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), primary_key=True)


class Report(Base):
    """An accepted usage report. Its envelope is the body of log entry ``log_index``."""

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("chip_id", "seq"),
        # Read side (console, inventory API): per-window sums from the index alone, reports
        # received since an instant, a facility's chips' reports by chip.
        Index("ix_reports_window_energy", "window_start", "window_end", "energy_j"),
        Index("ix_reports_received_at", "received_at"),
        Index("ix_reports_chip_window", "chip_id", "window_start", "window_end", "energy_j"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    utilization: Mapped[float] = mapped_column(Float)
    energy_j: Mapped[float] = mapped_column(Float)
    # [[peer, link, tx_bytes, rx_bytes], ...] as compact JSON: read by the verifier.
    links_json: Mapped[str] = mapped_column(Text)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The facility the report claims to come from (predicate facility_id), if it names one.
    facility_claim: Mapped[int | None] = mapped_column(Integer)
    # The operator whose token delivered it.
    source_operator_id: Mapped[int | None] = mapped_column(Integer)


class RejectionCount(Base):
    """Rejected reports are stored nowhere; they are only counted, by reason and chip."""

    __tablename__ = "rejection_counts"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogEntry(Base):
    """One leaf of the append-only Merkle log: the exact bytes it commits to."""

    __tablename__ = "log_entries"
    __table_args__ = (Index("ix_log_entries_leaf_hash", "leaf_hash"),)

    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(32))
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogState(Base):
    """The log's integrated tree head: size and the compact range (right-edge subtree hashes).

    Entries sequenced beyond ``size`` (``LogSequence``) are stored but not in the tree yet."""

    __tablename__ = "log_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    compact_range: Mapped[bytes] = mapped_column(LargeBinary)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogSequence(Base):
    """The sequenced pool's size: entries ``[0, size)`` have their index and are durable; the
    integrator folds them into the tree (``LogState``) after the acknowledgement."""

    __tablename__ = "log_sequence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogTile(Base):
    """One C2SP tlog-tiles tile: up to 256 hashes of level ``level`` (rewritten while partial)."""

    __tablename__ = "log_tiles"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)


class LogCheckpoint(Base):
    """A checkpoint the publisher signed: the exact signed note, log signature only."""

    __tablename__ = "log_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LogCosignature(Base):
    """A witness's C2SP tlog-cosignature line over one stored checkpoint."""

    __tablename__ = "log_cosignatures"

    size: Mapped[int] = mapped_column(
        ForeignKey("log_checkpoints.size"), primary_key=True, autoincrement=False
    )
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Finding(Base):
    __tablename__ = "findings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int] = mapped_column(Integer)
    policy_id: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(64), index=True)
    severity: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    # Two 64-character chip ids joined for a link (``a|b``), with room to spare.
    subject_id: Mapped[str] = mapped_column(String(256), index=True)
    # No foreign key: a finding may name a facility a report claimed, which need not exist.
    facility_id: Mapped[int | None] = mapped_column(Integer, index=True)
    country: Mapped[str | None] = mapped_column(String(2), index=True)
    window_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[str] = mapped_column(Text)
    details_json: Mapped[str] = mapped_column(Text)
    evidence_json: Mapped[str] = mapped_column(Text)
    citation: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RejectedSubmission(Base):
    """A correctly signed report the registry turned away (a replay, a reused sequence number, a
    report off the chain): the chip key's word, kept as evidence for the clone and replay rules.
    Bounded: ingest prunes the oldest beyond ``CHIPREG_MAX_REJECTED_SUBMISSIONS``."""

    __tablename__ = "rejected_submissions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chip_id: Mapped[str] = mapped_column(String(64), index=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    facility_claim: Mapped[int | None] = mapped_column(Integer)
    source_operator_id: Mapped[int | None] = mapped_column(Integer)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # For a copy of an accepted report (a replay, a forbidden copy): that report's receipt time
    # as the logged record names it (``original.received_at``); None when it names none.
    original_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Landmark(Base):
    """A location landmark: a server with its own key at known coordinates."""

    __tablename__ = "landmarks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class LandmarkChallenge(Base):
    """A fresh nonce the registry issued to a landmark for one chip; answered at most once."""

    __tablename__ = "landmark_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    landmark_id: Mapped[int] = mapped_column(ForeignKey("landmarks.id"), index=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LandmarkMeasurement(Base):
    """An accepted landmark-signed round trip, with its exact envelope bytes as logged."""

    __tablename__ = "landmark_measurements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    landmark_id: Mapped[int] = mapped_column(ForeignKey("landmarks.id"), index=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    nonce: Mapped[str] = mapped_column(String(64), unique=True)
    rtt_ms: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Meter(Base):
    """A facility power meter with its own key, measuring the whole facility's draw."""

    __tablename__ = "meters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class MeterReading(Base):
    """An accepted meter-signed energy reading for one window, as logged."""

    __tablename__ = "meter_readings"
    __table_args__ = (UniqueConstraint("meter_id", "window_start"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    meter_id: Mapped[int] = mapped_column(ForeignKey("meters.id"))
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id"), index=True)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    energy_j: Mapped[float] = mapped_column(Float)
    digest: Mapped[str] = mapped_column(String(64))
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TransferCondition(Base):
    """Countries a chip may be in, from ``effective_from``; conditions accumulate (intersect)."""

    __tablename__ = "transfer_conditions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    # Sorted ISO 3166-1 alpha-2 codes, comma-separated; "" allows no country at all.
    allowed_countries: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterBudget(Base):
    """The total compute (dense operations) a declared cluster's run is declared to use."""

    __tablename__ = "cluster_budgets"

    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), primary_key=True)
    compute_budget_flop: Mapped[float] = mapped_column(Float)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterBudgetRevision(Base):
    """Every budget a cluster's operator declared, in order: ``cluster_budgets`` holds the
    latest; the verifier judges by the latest revision logged before the audited log size."""

    __tablename__ = "cluster_budget_revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), index=True)
    compute_budget_flop: Mapped[float] = mapped_column(Float)
    declared_by: Mapped[str] = mapped_column(String(200))
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class ClusterNotification(Base):
    """An operator's notice that a declared cluster's run crossed a compute threshold."""

    __tablename__ = "cluster_notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("declared_clusters.id"), index=True)
    threshold_flop: Mapped[float] = mapped_column(Float)
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text)
    declared_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Position of the logged record/declaration (audits cut the verifier input at a log size).
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class FindingTransition(Base):
    """The audit trail of a finding's lifecycle: who moved it from what to what, when, why."""

    __tablename__ = "finding_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    actor_token_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookSubscription(Base):
    """A receiver of new findings; payloads are HMAC-SHA256-signed with ``secret``."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(200))
    min_severity: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """The durable outbox: one row per (subscription, event), written in the transaction that
    stored the finding, delivered (with retries and backoff) by the delivery worker."""

    __tablename__ = "webhook_outbox"
    __table_args__ = (Index("ix_webhook_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    finding_id: Mapped[int] = mapped_column(ForeignKey("findings.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class VerifierProgress(Base):
    """How far continuous verification has judged, per policy (the end of the last window)."""

    __tablename__ = "verifier_progress"

    policy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    judged_until: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OperatorKey(Base):
    """One key of an operator's key history: it signs the operator's declarations logged after
    ``log_index`` (its ``operator`` or ``operator_key`` record) until the next key's record.
    ``operators.public_key`` is the current one."""

    __tablename__ = "operator_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int | None] = mapped_column(BigInteger)


class GpuChallenge(Base):
    """A fresh nonce the registry issued for GPU evidence over one chip key; used at most once."""

    __tablename__ = "gpu_challenges"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex
    purpose: Mapped[str] = mapped_column(String(16))  # "enrollment" | "reattestation"
    chip_public_key: Mapped[bytes] = mapped_column(LargeBinary(32))
    chip_id: Mapped[str | None] = mapped_column(String(64))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GpuAttestation(Base):
    """Verified GPU evidence of a chip (enrollment or re-attestation), as logged."""

    __tablename__ = "gpu_attestations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    chip_id: Mapped[str] = mapped_column(ForeignKey("chips.chip_id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    hardware_id: Mapped[str] = mapped_column(String(64))
    verified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    log_index: Mapped[int] = mapped_column(BigInteger, unique=True)


class TokenEvent(Base):
    """The audit trail of API tokens: who issued or revoked which token, when, and why."""

    __tablename__ = "token_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))  # "created" | "revoked"
    reason: Mapped[str] = mapped_column(Text)
    # None when done on the database directly (``chipreg admin``), not through the API.
    actor_token_id: Mapped[int | None] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsoleSession(Base):
    """A web console login: the cookie holds an opaque id (only its SHA-256 is stored) and
    acts with the rights of the API token it was opened with; each form carries ``csrf``."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("api_tokens.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReadAccess(Base):
    """Who looked at what: one inspector's or partner's read of non-public data (treaty
    confidentiality), over the API or the console."""

    __tablename__ = "read_accesses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_id: Mapped[int] = mapped_column(Integer)
    actor_name: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    channel: Mapped[str] = mapped_column(String(16))  # "api" or "console"
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[str] = mapped_column(Text)
