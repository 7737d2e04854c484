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
from attestation.report import verify_report
from simulator.catalog import CATALOG
from simulator.fleet import Fleet, FleetSpec, build_fleet
from tests.simulator.fleets import SMALL

T0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
W = timedelta(minutes=15)
DEMO_CLUSTER_OPS = 2e16  # demo policy cluster threshold
LINK_BITS = 100e9


def _fingerprint(fleet: Fleet) -> list[tuple[object, ...]]:
    return [
        (c.chip_id, c.model.name, c.facility, c.role, c.key.public_key, c.workload)
        for c in fleet.chips
    ]


def test_same_seed_same_fleet_other_seed_other_fleet(small_fleet: Fleet) -> None:
    again = build_fleet(SMALL)
    assert _fingerprint(again) == _fingerprint(small_fleet)
    assert again.ground_truth == small_fleet.ground_truth
    assert {n: o.key.public_key for n, o in again.operators.items()} == {
        n: o.key.public_key for n, o in small_fleet.operators.items()
    }
    other = build_fleet(FleetSpec(**{**SMALL.__dict__, "seed": 12}))
    assert _fingerprint(other) != _fingerprint(small_fleet)


def test_default_fleet_shape() -> None:
    fleet = build_fleet()
    assert 150 <= len(fleet.chips) <= 500
    assert {v for v in fleet.vendors} == {"NVIDIA", "AMD"}
    assert len(fleet.operators) == 2
    assert len(fleet.facilities) >= 3
    assert len({f.country for f in fleet.facilities.values()}) >= 2
    assert len(set(c.chip_id for c in fleet.chips)) == len(fleet.chips)
    (cluster,) = fleet.clusters
    assert len(cluster.chip_ids) == 64
    assert {fleet.chip(c).facility for c in cluster.chip_ids} == {cluster.facility}
    assert Counter(c.model.vendor for c in fleet.chips)["AMD"] > 0
    assert CATALOG["H100-SXM5-80GB"].peak_tflops_bf16 == 989.0


def test_ground_truth_planted_violations(small_fleet: Fleet) -> None:
    kinds = {v.kind: v for v in small_fleet.ground_truth}
    assert set(kinds) == {"undeclared_cluster", "gone_dark"}
    hidden = kinds["undeclared_cluster"]
    declared = {cid for c in small_fleet.clusters for cid in c.chip_ids}
    assert not set(hidden.chip_ids) & declared
    assert {small_fleet.chip(c).facility for c in hidden.chip_ids} == {hidden.facility}
    assert sum(small_fleet.chip(c).model.peak_ops_per_s for c in hidden.chip_ids) > (
        DEMO_CLUSTER_OPS
    )
    # Every hidden chip has at least one link above 100 Gbit/s to another hidden chip.
    for cid in hidden.chip_ids:
        fast = [
            p
            for p in small_fleet.chip(cid).workload.peers
            if (p.tx_bytes_per_s + p.rx_bytes_per_s) * 8 / 2 > LINK_BITS
        ]
        assert fast
        assert all(p.peer in hidden.chip_ids for p in fast)
    dark = kinds["gone_dark"]
    assert len(dark.chip_ids) == SMALL.dark_chips
    assert dark.from_window == SMALL.dark_after_window
    assert small_fleet.dark_chip_ids() == frozenset(dark.chip_ids)


def test_inference_and_idle_chips_stay_below_link_threshold(small_fleet: Fleet) -> None:
    for chip in small_fleet.chips:
        if chip.role in {"inference", "idle"}:
            assert len(chip.workload.peers) <= 1
            for p in chip.workload.peers:
                assert max(p.tx_bytes_per_s, p.rx_bytes_per_s) * 8 < LINK_BITS


def test_interconnect_is_consistent_from_both_ends(small_fleet: Fleet) -> None:
    rates = {
        (c.chip_id, p.peer, p.link): (p.tx_bytes_per_s, p.rx_bytes_per_s)
        for c in small_fleet.chips
        for p in c.workload.peers
    }
    for (a, b, link), (tx, rx) in rates.items():
        assert rates[(b, a, link)] == (rx, tx)


def test_endorsements_and_reports_verify(small_fleet: Fleet, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    for chip in small_fleet.chips:
        endorsement = verify_chip_certificate(
            chip.certificate_pem, small_fleet.vendors[chip.model.vendor].root_pem, at=now
        )
        assert endorsement.chip_id == chip.chip_id
        assert endorsement.public_key == chip.key.public_key
    backend = SimulatedBackend(
        SimulatedAccelerator(c.chip_id, c.model.name, c.key, c.workload) for c in small_fleet.chips
    )
    spool = Spool(tmp_path / "spool", durable=False)
    agent = Agent(backend, spool, ChainState.load(tmp_path / "c.json", durable=False), None)
    agent.collect(T0, T0 + W)
    items = spool.pending()
    assert len(items) == len(small_fleet.chips)
    for item in items:
        chip = small_fleet.chip(item.chip_id)
        report = verify_report(Envelope.from_json(item.read()), chip.key.public_key).report
        assert report.energy_j <= chip.model.tdp_watts * 900
