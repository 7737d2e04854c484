"""A time-stepped simulated world for the scenario suites, producing real signed artifacts.

The world holds facilities (real sites in several countries, each with a signed power meter),
chips with real peak specs and their own keys, location landmarks with their own keys, declared
training clusters with compute budgets, and honest workloads (training, tensor-parallel and
paired inference, idle). :meth:`World.simulate` steps it window by window and returns what the
registry would receive: chip-signed usage reports (DSSE envelopes, hash-chained per chip, with
their delivery time and sender), meter-signed energy readings and landmark-signed round trips
answered by chip-signed challenges. Nothing here knows the verifier's rules.

Honest noise is part of the world: utilisation jitter, interconnect counters that differ by a
fraction of a percent between the two ends, agent outages whose backlog arrives later, agent
retries after a lost acknowledgement, meter error, weather in the PUE, network jitter.

Violations are planted through :meth:`World.at` (change the world from a window on),
:meth:`World.deliver` (extra signed artifacts) and recorded as :class:`Label` ground truth.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from attestation.keys import PrivateKey
from attestation.landmark import LandmarkMeasurement, sign_challenge, sign_measurement
from attestation.meter import MeterReading, sign_reading
from attestation.report import (
    LinkKind,
    LinkTraffic,
    UsageReport,
    report_digest,
    sign_report,
)
from simulator.artifacts import Artifacts, Delivery, Measurement, Reading
from simulator.catalog import LANDMARKS, ChipModel, Place, Site
from simulator.ground_truth import Label
from simulator.inventory import ChipSim, ClusterDecl, FacilitySim, LandmarkSim, Stay
from simulator.physics import (
    IB_GBYTES_PER_S,
    PAIR_GBYTES_PER_S,
    great_circle_km,
    meter_energy_j,
    simulated_rtt_ms,
    true_host_model,
)

__all__ = ["World"]

_GB = 1e9


def _key(seed: int, label: str) -> PrivateKey:
    return PrivateKey.from_seed(hashlib.sha256(f"chipreg-world:{seed}:{label}".encode()).digest())


class World:
    """A mutable world, built (honest fleet, then planted violations) and then simulated."""

    def __init__(
        self,
        *,
        seed: int,
        epoch: datetime,
        window: timedelta,
        windows: int,
        rtt_every: int = 8,
        pings: int = 3,
        retry_probability: float = 0.002,
    ) -> None:
        self.seed = seed
        self.epoch = epoch.astimezone(UTC)
        self.window = window
        self.windows = windows
        self.rtt_every = rtt_every
        self.pings = pings
        self.retry_probability = retry_probability
        self.rng = random.Random(f"{seed}:build")
        self.operators: dict[str, int] = {}
        self.facilities: dict[int, FacilitySim] = {}
        self.landmarks: dict[int, LandmarkSim] = {}
        self.chips: dict[str, ChipSim] = {}
        self.stays: list[Stay] = []
        self.clusters: dict[int, ClusterDecl] = {}
        self.clones: list[ChipSim] = []
        self.labels: list[Label] = []
        self._events: dict[int, list[Callable[[int], None]]] = defaultdict(list)
        self._extra: dict[int, list[Callable[[int], Iterable[Delivery]]]] = defaultdict(list)
        self._after: list[Callable[[], Label]] = []
        self._serial = 1_700_000_000 + self.rng.randrange(10_000_000) * 100
        self._order = 0
        for i, place in enumerate(LANDMARKS, start=1):
            self.landmarks[i] = LandmarkSim(i, place, _key(seed, f"landmark:{i}"))

    # -- building -----------------------------------------------------------------------------

    def window_start(self, w: int) -> datetime:
        return self.epoch + w * self.window

    def add_facility(self, site: Site) -> FacilitySim:
        operator_id = self.operators.setdefault(site.operator, len(self.operators) + 1)
        fid = len(self.facilities) + 1
        facility = FacilitySim(
            facility_id=fid,
            site=site,
            operator_id=operator_id,
            meter_id=fid,
            meter_key=_key(self.seed, f"meter:{fid}"),
            host_truth=(truth := true_host_model(self.rng)),
            true_pue=site.pue * self.rng.uniform(0.97, 1.02),
        )
        # Operators declare their host model from their own measurements, a few % off.
        error = self.rng.uniform(0.96, 1.04)
        facility.host_declared = replace(
            truth,
            idle_w=round(truth.idle_w * error, 1),
            per_gpu_slot_w=round(truth.per_gpu_slot_w * error, 1),
            busy_w=round(truth.busy_w * error, 1),
        )
        self.facilities[fid] = facility
        return facility

    def add_chips(
        self, facility_id: int, model: ChipModel, n: int, *, allowed: frozenset[str] | None = None
    ) -> list[str]:
        """``n`` new registered chips installed (declared) at the facility from the epoch, idle."""
        facility = self.facilities[facility_id]
        ids = []
        for _ in range(n):
            self._serial += self.rng.randrange(1, 40)
            chip_id = f"{model.name.split('-')[0]}-{self._serial}"
            key = _key(self.seed, f"chip:{chip_id}")
            self.chips[chip_id] = ChipSim(
                chip_id=chip_id,
                model=model,
                key=key,
                public_key=key.public_key,
                facility_id=facility_id,
                latitude=facility.site.latitude,
                longitude=facility.site.longitude,
                at_facility=facility_id,
                source=f"operator:{facility.operator_id}",
                allowed_countries=allowed,
            )
            self.stays.append(Stay(chip_id, facility_id, self.epoch))
            ids.append(chip_id)
        return ids

    def link(self, a: str, b: str, kind: LinkKind, gbytes_per_s: float) -> None:
        """Traffic between a and b; a's tx is b's rx (each end's counters add their own noise)."""
        skew = self.rng.uniform(0.9, 1.1)
        ab, ba = gbytes_per_s * _GB * skew, gbytes_per_s * _GB / skew
        self.chips[a].peers[b] = (kind, ab, ba)
        self.chips[b].peers[a] = (kind, ba, ab)

    def unlink_all(self, chip_id: str) -> None:
        for peer in self.chips[chip_id].peers:
            self.chips[peer].peers.pop(chip_id, None)
        self.chips[chip_id].peers.clear()

    def training(self, ids: Sequence[str], *, per_node: int = 8) -> None:
        """All-to-all within each 8-GPU node over the scale-up link (60-90% of
        :data:`PAIR_GBYTES_PER_S` per pair, ~300-430 Gbit/s each way), rail-aligned ring across
        nodes over InfiniBand (60-90% of :data:`IB_GBYTES_PER_S`), 85-97% busy: traffic stays
        inside what the links carry in the busy time."""
        scale_up = self.chips[ids[0]].model.scale_up_link
        nodes = [ids[i : i + per_node] for i in range(0, len(ids), per_node)]
        for node in nodes:
            for i, a in enumerate(node):
                for b in node[i + 1 :]:
                    self.link(a, b, scale_up, PAIR_GBYTES_PER_S * self.rng.uniform(0.6, 0.9))
        if len(nodes) > 1:
            pairs = len(nodes) if len(nodes) > 2 else 1
            for n in range(pairs):
                node, nxt = nodes[n], nodes[(n + 1) % len(nodes)]
                for a, b in zip(node, nxt, strict=False):
                    rate = IB_GBYTES_PER_S * self.rng.uniform(0.6, 0.9)
                    self.link(a, b, LinkKind.INFINIBAND, rate)
        for cid in ids:
            self.chips[cid].util = self.rng.uniform(0.85, 0.97)

    def inference_nodes(self, ids: Sequence[str]) -> None:
        """Tensor-parallel serving, 8 GPUs per node all-to-all (5-40 GB/s per pair, above the
        cluster link threshold but far below any cluster's compute), 30-70% busy."""
        scale_up = self.chips[ids[0]].model.scale_up_link
        for start in range(0, len(ids), 8):
            node = ids[start : start + 8]
            for i, a in enumerate(node):
                for b in node[i + 1 :]:
                    self.link(a, b, scale_up, self.rng.uniform(5, 40))
        for cid in ids:
            self.chips[cid].util = self.rng.uniform(0.3, 0.7)

    def inference_pairs(self, ids: Sequence[str]) -> None:
        """Small models served on pairs (0.3-1.5 GB/s) or single chips, 25-70% busy."""
        paired = ids[: len(ids) // 2]
        scale_up = self.chips[ids[0]].model.scale_up_link
        for a, b in zip(paired[::2], paired[1::2], strict=False):
            self.link(a, b, scale_up, self.rng.uniform(0.3, 1.5))
        for cid in ids:
            self.chips[cid].util = self.rng.uniform(0.25, 0.7)

    def declare_cluster(
        self,
        name: str,
        facility_id: int,
        chip_ids: Iterable[str],
        *,
        budget_flop: float | None,
        notify: Sequence[float] = (),
        purpose: str = "training",
    ) -> ClusterDecl:
        """A cluster declaration in force for two years from the epoch; ``notify`` thresholds
        are notified at declaration time (an honest operator announces the run's size)."""
        cid = len(self.clusters) + 1
        decl = ClusterDecl(
            cluster_id=cid,
            name=name,
            facility_id=facility_id,
            chip_ids=frozenset(chip_ids),
            start=self.epoch,
            end=self.epoch + timedelta(days=730),
            budget_flop=budget_flop,
            notifications=[(t, self.epoch) for t in notify],
            declared_at=self.epoch,
            purpose=purpose,
        )
        self.clusters[cid] = decl
        return decl

    def projected_flop(self, chip_ids: Iterable[str]) -> float:
        """Upper bound of a chip set's compute over the whole run (at its base utilisation)."""
        seconds = self.window.total_seconds() * self.windows
        return sum(
            min(1.0, self.chips[c].util + 0.05) * self.chips[c].model.peak_ops_per_s * seconds
            for c in chip_ids
        )

    def reinstall(self, chip_id: str, facility_id: int, window: int) -> None:
        """Declare the chip moved to ``facility_id`` from the start of ``window``."""
        at = self.window_start(window)
        for i, stay in enumerate(self.stays):
            if stay.chip_id == chip_id and stay.end is None:
                self.stays[i] = replace(stay, end=at)
        self.stays.append(Stay(chip_id, facility_id, at))

    def at(self, window: int, change: Callable[[int], None]) -> None:
        """Apply ``change(window)`` to the world at the start of ``window``."""
        self._events[window].append(change)

    def deliver(self, window: int, extra: Callable[[int], Iterable[Delivery]]) -> None:
        """Extra signed artifacts delivered during ``window`` (clones, replays)."""
        self._extra[window].append(extra)

    def label(self, label: Label) -> None:
        self.labels.append(label)

    def label_after(self, make: Callable[[], Label]) -> None:
        """A label only known once the world has run (a budget's crossing window)."""
        self._after.append(make)

    def next_order(self) -> int:
        self._order += 1
        return self._order

    def move(self, chip_id: str, *, to: Place | FacilitySim) -> None:
        """Physically move a chip (its declaration unchanged); its traffic stops."""
        chip = self.chips[chip_id]
        self.unlink_all(chip_id)
        if isinstance(to, FacilitySim):
            chip.latitude, chip.longitude = to.site.latitude, to.site.longitude
            chip.at_facility = to.facility_id
        else:
            chip.latitude, chip.longitude = to.latitude, to.longitude
            chip.at_facility = None

    # -- running ------------------------------------------------------------------------------

    def simulate(self) -> Artifacts:
        """Step every window; return the signed artifacts in production order."""
        rng = random.Random(f"{self.seed}:run")
        deliveries: list[Delivery] = []
        readings: list[Reading] = []
        measurements: list[Measurement] = []
        chip_index = {cid: i for i, cid in enumerate(self.chips)}
        seconds = self.window.total_seconds()
        for w in range(self.windows):
            for change in self._events.get(w, ()):
                change(w)
            start, end = self.window_start(w), self.window_start(w + 1)
            energy: dict[int, float] = defaultdict(float)
            slots: dict[int, int] = defaultdict(int)
            busy: dict[int, float] = defaultdict(float)
            reported_util: dict[str, float] = {}
            for chip in self.chips.values():
                util, power = self._truth(chip, rng)
                if chip.powered and chip.at_facility is not None:
                    energy[chip.at_facility] += power * seconds
                    slots[chip.at_facility] += 1
                    busy[chip.at_facility] += util
                if not chip.reporting:
                    continue
                report = self.report(chip, start, end, util=util, power=power, rng=rng)
                reported_util[chip.chip_id] = report.utilization
                envelope = self.sign(chip, report)
                if chip.history is not None:
                    chip.history[w] = envelope
                received = self._received(chip, w, end, rng)
                deliveries.append(Delivery(received, self.next_order(), envelope, chip.source))
                if rng.random() < self.retry_probability:  # lost acknowledgement: resent
                    again = received + timedelta(seconds=rng.randint(60, 600))
                    deliveries.append(Delivery(again, self.next_order(), envelope, chip.source))
            for clone in self.clones:
                util, power = self._truth(clone, rng)
                report = self.report(clone, start, end, util=util, power=power, rng=rng)
                envelope = self.sign(clone, report)
                received = end + timedelta(seconds=rng.randint(40, 90))  # after the original
                deliveries.append(Delivery(received, self.next_order(), envelope, clone.source))
            for extra in self._extra.get(w, ()):
                deliveries.extend(extra(w))
            for fid, facility in self.facilities.items():
                site = facility.site
                reading = MeterReading(
                    meter_id=facility.meter_id,
                    facility_id=facility.facility_id,
                    window_start=start,
                    window_end=end,
                    energy_j=meter_energy_j(
                        energy[facility.facility_id]
                        + facility.host_truth.watts(slots[fid], busy[fid]) * seconds
                        + facility.ghost_w * seconds,
                        seconds,
                        pue=facility.true_pue * rng.uniform(0.99, 1.01),
                        non_it_kw=site.non_it_kw,
                        rng=rng,
                    ),
                )
                envelope = sign_reading(reading, facility.meter_key).to_json()
                received = end + timedelta(seconds=rng.randint(1, 20))
                readings.append(Reading(facility.meter_id, received, envelope))
            for chip in self.chips.values():
                if chip.reporting and (w + chip_index[chip.chip_id]) % self.rtt_every == 0:
                    measurements.extend(self._probe(chip, w, chip_index[chip.chip_id], start, rng))
            for decl in self.clusters.values():
                window_flop = sum(
                    reported_util.get(c, 0.0) * self.chips[c].model.peak_ops_per_s * seconds
                    for c in sorted(decl.chip_ids)
                    if c in self.chips
                )
                before = decl.cumulative_flop[-1] if decl.cumulative_flop else 0.0
                decl.cumulative_flop.append(before + window_flop)
        for make in self._after:
            self.labels.append(make())
        return Artifacts(tuple(deliveries), tuple(readings), tuple(measurements))

    def _truth(self, chip: ChipSim, rng: random.Random) -> tuple[float, float]:
        """(true utilisation, true board power in W) this window."""
        if not chip.powered:
            return 0.0, 0.0
        model = chip.model
        if chip.util <= 0.03:
            util = rng.uniform(0.0, 0.02)
        else:
            util = min(1.0, max(0.0, chip.util + rng.gauss(0.0, 0.01))) * chip.duty
        return util, model.board_power_w(util)

    def report(
        self,
        chip: ChipSim,
        start: datetime,
        end: datetime,
        *,
        util: float,
        power: float,
        rng: random.Random,
    ) -> UsageReport:
        seconds = (end - start).total_seconds()
        energy = power * seconds * chip.energy_factor
        if chip.claim_util is not None:
            util = chip.claim_util
            energy = chip.model.idle_watts * seconds
        links = []
        for peer, (kind, tx, rx) in sorted({**chip.peers, **chip.fake_peers}.items()):
            if peer in chip.hidden_peers:
                continue
            other = self.chips.get(peer)
            if peer in chip.peers and other is not None and not other.powered:
                continue  # no traffic with a chip that is switched off
            noise = (1 + rng.uniform(-0.005, 0.005)) * (chip.duty if peer in chip.peers else 1.0)
            links.append(
                LinkTraffic(peer, kind, int(tx * seconds * noise), int(rx * seconds * noise))
            )
        chip.seq += 1
        report = UsageReport(
            chip_id=chip.chip_id,
            key_id=chip.public_key.key_id,
            seq=chip.seq,
            prev_digest=chip.prev,
            window_start=start,
            window_end=end,
            utilization=round(min(max(util, 0.0), 1.0), 4),
            energy_j=round(energy, 1),
            interconnect=tuple(links),
            facility_id=chip.claim_facility or chip.facility_id,
        )
        chip.last = report
        return report

    def sign(self, chip: ChipSim, report: UsageReport) -> bytes:
        """Sign with the chip's key and advance its hash chain; the envelope's JSON bytes."""
        envelope = sign_report(report, chip.key)
        chip.prev = report_digest(envelope.payload)
        return envelope.to_json()

    def _received(self, chip: ChipSim, w: int, end: datetime, rng: random.Random) -> datetime:
        """When the report arrives: seconds after the window, or after the agent's outage."""
        facility = self.facilities.get(chip.at_facility or chip.facility_id)
        if facility is not None and w in facility.outages:
            back = w
            while back in facility.outages:
                back += 1
            # The agent sends its backlog in order once the registry is reachable again.
            queued = back - w
            return self.window_start(back) + timedelta(
                seconds=300 - 20 * queued + rng.randint(0, 9)
            )
        return end + timedelta(seconds=rng.randint(1, 30))

    def _probe(
        self, chip: ChipSim, w: int, index: int, start: datetime, rng: random.Random
    ) -> list[Measurement]:
        """Round trips from the two landmarks nearest the declared facility and one rotating
        landmark, ``pings`` each; the real chip (wherever it is) signs each challenge."""
        declared = self.facilities[chip.facility_id].site
        by_distance = sorted(
            self.landmarks.values(),
            key=lambda lm: great_circle_km(
                lm.place.latitude, lm.place.longitude, declared.latitude, declared.longitude
            ),
        )
        marks = by_distance[:2]
        rotating = by_distance[2 + (w // self.rtt_every + index) % (len(by_distance) - 2)]
        out = []
        for k, mark in enumerate([*marks, rotating]):
            distance = great_circle_km(
                mark.place.latitude, mark.place.longitude, chip.latitude, chip.longitude
            )
            for p in range(self.pings):
                nonce = hashlib.sha256(
                    f"{self.seed}:{chip.chip_id}:{w}:{mark.landmark_id}:{p}".encode()
                ).hexdigest()
                answer = sign_challenge(mark.landmark_id, chip.chip_id, nonce, chip.key)
                measured_at = start + timedelta(seconds=180 + 20 * k + 5 * p)
                m = LandmarkMeasurement(
                    landmark_id=mark.landmark_id,
                    chip_id=chip.chip_id,
                    nonce=nonce,
                    chip_signature=answer,
                    rtt_ms=simulated_rtt_ms(distance, rng),
                    measured_at=measured_at,
                )
                envelope = sign_measurement(m, mark.key).to_json()
                out.append(Measurement(mark.landmark_id, measured_at, envelope))
        return out
