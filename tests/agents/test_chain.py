"""Chain state: persistence and reconciliation with the spool after a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend, Workload
from agents.chain import ChainHead, ChainState
from agents.errors import SpoolError
from agents.spool import Spool
from attestation.dsse import Envelope
from attestation.keys import PrivateKey
from attestation.report import GENESIS_DIGEST, open_report, report_digest

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
W = timedelta(minutes=15)


def test_fresh_state_starts_at_genesis(tmp_path: Path) -> None:
    state = ChainState.load(tmp_path / "chain.json")
    assert state.next_link("A") == (1, GENESIS_DIGEST)
    assert state.head("A") is None


def test_advance_persists_and_reloads(tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    state = ChainState.load(path)
    state.advance([("A:1", ChainHead(1, "ab" * 32, T0))])
    again = ChainState.load(path)
    assert again.head("A:1") == ChainHead(1, "ab" * 32, T0)
    assert again.next_link("A:1") == (2, "ab" * 32)


def test_advance_never_moves_backwards(tmp_path: Path) -> None:
    state = ChainState.load(tmp_path / "chain.json")
    state.advance([("A", ChainHead(2, "ab" * 32, T0))])
    with pytest.raises(SpoolError):
        state.advance([("A", ChainHead(2, "cd" * 32, T0 + W))])


def test_corrupt_state_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "chain.json"
    path.write_bytes(b"{not json")
    with pytest.raises(SpoolError):
        ChainState.load(path)


def _agent(tmp_path: Path) -> tuple[Agent, SimulatedAccelerator]:
    acc = SimulatedAccelerator(
        "CHIP-1", "H100-SXM5-80GB", PrivateKey.from_seed(bytes(32)), Workload(0.5, 400.0)
    )
    spool = Spool(tmp_path / "spool")
    return Agent(
        SimulatedBackend([acc]), spool, ChainState.load(tmp_path / "chain.json", spool), None
    ), acc


def test_reconcile_after_crash_between_spool_and_state(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    agent.collect(T0, T0 + W)
    state_before = (tmp_path / "chain.json").read_bytes()
    agent.collect(T0 + W, T0 + 2 * W)
    # Simulate the crash: the seq-2 report reached the spool, the state write did not.
    (tmp_path / "chain.json").write_bytes(state_before)

    spool = Spool(tmp_path / "spool")
    stale = ChainState.load(tmp_path / "chain.json")
    assert stale.next_link("CHIP-1")[0] == 2
    state = ChainState.load(tmp_path / "chain.json", spool)
    head = state.head("CHIP-1")
    spooled = spool.latest("CHIP-1")
    assert spooled is not None
    _, payload = open_report(Envelope.from_json(spooled.read()))
    assert head == ChainHead(2, report_digest(payload), T0 + 2 * W)
    # ... and persisted, so a second restart sees it without the spool.
    assert ChainState.load(tmp_path / "chain.json").head("CHIP-1") == head

    # The restarted agent continues with seq 3 chained to the spooled seq 2: no reuse.
    restarted = Agent(agent.backend, spool, state, None)
    (item,) = restarted.collect(T0 + 2 * W, T0 + 3 * W)
    nxt, _ = open_report(Envelope.from_json(item.read()))
    assert (nxt.seq, nxt.prev_digest) == (3, report_digest(payload))


def test_reconcile_ignores_spool_behind_state(tmp_path: Path) -> None:
    agent, _ = _agent(tmp_path)
    agent.collect(T0, T0 + W)
    agent.collect(T0 + W, T0 + 2 * W)
    first = agent.spool.pending()[0]
    agent.spool.ack(agent.spool.pending()[1])  # only seq 1 remains spooled
    state = ChainState.load(tmp_path / "chain.json", agent.spool)
    assert first.seq == 1
    head = state.head("CHIP-1")
    assert head is not None
    assert head.seq == 2
