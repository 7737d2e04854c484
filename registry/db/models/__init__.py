"""ORM models: the registry's tables.

Chips carry their hash-chain head (``last_seq``, ``last_digest``, ``last_window_end``) so the
ingest path checks sequence and chain with one read per chip. The exact envelope bytes that were
verified are stored once, as the body of the report's log entry (``reports.log_index``).

The models live in one module per domain (accounts, fleet, reports, log, findings, sensors,
obligations, gpu, totals); this package re-exports every one, so
``from registry.db.models import X`` works for all of them, and importing it registers every
table with ``Base.metadata``.
"""

from __future__ import annotations

from registry.db.models._common import GENESIS as GENESIS
from registry.db.models._common import BigId as BigId
from registry.db.models.accounts import (
    ApiToken,
    ConsoleSession,
    Operator,
    OperatorKey,
    ReadAccess,
    TokenEvent,
    Vendor,
)
from registry.db.models.findings import (
    Finding,
    FindingTransition,
    VerifierProgress,
    WebhookDelivery,
    WebhookSubscription,
)
from registry.db.models.fleet import Chip, ClusterMember, DeclaredCluster, Facility, Installation
from registry.db.models.gpu import GpuAttestation, GpuChallenge
from registry.db.models.log import (
    NOT_A_REPORT,
    LogCheckpoint,
    LogCosignature,
    LogEntry,
    LogSequence,
    LogState,
    LogTile,
)
from registry.db.models.obligations import (
    ClusterBudget,
    ClusterBudgetRevision,
    ClusterNotification,
    TransferCondition,
)
from registry.db.models.reports import RejectedSubmission, RejectionCount, Report
from registry.db.models.sensors import (
    Landmark,
    LandmarkChallenge,
    LandmarkMeasurement,
    Meter,
    MeterReading,
)
from registry.db.models.totals import FacilityTotal, ReportTotal, RollupState

__all__ = [
    "NOT_A_REPORT",
    "ApiToken",
    "Chip",
    "ClusterBudget",
    "ClusterBudgetRevision",
    "ClusterMember",
    "ClusterNotification",
    "ConsoleSession",
    "DeclaredCluster",
    "Facility",
    "FacilityTotal",
    "Finding",
    "FindingTransition",
    "GpuAttestation",
    "GpuChallenge",
    "Installation",
    "Landmark",
    "LandmarkChallenge",
    "LandmarkMeasurement",
    "LogCheckpoint",
    "LogCosignature",
    "LogEntry",
    "LogSequence",
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
    "ReportTotal",
    "RollupState",
    "TokenEvent",
    "TransferCondition",
    "Vendor",
    "VerifierProgress",
    "WebhookDelivery",
    "WebhookSubscription",
]
