"""Plain input values for the detection rules.

The registry builds these from its database (and the partner's audit tool from the log); the
rules never see ORM objects or JSON. Every datetime must be timezone-aware so that instants
compare the same way on every machine; facts validate themselves when built.

Identifiers: chips by their string ``chip_id``; facilities, landmarks, meters, declared
clusters and operators by the registry's integer ids. ``log_index`` is always the position of
the signed artifact behind a fact in the transparency log (the evidence a finding cites), or
``None`` when the artifact is not (yet) logged. Every field added after the foundation version
has a default, so older call sites keep working; a rule whose inputs are absent simply finds
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from verifier.errors import FactError

__all__ = [
    "ChipFact",
    "ClusterNotificationFact",
    "DeclaredClusterFact",
    "FacilityFact",
    "GpuAttestationFact",
    "HostPowerFact",
    "InstallationFact",
    "LandmarkFact",
    "LinkFact",
    "MeterFact",
    "MeterReadingFact",
    "ReportFact",
    "RttMeasurementFact",
    "Snapshot",
    "SubmissionFact",
]


def _require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.utcoffset() is None:
        raise FactError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


def _require_window(start: datetime, end: datetime, what: str) -> None:
    _require_aware(start, f"{what}: window_start")
    _require_aware(end, f"{what}: window_end")
    if end <= start:
        raise FactError(
            f"{what}: window_end {end.isoformat()} is not after window_start {start.isoformat()}"
        )


def _require_finite(value: float, what: str, *, minimum: float = 0.0) -> None:
    if not (math.isfinite(value) and value >= minimum):  # also rejects NaN
        raise FactError(f"{what} must be a finite number >= {minimum:g}, got {value!r}")


@dataclass(frozen=True, slots=True)
class ChipFact:
    """A registered accelerator as the register knows it at the end of the judged period.

    * ``model``: the model name from the chip's endorsement certificate (``chips.model``).
    * ``peak_ops``: theoretical dense BF16 throughput in OP/s (``chips.peak_tflops_bf16 * 1e12``;
      989e12 for an H100). The physical ceiling for reported compute.
    * ``facility_id``/``country``/``installed_at``: the chip's *current* installation (the open
      ``installations`` row and its facility's country); ``None`` while not installed. Past
      installations are in :attr:`Snapshot.installations`.
    * ``peak_power_w``: the board's maximum power in W (``chips.tdp_watts``; 700 for an H100),
      the physical ceiling for reported energy; ``None`` when unknown (the energy-ceiling check
      is then skipped for this chip).
    * ``vendor``: the manufacturer's name (``vendors.name``), for display.
    * ``allowed_countries``: ISO 3166-1 alpha-2 codes (upper case) where the chip's transfer
      conditions allow it to be; the intersection of the conditions of every transfer in force
      for the chip. ``None`` means no condition restricts it (the rule then ignores the chip);
      an empty set means it may be nowhere.
    * ``operator_id``: the operator whose facility currently holds the chip, ``None`` if none.
    * ``retired_at``: when the chip left service (decommissioned or revoked, the earlier; only
      if at or before the judged instant), ``None`` while in service. From then on it is no
      longer expected to report.
    """

    chip_id: str
    model: str
    peak_ops: float
    facility_id: int | None
    country: str | None
    installed_at: datetime | None
    peak_power_w: float | None = None
    vendor: str | None = None
    allowed_countries: frozenset[str] | None = None
    operator_id: int | None = None
    retired_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.chip_id:
            raise FactError("chip_id must not be empty")
        _require_aware(self.retired_at, f"chip {self.chip_id}: retired_at")
        if not self.peak_ops >= 0:  # also rejects NaN
            raise FactError(f"chip {self.chip_id}: peak_ops must be >= 0, got {self.peak_ops}")
        if self.peak_power_w is not None:
            _require_finite(self.peak_power_w, f"chip {self.chip_id}: peak_power_w")
        _require_aware(self.installed_at, f"chip {self.chip_id}: installed_at")


@dataclass(frozen=True, slots=True)
class LinkFact:
    """Bytes a chip says it exchanged with one peer over one link kind during a report window.

    One entry of the report predicate's ``interconnect`` list: ``peer`` is the other chip's id,
    ``link`` the link kind (``nvlink``, ``infiniband``, ...), ``tx_bytes`` sent to the peer and
    ``rx_bytes`` received from it, as counted by the reporting chip.
    """

    peer: str
    link: str
    tx_bytes: int
    rx_bytes: int

    def __post_init__(self) -> None:
        if self.tx_bytes < 0 or self.rx_bytes < 0:
            raise FactError(f"link to {self.peer} ({self.link}): byte counts must be >= 0")


@dataclass(frozen=True, slots=True)
class ReportFact:
    """One *accepted* (verified, logged) usage report of one chip over ``[start, end)``.

    From the ``reports`` table: ``utilization`` in [0, 1] (the mean fraction of peak compute the
    chip claims to have used; ``utilization * peak_ops * seconds`` is its claimed compute),
    ``energy_j`` in joules over the window, ``links`` its interconnect claims, ``log_index`` its
    position in the transparency log.

    * ``facility_id``: the facility the report *claims* to come from (the predicate's optional
      ``facility`` field, resolved to the registry id); ``None`` when the report names none.
    * ``digest``: the hex SHA-256 digest of the report (``reports.digest``), for clone checks.
    * ``received_at``: when the registry accepted it (``reports.received_at``). Not in the log
      (a usage report's entry is the envelope alone), so no rule judges by it.
    * ``source``: who delivered it, as the registry knows the sender (for example
      ``"operator:3"`` for the operator token used); ``None`` if unknown.
    """

    chip_id: str
    seq: int
    window_start: datetime
    window_end: datetime
    utilization: float
    energy_j: float
    links: tuple[LinkFact, ...]
    log_index: int | None
    facility_id: int | None = None
    digest: str | None = None
    received_at: datetime | None = None
    source: str | None = None

    def __post_init__(self) -> None:
        _require_window(self.window_start, self.window_end, f"report {self.chip_id}#{self.seq}")
        _require_aware(self.received_at, f"report {self.chip_id}#{self.seq}: received_at")


@dataclass(frozen=True, slots=True)
class SubmissionFact:
    """A signed report the registry *received but did not accept* as new, kept as evidence.

    Clone and replay detection need what the registry turned away: the chip's signature on it
    was valid, so it is the chip's (or its key's) word. Build one per rejected submission whose
    signature verified, in particular with ``outcome``:

    * ``"replayed_report"``: byte-identical (same ``digest``) to the accepted report with that
      ``(chip_id, seq)``; an agent retry after a lost acknowledgement, or a replay.
    * ``"sequence_reused"``: a *different* report (other ``digest``) for an already accepted
      ``seq``: two signers with one key, or a rewound chip.
    * any other ingest rejection code (``"sequence_gap"``, ``"broken_hash_chain"``,
      ``"window_out_of_order"``) for a correctly signed report that does not continue the chain.

    ``facility_id`` is the facility the submission claimed (predicate ``facility``), ``source``
    who delivered it (same convention as :attr:`ReportFact.source`), ``received_at`` when.
    ``log_index`` is set when the registry logged the rejected envelope as evidence, else
    ``None`` (then a partner cannot re-derive findings resting on it alone).
    ``original_received_at``: for a copy of an accepted report, that report's receipt time as
    the logged evidence record states it (``original.received_at``); ``None`` when the record
    names no original (for example a ``forbidden`` copy received before the original was
    accepted). The replay rule measures a copy's delay from it: the log states no other receipt
    time of an accepted report, so it is the one a partner re-derives.
    """

    chip_id: str
    seq: int
    digest: str
    window_start: datetime
    window_end: datetime
    received_at: datetime
    outcome: str
    facility_id: int | None = None
    source: str | None = None
    log_index: int | None = None
    original_received_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_window(self.window_start, self.window_end, f"submission {self.chip_id}#{self.seq}")
        _require_aware(self.received_at, f"submission {self.chip_id}#{self.seq}: received_at")
        _require_aware(
            self.original_received_at, f"submission {self.chip_id}#{self.seq}: original_received_at"
        )
        if not self.outcome:
            raise FactError(f"submission {self.chip_id}#{self.seq}: outcome must not be empty")


@dataclass(frozen=True, slots=True)
class HostPowerFact:
    """A facility's declared host power model (everything in a server but its accelerators:
    CPUs, memory, NICs, fans, power-supply losses), per host of ``gpus_per_host`` GPU slots.

    A host draws ``idle_w + gpus_per_host * per_gpu_slot_w`` with its GPUs idle, plus
    ``busy_w`` times its GPUs' mean utilization (CPU data loading, fans ramping up).
    """

    gpus_per_host: int
    idle_w: float
    per_gpu_slot_w: float
    busy_w: float

    def __post_init__(self) -> None:
        if self.gpus_per_host < 1:
            raise FactError(f"host power: gpus_per_host must be >= 1, got {self.gpus_per_host}")
        for name in ("idle_w", "per_gpu_slot_w", "busy_w"):
            _require_finite(getattr(self, name), f"host power: {name}")

    @classmethod
    def from_record(cls, fields: Mapping[str, object] | None) -> HostPowerFact | None:
        """From the ``host_power`` object of a facility record (as the registry logs it and
        stores it), ``None`` when the facility declared none.

        Raises:
            FactError: a field is missing or not a number.
        """
        if fields is None:
            return None
        try:
            slots = fields["gpus_per_host"]
            if isinstance(slots, bool) or not isinstance(slots, int | float):
                raise TypeError(slots)
            values = [fields[k] for k in ("idle_w", "per_gpu_slot_w", "busy_w")]
            if any(isinstance(v, bool) or not isinstance(v, int | float) for v in values):
                raise TypeError(values)
        except (KeyError, TypeError) as exc:
            raise FactError(f"host power: malformed declaration {dict(fields)!r}") from exc
        return cls(int(slots), *(float(v) for v in values))  # type: ignore[arg-type]

    def watts(self, chips: int, utilization_sum: float) -> float:
        """Host power of ``chips`` GPUs (on as few hosts as hold them) whose utilizations add
        up to ``utilization_sum``."""
        hosts = -(-chips // self.gpus_per_host)
        return (
            hosts * (self.idle_w + self.gpus_per_host * self.per_gpu_slot_w)
            + self.busy_w * utilization_sum / self.gpus_per_host
        )


@dataclass(frozen=True, slots=True)
class FacilityFact:
    """A declared datacenter site (the ``facilities`` table).

    ``declared_power_kw`` is the declared IT capacity; ``pue`` the declared power usage
    effectiveness (facility energy / IT energy, >= 1); ``non_it_load_kw`` a declared constant
    non-IT load beyond what PUE covers (offices, other tenants), 0 if none declared;
    ``host_power`` the declared host power model, ``None`` if none declared (the ghost-chip rule
    then assumes the policy's fixed host overhead fraction).
    """

    facility_id: int
    operator_id: int | None
    country: str
    latitude: float
    longitude: float
    declared_power_kw: float = 0.0
    pue: float = 1.0
    non_it_load_kw: float = 0.0
    name: str = ""
    host_power: HostPowerFact | None = None

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0 or not -180.0 <= self.longitude <= 180.0:
            raise FactError(
                f"facility {self.facility_id}: coordinates ({self.latitude}, "
                f"{self.longitude}) out of range"
            )
        if not (math.isfinite(self.pue) and self.pue >= 1.0):
            raise FactError(f"facility {self.facility_id}: pue must be >= 1, got {self.pue!r}")
        _require_finite(self.declared_power_kw, f"facility {self.facility_id}: declared_power_kw")
        _require_finite(self.non_it_load_kw, f"facility {self.facility_id}: non_it_load_kw")


@dataclass(frozen=True, slots=True)
class InstallationFact:
    """One declared stay of a chip at a facility: ``[start, end)``, ``end`` ``None`` if current.

    From the ``installations`` table (``installed_at``, ``removed_at``), all of them, past and
    present, so rules can ask where a chip was declared at any instant. ``log_index`` of the
    signed declaration if it is logged.
    """

    chip_id: str
    facility_id: int
    start: datetime
    end: datetime | None = None
    log_index: int | None = None

    def __post_init__(self) -> None:
        _require_aware(self.start, f"installation of {self.chip_id}: start")
        _require_aware(self.end, f"installation of {self.chip_id}: end")
        if self.end is not None and self.end < self.start:
            raise FactError(f"installation of {self.chip_id}: end before start")

    def covers(self, instant: datetime) -> bool:
        """True when the chip was declared at this facility at ``instant``."""
        return self.start <= instant and (self.end is None or instant < self.end)


@dataclass(frozen=True, slots=True)
class LandmarkFact:
    """A registered location landmark: a server with its own key at known coordinates."""

    landmark_id: int
    latitude: float
    longitude: float
    name: str = ""

    def __post_init__(self) -> None:
        if not -90.0 <= self.latitude <= 90.0 or not -180.0 <= self.longitude <= 180.0:
            raise FactError(f"landmark {self.landmark_id}: coordinates out of range")


@dataclass(frozen=True, slots=True)
class RttMeasurementFact:
    """A landmark-signed round trip: it sent ``nonce`` to ``chip_id``, got the chip-signed answer
    back after ``rtt_ms`` milliseconds, at ``measured_at``. Only measurements whose landmark
    and chip signatures both verified belong here.
    """

    landmark_id: int
    chip_id: str
    nonce: str
    rtt_ms: float
    measured_at: datetime
    log_index: int | None = None

    def __post_init__(self) -> None:
        _require_finite(self.rtt_ms, f"rtt {self.landmark_id}->{self.chip_id}: rtt_ms")
        _require_aware(self.measured_at, f"rtt {self.landmark_id}->{self.chip_id}: measured_at")


@dataclass(frozen=True, slots=True)
class MeterFact:
    """A registered facility power meter (its own key), measuring the whole facility's draw."""

    meter_id: int
    facility_id: int


@dataclass(frozen=True, slots=True)
class MeterReadingFact:
    """A meter-signed reading: ``energy_j`` joules drawn by the facility over the window."""

    meter_id: int
    facility_id: int
    window_start: datetime
    window_end: datetime
    energy_j: float
    log_index: int | None = None

    def __post_init__(self) -> None:
        what = f"meter {self.meter_id} reading"
        _require_window(self.window_start, self.window_end, what)
        _require_finite(self.energy_j, f"{what}: energy_j")


@dataclass(frozen=True, slots=True)
class ClusterNotificationFact:
    """The operator notified the registry that a declared cluster's run crossed (or will cross)
    ``threshold_flop`` total operations (for example 1e25 or 1e26).

    ``received_at`` is when the registry received the notice: what rules judge it by (an
    operator cannot backdate). ``notified_at`` is the time the operator stated, shown in
    findings for the reader, never judged; ``None`` when not known.
    """

    threshold_flop: float
    received_at: datetime
    log_index: int | None = None
    notified_at: datetime | None = None

    def __post_init__(self) -> None:
        _require_finite(self.threshold_flop, "notification threshold_flop")
        _require_aware(self.received_at, "notification received_at")
        _require_aware(self.notified_at, "notification notified_at")


@dataclass(frozen=True, slots=True)
class DeclaredClusterFact:
    """An operator's signed declaration that ``chip_ids`` work together over ``[start, end]``.

    ``compute_budget_flop`` is the total compute (operations, dense) the declaration allows the
    cluster's run; ``None`` if the declaration states no budget. ``notifications`` are the
    threshold notifications filed for it, in any order.
    """

    cluster_id: int
    name: str
    chip_ids: frozenset[str]
    start: datetime
    end: datetime
    facility_id: int | None
    compute_budget_flop: float | None = None
    notifications: tuple[ClusterNotificationFact, ...] = ()
    log_index: int | None = None

    def __post_init__(self) -> None:
        _require_aware(self.start, f"declared cluster {self.cluster_id}: start")
        _require_aware(self.end, f"declared cluster {self.cluster_id}: end")
        if self.compute_budget_flop is not None:
            _require_finite(self.compute_budget_flop, f"declared cluster {self.cluster_id}: budget")

    def covers(self, window_start: datetime, window_end: datetime) -> bool:
        """True when the declaration is in force over the whole of the given window."""
        return self.start <= window_start and window_end <= self.end


@dataclass(frozen=True, slots=True)
class GpuAttestationFact:
    """Verified GPU device evidence of a chip (a ``gpu_attestation`` log record).

    ``purpose`` is ``enrollment`` (the GPU the chip enrolled with) or ``reattestation`` (an
    answer to a registry challenge); ``hardware_id`` names the GPU that signed.
    """

    chip_id: str
    purpose: str
    hardware_id: str
    verified_at: datetime
    log_index: int

    def __post_init__(self) -> None:
        _require_aware(self.verified_at, "GPU attestation verified_at")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the rules may look at.

    ``chips`` by chip id, ``facilities`` by facility id, ``landmarks`` and ``meters`` by their
    ids; the sequences may come in any order (rules sort what they need). ``reports`` are the
    accepted reports, ``submissions`` the signed-but-rejected ones. ``period_start`` /
    ``period_end`` bound the judged period when the caller loaded only part of the history
    (``None``: from the beginning / up to ``as_of``); rules that count missing data (silence,
    meters) do not look before ``period_start``. ``gpu_attestations`` is the whole history of
    verified GPU evidence up to ``as_of`` (a lapse is judged from the last proof, however old).
    """

    chips: Mapping[str, ChipFact]
    reports: Sequence[ReportFact]
    clusters: Sequence[DeclaredClusterFact]
    facilities: Mapping[int, FacilityFact] = field(default_factory=dict)
    installations: Sequence[InstallationFact] = ()
    submissions: Sequence[SubmissionFact] = ()
    landmarks: Mapping[int, LandmarkFact] = field(default_factory=dict)
    rtts: Sequence[RttMeasurementFact] = ()
    meters: Mapping[int, MeterFact] = field(default_factory=dict)
    meter_readings: Sequence[MeterReadingFact] = ()
    period_start: datetime | None = None
    period_end: datetime | None = None
    gpu_attestations: Sequence[GpuAttestationFact] = ()

    def __post_init__(self) -> None:
        _require_aware(self.period_start, "snapshot period_start")
        _require_aware(self.period_end, "snapshot period_end")
