"""Verifier facts from the simulator's signed artifacts, as the registry would build them.

:func:`ingest` plays the registry's part with real bytes: it opens and verifies every chip-
signed usage report (:mod:`attestation.report`) in arrival order under the chip's registered
key, applies the ingest rules in the registry's order (a window ending beyond the clock skew
after receipt is dropped; a report delivered by an operator that is not the chip's custodian at
receipt nor when the window started is ``forbidden``, kept as evidence and logged once per
digest and operator; a claim of an unknown facility or a window before the chip's first
installation is dropped; then the next sequence number on the chip's hash chain is accepted and
logged; a byte-identical copy of an accepted report is a ``replayed_report``, a different report
for an accepted sequence number ``sequence_reused``, anything else off the chain
``sequence_gap`` / ``broken_hash_chain``, all kept as evidence), verifies every meter-signed
reading and every landmark-signed round trip together with the chip's signed answer to the
landmark's challenge. Artifacts that do not verify are dropped, as the registry drops them.
Everything verified is logged in arrival order into a :class:`verifier.ledger.Ledger` (the
world's declarations first), and :meth:`EvidenceLog.snapshot` gives the
:class:`verifier.facts.Snapshot` known at any instant: the log cut where it stood then, judged
by :func:`verifier.ledger.snapshot` exactly as the registry's and the partner's audit's are.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from attestation.chain import RejectionCode, judge
from attestation.dsse import Envelope
from attestation.errors import AttestationError
from attestation.keys import PublicKey
from attestation.landmark import verify_challenge_answer, verify_measurement
from attestation.meter import verify_reading
from attestation.report import GENESIS_DIGEST, VerifiedReport, open_envelope
from simulator.artifacts import Artifacts, Delivery
from simulator.world import World
from verifier.facts import (
    ClusterNotificationFact,
    DeclaredClusterFact,
    FacilityFact,
    InstallationFact,
    LandmarkFact,
    LinkFact,
    MeterFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.ledger import (
    BudgetRecord,
    ChipRecord,
    ClusterRecord,
    ConditionRecord,
    FacilityRecord,
    InstallationRecord,
    LandmarkRecord,
    Ledger,
    MeterRecord,
    NotificationRecord,
    snapshot,
)

__all__ = ["EvidenceLog", "Registered", "RegisteredChip", "ingest", "registered_from_world"]

Evidence = ReportFact | SubmissionFact | MeterReadingFact | RttMeasurementFact | InstallationRecord

# The registry's default CHIPREG_MAX_CLOCK_SKEW_S.
MAX_SKEW = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class RegisteredChip:
    """What the register holds about a chip (its endorsement and transfer conditions)."""

    chip_id: str
    model: str
    vendor: str
    peak_ops: float
    peak_power_w: float
    public_key: PublicKey
    allowed_countries: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class Registered:
    """The declarations: chips, facilities, installations, clusters, landmarks and meters."""

    chips: Mapping[str, RegisteredChip]
    facilities: Mapping[int, FacilityFact]
    installations: tuple[InstallationFact, ...]
    clusters: tuple[tuple[datetime, DeclaredClusterFact], ...]
    """(declared at, declaration with all its notifications)."""
    landmarks: Mapping[int, tuple[LandmarkFact, PublicKey]]
    meters: Mapping[int, tuple[MeterFact, PublicKey]]


def registered_from_world(world: World) -> Registered:
    """The declarations of a simulated world, each logged (indexes from 0, in a fixed order)."""
    index = 0
    facilities = {
        fid: FacilityFact(
            facility_id=fid,
            operator_id=f.operator_id,
            country=f.site.country,
            latitude=f.site.latitude,
            longitude=f.site.longitude,
            declared_power_kw=round(
                sum(c.model.tdp_watts for c in world.chips.values() if c.facility_id == fid)
                * 1.5
                / 1000,
                1,
            ),
            pue=f.site.pue,
            non_it_load_kw=f.site.non_it_kw,
            name=f.site.name,
            host_power=f.host_declared,
        )
        for fid, f in world.facilities.items()
    }
    chips = {
        cid: RegisteredChip(
            chip_id=cid,
            model=c.model.name,
            vendor=c.model.vendor,
            peak_ops=c.model.peak_ops_per_s,
            peak_power_w=c.model.tdp_watts,
            public_key=c.public_key,
            allowed_countries=c.allowed_countries,
        )
        for cid, c in world.chips.items()
    }
    installations = []
    for stay in sorted(world.stays, key=lambda s: (s.start, s.chip_id)):
        installations.append(
            InstallationFact(stay.chip_id, stay.facility_id, stay.start, stay.end, index)
        )
        index += 1
    clusters = []
    for decl in world.clusters.values():
        notes = []
        for threshold, at in decl.notifications:
            notes.append(ClusterNotificationFact(threshold, at, index))
            index += 1
        clusters.append(
            (
                decl.declared_at,
                DeclaredClusterFact(
                    cluster_id=decl.cluster_id,
                    name=decl.name,
                    chip_ids=decl.chip_ids,
                    start=decl.start,
                    end=decl.end,
                    facility_id=decl.facility_id,
                    compute_budget_flop=decl.budget_flop,
                    notifications=tuple(notes),
                    log_index=index,
                ),
            )
        )
        index += 1
    landmarks = {
        lid: (
            LandmarkFact(lid, lm.place.latitude, lm.place.longitude, lm.place.name),
            lm.key.public_key,
        )
        for lid, lm in world.landmarks.items()
    }
    meters = {
        f.meter_id: (MeterFact(f.meter_id, fid), f.meter_key.public_key)
        for fid, f in world.facilities.items()
    }
    return Registered(chips, facilities, tuple(installations), tuple(clusters), landmarks, meters)


# Declarations are logged before the run: known at any instant.
_DECLARED = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class EvidenceLog:
    """The simulated registry's log as an evidence ledger, with the instant each entry
    arrived (entries are logged in arrival order, declarations first)."""

    registered: Registered
    ledger: Ledger
    arrivals: tuple[datetime, ...]
    """The arrival instant of each log entry, by log index (non-decreasing)."""
    rejected: int
    """Artifacts dropped because they did not verify."""

    @property
    def report_count(self) -> int:
        return len(self.ledger.reports)

    def snapshot(self, as_of: datetime) -> Snapshot:
        """What the registry knew at ``as_of``: the log as it stood then (every entry that had
        arrived), cut and judged by :func:`verifier.ledger.snapshot` like the registry's."""
        return snapshot(self.ledger, as_of=as_of, cut=bisect_right(self.arrivals, as_of))


def _declarations(registered: Registered) -> Ledger:
    """The world's declarations as ledger records (with the log indexes they were given)."""
    clusters: list[ClusterRecord] = []
    budgets: list[BudgetRecord] = []
    notices: list[NotificationRecord] = []
    for _, decl in registered.clusters:
        clusters.append(
            ClusterRecord(
                decl.cluster_id,
                decl.name,
                decl.chip_ids,
                decl.start,
                decl.end,
                decl.facility_id,
                decl.log_index,
            )
        )
        if decl.compute_budget_flop is not None:
            budgets.append(BudgetRecord(decl.cluster_id, decl.compute_budget_flop, decl.log_index))
        notices.extend(
            NotificationRecord(
                decl.cluster_id, n.threshold_flop, n.received_at, n.notified_at, n.log_index
            )
            for n in decl.notifications
        )
    return Ledger(
        chips=[
            ChipRecord(c.chip_id, c.model, c.peak_ops, c.peak_power_w, c.vendor, None)
            for c in registered.chips.values()
        ],
        facilities=[FacilityRecord(f, None) for f in registered.facilities.values()],
        conditions=[
            ConditionRecord(c.chip_id, c.allowed_countries, _DECLARED, None)
            for c in registered.chips.values()
            if c.allowed_countries is not None
        ],
        clusters=clusters,
        budgets=budgets,
        notifications=notices,
        landmarks=[LandmarkRecord(lm, None) for lm, _ in registered.landmarks.values()],
        meters=[MeterRecord(m, None) for m, _ in registered.meters.values()],
    )


def _evidence(
    d: Delivery,
    verified: VerifiedReport,
    outcome: RejectionCode,
    receipts: Mapping[tuple[str, int], datetime],
    names_original: bool,
) -> SubmissionFact:
    """A signed report refused with ``outcome``, kept as evidence; a copy of an accepted report
    names the original's receipt, as the registry's ``rejected_report`` record does."""
    r = verified.report
    return SubmissionFact(
        chip_id=r.chip_id,
        seq=r.seq,
        digest=verified.digest,
        window_start=r.window_start,
        window_end=r.window_end,
        received_at=d.received_at,
        outcome=outcome,
        facility_id=r.facility_id,
        source=d.source,
        original_received_at=receipts.get((r.chip_id, r.seq)) if names_original else None,
    )


def _digest_at(accepted: Mapping[tuple[str, int], str], chip_id: str, seq: int) -> str | None:
    return accepted.get((chip_id, seq))


@dataclass(slots=True)
class _Head:
    """A chip's chain head in the simulated registry (see :func:`attestation.chain.judge`)."""

    seq: int = 0
    digest: str = GENESIS_DIGEST
    window_end: datetime | None = None


def _custodian(
    registered: Registered, stays: Sequence[InstallationFact], at: datetime
) -> str | None:
    """The source (``operator:<id>``) whose facility held the chip at ``at``, if any."""
    for stay in stays:
        if stay.start <= at and (stay.end is None or at < stay.end):
            site = registered.facilities.get(stay.facility_id)
            return None if site is None else f"operator:{site.operator_id}"
    return None


def ingest(registered: Registered, artifacts: Artifacts) -> EvidenceLog:
    """Verify every artifact and turn it into facts, in arrival order (see the module doc)."""
    declarations = _declarations(registered)
    # Past the indexes registered_from_world gave the declarations.
    declared = len(registered.installations) + sum(
        1 + len(d.notifications) for _, d in registered.clusters
    )
    # Installations (logged when they begin) and verified artifacts by arrival: (at, kind
    # rank, order, record); logged in that order.
    arrived: list[tuple[datetime, int, int, Evidence]] = [
        (i.start, -1, n, InstallationRecord(i.chip_id, i.facility_id, i.start, None))
        for n, i in enumerate(registered.installations)
    ]
    unlogged: list[SubmissionFact] = []
    heads: dict[str, _Head] = {}
    accepted: dict[tuple[str, int], str] = {}
    receipts: dict[tuple[str, int], datetime] = {}
    stays: dict[str, list[InstallationFact]] = {}
    for stay in sorted(registered.installations, key=lambda x: x.start):
        stays.setdefault(stay.chip_id, []).append(stay)
    forwarded: set[tuple[str, str]] = set()
    rejected = 0
    for d in sorted(artifacts.deliveries, key=lambda d: (d.received_at, d.order)):
        try:
            opened = open_envelope(Envelope.from_json(d.envelope))
            chip = registered.chips.get(opened.claimed.chip_id)
            if chip is None:
                rejected += 1
                continue
            verified = opened.verify(chip.public_key)
        except AttestationError:
            rejected += 1
            continue
        r = verified.report
        chip_stays = stays.get(r.chip_id, [])
        custody = _custodian(registered, chip_stays, d.received_at)
        if r.window_end > d.received_at + MAX_SKEW or custody is None:
            rejected += 1  # window_in_future, chip_not_installed
            continue
        if d.source not in (custody, _custodian(registered, chip_stays, r.window_start)):
            if (verified.digest, d.source) not in forwarded:  # kept once per operator
                forwarded.add((verified.digest, d.source))
                copy = accepted.get((r.chip_id, r.seq)) == verified.digest
                kept = _evidence(d, verified, RejectionCode.FORBIDDEN, receipts, copy)
                arrived.append((d.received_at, 0, len(arrived), kept))
            continue
        if (r.facility_id is not None and r.facility_id not in registered.facilities) or (
            r.window_start < chip_stays[0].start
        ):
            rejected += 1  # unknown_facility, window_before_installation
            continue
        head = heads.setdefault(r.chip_id, _Head())
        outcome = judge(head, r, verified.digest, partial(_digest_at, accepted, r.chip_id))
        if outcome is None:
            head.seq, head.digest, head.window_end = r.seq, verified.digest, r.window_end
            accepted[(r.chip_id, r.seq)] = verified.digest
            receipts[(r.chip_id, r.seq)] = d.received_at
            fact = ReportFact(
                chip_id=r.chip_id,
                seq=r.seq,
                window_start=r.window_start,
                window_end=r.window_end,
                utilization=r.utilization,
                energy_j=r.energy_j,
                links=tuple(
                    LinkFact(lt.peer, lt.link.value, lt.tx_bytes, lt.rx_bytes)
                    for lt in r.interconnect
                ),
                log_index=None,
                facility_id=r.facility_id,
                digest=verified.digest,
                received_at=d.received_at,
                source=d.source,
            )
            arrived.append((d.received_at, 0, len(arrived), fact))
            continue
        kept = _evidence(d, verified, outcome, receipts, outcome is RejectionCode.REPLAYED_REPORT)
        if outcome is RejectionCode.REPLAYED_REPORT:  # copies are not logged twice
            unlogged.append(kept)
        else:
            arrived.append((d.received_at, 0, len(arrived), kept))
    for reading in sorted(artifacts.readings, key=lambda x: (x.received_at, x.meter_id)):
        meter = registered.meters.get(reading.meter_id)
        if meter is None:
            rejected += 1
            continue
        try:
            v = verify_reading(Envelope.from_json(reading.envelope), reading.meter_id, meter[1])
        except AttestationError:
            rejected += 1
            continue
        m = v.reading
        arrived.append(
            (
                reading.received_at,
                1,
                len(arrived),
                MeterReadingFact(
                    m.meter_id, m.facility_id, m.window_start, m.window_end, m.energy_j
                ),
            )
        )
    for probe in sorted(artifacts.measurements, key=lambda x: (x.received_at, x.landmark_id)):
        landmark = registered.landmarks.get(probe.landmark_id)
        try:
            if landmark is None:
                raise AttestationError(f"unknown landmark {probe.landmark_id}")
            vm = verify_measurement(
                Envelope.from_json(probe.envelope), probe.landmark_id, landmark[1]
            )
            mm = vm.measurement
            chip = registered.chips.get(mm.chip_id)
            if chip is None:
                raise AttestationError(f"unknown chip {mm.chip_id}")
            verify_challenge_answer(
                mm.landmark_id, mm.chip_id, mm.nonce, mm.chip_signature, chip.public_key
            )
        except AttestationError:
            rejected += 1
            continue
        arrived.append(
            (
                probe.received_at,
                2,
                len(arrived),
                RttMeasurementFact(mm.landmark_id, mm.chip_id, mm.nonce, mm.rtt_ms, mm.measured_at),
            )
        )
    arrived.sort(key=lambda a: a[:3])
    logged = [replace(fact, log_index=declared + i) for i, (_, _, _, fact) in enumerate(arrived)]
    ledger = replace(
        declarations,
        installations=[f for f in logged if isinstance(f, InstallationRecord)],
        reports=[f for f in logged if isinstance(f, ReportFact)],
        submissions=[
            *(f for f in logged if isinstance(f, SubmissionFact)),
            *unlogged,
        ],
        readings=[f for f in logged if isinstance(f, MeterReadingFact)],
        rtts=[f for f in logged if isinstance(f, RttMeasurementFact)],
    )
    return EvidenceLog(
        registered=registered,
        ledger=ledger,
        arrivals=(_DECLARED,) * declared + tuple(at for at, _, _, _ in arrived),
        rejected=rejected,
    )
