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
:meth:`EvidenceLog.snapshot` then gives the :class:`verifier.facts.Snapshot` known at any
instant: only what had arrived by then. Pure: no I/O, no clock.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from agents.simulator.world import Artifacts, World
from attestation.dsse import Envelope
from attestation.errors import AttestationError
from attestation.keys import PublicKey
from attestation.landmark import verify_challenge_answer, verify_measurement
from attestation.meter import verify_reading
from attestation.report import open_envelope
from verifier.facts import (
    ChipFact,
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

__all__ = ["EvidenceLog", "Registered", "RegisteredChip", "ingest", "registered_from_world"]

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


@dataclass(frozen=True, slots=True)
class _Timed:
    """Facts sorted by the instant they became known."""

    times: list[datetime]
    facts: list[object]

    def upto(self, as_of: datetime) -> list[object]:
        return self.facts[: bisect_right(self.times, as_of)]


def _timed(pairs: Sequence[tuple[datetime, object]]) -> _Timed:
    ordered = sorted(pairs, key=lambda p: p[0])
    return _Timed([t for t, _ in ordered], [f for _, f in ordered])


@dataclass(frozen=True, slots=True)
class EvidenceLog:
    """Verified facts, each with the instant it reached the registry."""

    registered: Registered
    reports: _Timed
    submissions: _Timed
    readings: _Timed
    rtts: _Timed
    rejected: int
    """Artifacts dropped because they did not verify."""

    @property
    def report_count(self) -> int:
        return len(self.reports.facts)

    def snapshot(self, as_of: datetime) -> Snapshot:
        """What the registry knew at ``as_of``: the chips' installations as declared by then,
        every artifact received by then."""
        reg = self.registered
        stays = [
            InstallationFact(
                i.chip_id,
                i.facility_id,
                i.start,
                i.end if i.end is not None and i.end <= as_of else None,
                i.log_index,
            )
            for i in reg.installations
            if i.start <= as_of
        ]
        current: dict[str, InstallationFact] = {}
        for stay in stays:  # in start order: the last open stay is the current one
            if stay.end is None:
                current[stay.chip_id] = stay
        chips = {}
        for cid, c in reg.chips.items():
            here = current.get(cid)
            site = None if here is None else reg.facilities[here.facility_id]
            chips[cid] = ChipFact(
                chip_id=cid,
                model=c.model,
                peak_ops=c.peak_ops,
                facility_id=None if here is None else here.facility_id,
                country=None if site is None else site.country,
                installed_at=None if here is None else here.start,
                peak_power_w=c.peak_power_w,
                vendor=c.vendor,
                allowed_countries=c.allowed_countries,
                operator_id=None if site is None else site.operator_id,
            )
        clusters = []
        for declared_at, decl in reg.clusters:
            if declared_at > as_of:
                continue
            notes = tuple(n for n in decl.notifications if n.received_at <= as_of)
            clusters.append(
                DeclaredClusterFact(
                    cluster_id=decl.cluster_id,
                    name=decl.name,
                    chip_ids=decl.chip_ids,
                    start=decl.start,
                    end=decl.end,
                    facility_id=decl.facility_id,
                    compute_budget_flop=decl.compute_budget_flop,
                    notifications=notes,
                    log_index=decl.log_index,
                )
            )
        return Snapshot(
            chips=chips,
            reports=self.reports.upto(as_of),  # type: ignore[arg-type]
            clusters=clusters,
            facilities=reg.facilities,
            installations=stays,
            submissions=self.submissions.upto(as_of),  # type: ignore[arg-type]
            landmarks={lid: lm for lid, (lm, _) in reg.landmarks.items()},
            rtts=self.rtts.upto(as_of),  # type: ignore[arg-type]
            meters={mid: m for mid, (m, _) in reg.meters.items()},
            meter_readings=self.readings.upto(as_of),  # type: ignore[arg-type]
        )


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
    log_index = len(registered.installations) + sum(
        1 + len(d.notifications) for _, d in registered.clusters
    )
    heads: dict[str, tuple[int, str]] = {}
    accepted: dict[tuple[str, int], str] = {}
    receipts: dict[tuple[str, int], datetime] = {}
    stays: dict[str, list[InstallationFact]] = {}
    for stay in sorted(registered.installations, key=lambda x: x.start):
        stays.setdefault(stay.chip_id, []).append(stay)
    forwarded: set[tuple[str, str]] = set()
    reports: list[tuple[datetime, object]] = []
    submissions: list[tuple[datetime, object]] = []
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
                submissions.append(
                    (
                        d.received_at,
                        SubmissionFact(
                            chip_id=r.chip_id,
                            seq=r.seq,
                            digest=verified.digest,
                            window_start=r.window_start,
                            window_end=r.window_end,
                            received_at=d.received_at,
                            outcome="forbidden",
                            facility_id=r.facility_id,
                            source=d.source,
                            log_index=log_index,
                            original_received_at=(
                                receipts.get((r.chip_id, r.seq))
                                if accepted.get((r.chip_id, r.seq)) == verified.digest
                                else None
                            ),
                        ),
                    )
                )
                log_index += 1
            continue
        if (r.facility_id is not None and r.facility_id not in registered.facilities) or (
            r.window_start < chip_stays[0].start
        ):
            rejected += 1  # unknown_facility, window_before_installation
            continue
        seq, head = heads.get(r.chip_id, (0, "0" * 64))
        known = accepted.get((r.chip_id, r.seq))
        if known is None and r.seq == seq + 1 and r.prev_digest == head:
            heads[r.chip_id] = (r.seq, verified.digest)
            accepted[(r.chip_id, r.seq)] = verified.digest
            receipts[(r.chip_id, r.seq)] = d.received_at
            fact: object = ReportFact(
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
                log_index=log_index,
                facility_id=r.facility_id,
                digest=verified.digest,
                received_at=d.received_at,
                source=d.source,
            )
            log_index += 1
            reports.append((d.received_at, fact))
            continue
        if known is not None:
            outcome = "replayed_report" if known == verified.digest else "sequence_reused"
        elif r.seq == seq + 1:
            outcome = "broken_hash_chain"
        else:
            outcome = "sequence_gap"
        logged = None
        if outcome != "replayed_report":  # byte-identical copies are not logged twice
            logged = log_index
            log_index += 1
        submissions.append(
            (
                d.received_at,
                SubmissionFact(
                    chip_id=r.chip_id,
                    seq=r.seq,
                    digest=verified.digest,
                    window_start=r.window_start,
                    window_end=r.window_end,
                    received_at=d.received_at,
                    outcome=outcome,
                    facility_id=r.facility_id,
                    source=d.source,
                    log_index=logged,
                    original_received_at=(
                        receipts.get((r.chip_id, r.seq)) if outcome == "replayed_report" else None
                    ),
                ),
            )
        )
    readings: list[tuple[datetime, object]] = []
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
        readings.append(
            (
                reading.received_at,
                MeterReadingFact(
                    m.meter_id, m.facility_id, m.window_start, m.window_end, m.energy_j, log_index
                ),
            )
        )
        log_index += 1
    rtts: list[tuple[datetime, object]] = []
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
        rtts.append(
            (
                probe.received_at,
                RttMeasurementFact(
                    mm.landmark_id, mm.chip_id, mm.nonce, mm.rtt_ms, mm.measured_at, log_index
                ),
            )
        )
        log_index += 1
    return EvidenceLog(
        registered=registered,
        reports=_timed(reports),
        submissions=_timed(submissions),
        readings=_timed(readings),
        rtts=_timed(rtts),
        rejected=rejected,
    )
