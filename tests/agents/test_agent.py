"""Agent: hash chains that verify, dry run without side effects, flush bookkeeping."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.agent import Agent
from agents.backends.simulated import (
    PeerRate,
    SimulatedAccelerator,
    SimulatedBackend,
    Workload,
)
from agents.chain import ChainState
from agents.errors import AgentError
from agents.spool import Spool
from attestation.dsse import Envelope
from attestation.keys import PrivateKey
from attestation.report import GENESIS_DIGEST, LinkKind, report_digest, verify_report

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
W = timedelta(minutes=15)


def _backend() -> tuple[SimulatedBackend, dict[str, PrivateKey]]:
    keys = {cid: PrivateKey.from_seed(bytes([i]) * 32) for i, cid in enumerate(["A-1", "B:2"])}
    a = SimulatedAccelerator(
        "A-1",
        "H100-SXM5-80GB",
        keys["A-1"],
        Workload(0.9, 650.0, (PeerRate("B:2", LinkKind.NVLINK, 5e10, 4e10),)),
    )
    b = SimulatedAccelerator(
        "B:2",
        "H100-SXM5-80GB",
        keys["B:2"],
        Workload(0.9, 640.0, (PeerRate("A-1", LinkKind.NVLINK, 4e10, 5e10),)),
    )
    return SimulatedBackend([a, b]), keys


def _agent(tmp_path: Path) -> tuple[Agent, dict[str, PrivateKey]]:
    backend, keys = _backend()
    spool = Spool(tmp_path / "spool")
    return Agent(backend, spool, ChainState.load(tmp_path / "chain.json", spool), None), keys


def test_collect_builds_verifiable_hash_chains(tmp_path: Path) -> None:
    agent, keys = _agent(tmp_path)
    for i in range(4):
        items = agent.collect(T0 + i * W, T0 + (i + 1) * W)
        assert len(items) == 2
    prev: dict[str, str] = {}
    for item in agent.spool.pending():
        envelope = Envelope.from_json(item.read())
        verified = verify_report(envelope, keys[item.chip_id].public_key)
        report = verified.report
        assert (report.chip_id, report.seq) == (item.chip_id, item.seq)
        assert report.prev_digest == prev.get(item.chip_id, GENESIS_DIGEST)
        assert envelope.signatures[0].keyid == keys[item.chip_id].public_key.key_id
        assert report.window_start == T0 + (item.seq - 1) * W
        assert verified.digest == report_digest(verified.payload)
        # Spooled bytes are the canonical envelope bytes (the registry's log leaf data).
        assert item.read() == envelope.to_json()
        prev[item.chip_id] = verified.digest
    assert {c: h.seq for c, h in agent.chain.chips().items()} == {"A-1": 4, "B:2": 4}
    first = Envelope.from_json(agent.spool.pending()[0].read())
    report = verify_report(first, keys["A-1"].public_key).report
    assert report.energy_j == pytest.approx(650.0 * 900)
    (link,) = report.interconnect
    assert (link.peer, link.tx_bytes, link.rx_bytes) == ("B:2", int(5e10 * 900), int(4e10 * 900))


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    agent.collect(T0, T0 + W)
    spool_before = sorted(p.name for p in (tmp_path / "spool").iterdir())
    state_before = (tmp_path / "chain.json").read_bytes()
    statements = agent.dry_run(T0 + W, T0 + 2 * W)
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == spool_before
    assert (tmp_path / "chain.json").read_bytes() == state_before
    assert [s["predicate"]["seq"] for s in statements] == [2, 2]  # type: ignore[index]
    json.dumps(statements)  # plain JSON values, ready to print
    # What dry run shows is exactly what collect then signs.
    items = agent.collect(T0 + W, T0 + 2 * W)
    payloads = [json.loads(Envelope.from_json(i.read()).payload) for i in items]
    assert payloads == statements


def test_overlapping_window_is_skipped_not_signed(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    agent.collect(T0, T0 + W)
    assert agent.collect(T0 + W / 2, T0 + 2 * W) == []
    assert {h.seq for h in agent.chain.chips().values()} == {1}


def test_silenced_chip_stops_reporting(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    assert isinstance(agent.backend, SimulatedBackend)
    agent.backend.silence(["B:2"])
    assert [i.chip_id for i in agent.collect(T0, T0 + W)] == ["A-1"]


def test_flush_without_client_is_an_error(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    with pytest.raises(AgentError):
        agent.flush()


def test_naive_window_rejected(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    with pytest.raises(AgentError):
        agent.collect(datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 15))


def test_facility_claim_is_signed_into_every_report(tmp_path: Path) -> None:
    backend, keys = _backend()
    spool = Spool(tmp_path / "spool")
    agent = Agent(
        backend, spool, ChainState.load(tmp_path / "chain.json", spool), None, facility_id=7
    )
    agent.collect(T0, T0 + W)
    for item in agent.spool.pending():
        verified = verify_report(Envelope.from_json(item.read()), keys[item.chip_id].public_key)
        assert verified.report.facility_id == 7
        assert json.loads(verified.payload)["predicate"]["facility_id"] == 7
    assert [s["predicate"]["facility_id"] for s in agent.dry_run(T0 + W, T0 + 2 * W)] == [7, 7]
    # Without a facility the statement has no claim at all (not a null one).
    plain, _ = _agent(tmp_path / "plain")
    assert all("facility_id" not in s["predicate"] for s in plain.dry_run(T0, T0 + W))


@pytest.mark.parametrize("facility_id", [0, -3, 2**31, True])
def test_facility_claim_must_be_a_registry_id(tmp_path: Path, facility_id: int) -> None:
    backend, _ = _backend()
    spool = Spool(tmp_path / "spool")
    with pytest.raises(AgentError, match="facility id"):
        Agent(
            backend,
            spool,
            ChainState.load(tmp_path / "chain.json", spool),
            None,
            facility_id=facility_id,
        )
