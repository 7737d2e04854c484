"""Fleet simulator: determinism, ground truth, endorsements and reports that verify."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend
from agents.chain import ChainState
from agents.spool import Spool
from attestation.certs import verify_chip_certificate
from attestation.dsse import Envelope
from attestation.report import open_report, verify_report
from simulator.catalog import CATALOG
from simulator.fleet import FleetSpec, build_fleet, silenced_from, workload
from simulator.identities import identities
from simulator.world import World
from tests.simulator.fleets import SMALL

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
W = timedelta(minutes=15)
DEMO_CLUSTER_OPS = 2e16  # demo policy cluster threshold
LINK_BITS = 100e9


def _fingerprint(fleet: World) -> list[tuple[object, ...]]:
    return [
        (c.chip_id, c.model.name, c.facility_id, c.public_key, workload(c))
        for c in fleet.chips.values()
    ]


def test_same_seed_same_fleet_other_seed_other_fleet(small_fleet: World) -> None:
    again = build_fleet(SMALL)
    assert _fingerprint(again) == _fingerprint(small_fleet)
    assert again.labels == small_fleet.labels
    assert {o: k.public_key for o, k in identities(again).operator_keys.items()} == {
        o: k.public_key for o, k in identities(small_fleet).operator_keys.items()
    }
    other = build_fleet(FleetSpec(**{**SMALL.__dict__, "seed": 12}))
    assert _fingerprint(other) != _fingerprint(small_fleet)


def test_default_fleet_shape() -> None:
    fleet = build_fleet()
    assert 150 <= len(fleet.chips) <= 500
    assert set(identities(fleet).vendors) == {"NVIDIA", "AMD"}
    assert len(fleet.operators) == 2
    assert len(fleet.facilities) >= 3
    assert len({f.site.country for f in fleet.facilities.values()}) >= 2
    (cluster,) = fleet.clusters.values()
    assert len(cluster.chip_ids) == 64
    assert {fleet.chips[c].facility_id for c in cluster.chip_ids} == {cluster.facility_id}
    assert Counter(c.model.vendor for c in fleet.chips.values())["AMD"] > 0
    assert CATALOG["H100-SXM5-80GB"].peak_tflops_bf16 == 989.0


def test_ground_truth_planted_violations(small_fleet: World) -> None:
    kinds = {v.kind: v for v in small_fleet.labels}
    assert set(kinds) == {"undeclared_cluster", "gone_dark"}
    hidden = kinds["undeclared_cluster"]
    assert hidden.rule_id == "cluster.undeclared"
    declared = {cid for c in small_fleet.clusters.values() for cid in c.chip_ids}
    assert not hidden.chips & declared
    assert {small_fleet.chips[c].facility_id for c in hidden.chips} == hidden.facilities
    assert sum(small_fleet.chips[c].model.peak_ops_per_s for c in hidden.chips) > (DEMO_CLUSTER_OPS)
    # Every hidden chip has at least one link above 100 Gbit/s to another hidden chip.
    for cid in hidden.chips:
        fast = [
            p
            for p in workload(small_fleet.chips[cid]).peers
            if (p.tx_bytes_per_s + p.rx_bytes_per_s) * 8 / 2 > LINK_BITS
        ]
        assert fast
        assert all(p.peer in hidden.chips for p in fast)
    dark = kinds["gone_dark"]
    assert dark.rule_id == "chip.silent"
    assert len(dark.chips) == SMALL.dark_chips
    assert dark.start_window == SMALL.dark_after_window
    assert silenced_from(small_fleet) == dict.fromkeys(dark.chips, SMALL.dark_after_window)


def test_inference_and_idle_chips_stay_below_link_threshold(small_fleet: World) -> None:
    clustered = {c for cl in small_fleet.clusters.values() for c in cl.chip_ids} | {
        c for v in small_fleet.labels if v.kind == "undeclared_cluster" for c in v.chips
    }
    for chip in small_fleet.chips.values():
        if chip.chip_id not in clustered:
            peers = workload(chip).peers
            assert len(peers) <= 1
            for p in peers:
                assert max(p.tx_bytes_per_s, p.rx_bytes_per_s) * 8 < LINK_BITS


def test_interconnect_is_consistent_from_both_ends(small_fleet: World) -> None:
    rates = {
        (c.chip_id, p.peer, p.link): (p.tx_bytes_per_s, p.rx_bytes_per_s)
        for c in small_fleet.chips.values()
        for p in workload(c).peers
    }
    for (a, b, link), (tx, rx) in rates.items():
        assert rates[(b, a, link)] == (rx, tx)


def test_endorsements_and_reports_verify(small_fleet: World, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ids = identities(small_fleet)
    for chip in small_fleet.chips.values():
        endorsement = verify_chip_certificate(
            ids.certificate(chip), ids.vendors[chip.model.vendor].root_pem, at=now
        )
        assert endorsement.chip_id == chip.chip_id
        assert endorsement.public_key == chip.public_key
    backend = SimulatedBackend(
        SimulatedAccelerator(c.chip_id, c.model.name, c.key, workload(c))
        for c in small_fleet.chips.values()
    )
    spool = Spool(tmp_path / "spool", durable=False)
    agent = Agent(backend, spool, ChainState.load(tmp_path / "c.json", durable=False), None)
    agent.collect(T0, T0 + W)
    items = spool.pending()
    assert len(items) == len(small_fleet.chips)
    for item in items:
        chip = small_fleet.chips[item.chip_id]
        report = verify_report(Envelope.from_json(item.read()), chip.public_key).report
        assert report.energy_j <= chip.model.tdp_watts * 900


def test_the_fleet_is_a_world_its_simulation_keeps_the_ground_truth() -> None:
    """One world model: the demo's fleet simulated window by window (as the scenario suite
    does) signs every chip's reports, and the planted chips fall silent at the labelled window."""
    fleet = build_fleet(SMALL)
    artifacts = fleet.simulate()
    silent = silenced_from(fleet)
    windows: dict[str, set[int]] = {}
    for delivery in artifacts.deliveries:
        envelope = Envelope.from_json(delivery.envelope)
        claimed, _ = open_report(envelope)
        report = verify_report(envelope, fleet.chips[claimed.chip_id].public_key).report
        index = int((report.window_start - fleet.epoch) / SMALL.window)
        windows.setdefault(report.chip_id, set()).add(index)
    assert set(windows) == set(fleet.chips)
    for chip_id, seen in windows.items():
        last = silent.get(chip_id, SMALL.windows)
        assert seen == set(range(last)), chip_id
