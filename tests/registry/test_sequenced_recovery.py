"""kill -9 between sequencing and integration (issue 15): nothing acknowledged is lost, the
integrator catches up after the restart, and every earlier checkpoint is consistent with the log.

A real ``chipreg serve --workers 2`` in its own process group, killed with SIGKILL: first
while its integrator runs (a checkpoint is published), then while it is held off
(``CHIPREG_CHECKPOINT_INTERVAL_S=3600``: reports are acknowledged, i.e. sequenced and committed,
but in no checkpoint), then restarted with a running integrator.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import httpx
import pytest

from attestation import merkle
from attestation.checkpoint import Checkpoint, verify_checkpoint
from attestation.note import NoteVerifier
from loadtests import losscheck
from loadtests.fleet import _chain, create_accounts, enroll, make_chips
from loadtests.server import RegistryProcess, registry_env, reset_postgres, spawn_serve
from loadtests.server import start_registry as start_serve

CHIPS = 8
WORKERS = 2


def _post(url: str, token: str, body: bytes) -> list[losscheck.Ack]:
    r = httpx.post(
        f"{url}/v1/reports/batch",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    at = time.time()
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted"] * len(results), results
    return [losscheck.Ack(x["chip_id"], x["seq"], x["digest"], x["log_index"], at) for x in results]


def _checkpoint(url: str, verifier: NoteVerifier) -> Checkpoint:
    return verify_checkpoint(httpx.get(f"{url}/v1/log/checkpoint", timeout=10).text, verifier)


def _wait_checkpoint(url: str, verifier: NoteVerifier, size: int) -> Checkpoint:
    deadline = time.monotonic() + 60
    while True:
        try:
            cp = _checkpoint(url, verifier)
            if cp.size >= size:
                return cp
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"no checkpoint of size {size}"
        time.sleep(0.05)


def _restart(server: RegistryProcess, env: dict[str, str], workdir: Path) -> None:
    server.kill_hard()
    port = int(server.url.rsplit(":", 1)[1])
    server.process = spawn_serve(env, port, WORKERS, server.log_path)
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert server.process.poll() is None, server.log_path.read_text()[-2000:]
        assert time.monotonic() < deadline, "the registry did not restart"
        time.sleep(0.1)


def _consistent(url: str, old: Checkpoint, new: Checkpoint) -> None:
    """The consistency proof the registry serves from ``old`` to ``new`` verifies."""
    if old.size == new.size:
        assert old.root_hash == new.root_hash
        return
    doc = httpx.get(
        f"{url}/v1/log/proof/consistency",
        params={"first": old.size, "second": new.size},
        timeout=10,
    ).json()
    proof = [base64.b64decode(h) for h in doc["hashes"]]
    merkle.verify_consistency(
        size1=old.size, size2=new.size, root1=old.root_hash, root2=new.root_hash, proof=proof
    )


def test_kill_9_between_sequencing_and_integration(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if database_url.startswith("postgresql"):
        reset_postgres(database_url)
    monkeypatch.setenv("CHIPREG_CHECKPOINT_INTERVAL_S", "0.05")
    server = start_serve(database_url, tmp_path, workers=WORKERS, timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            accounts = create_accounts(http, server.admin_token)
            fleet = make_chips(CHIPS, seed="sequenced-recovery")
            enroll(http, accounts, fleet, threads=2)
            verifier = NoteVerifier.from_vkey(http.get("/v1/log/key").json()["verifier_key"])
        chains = [list(_chain(chip, 4)) for chip in fleet]
        batches = [
            b'{"reports":[' + b",".join(chain[i] for chain in chains) + b"]}" for i in range(4)
        ]
        token = accounts.operator_token
        acks = _post(server.url, token, batches[0])
        checkpoints = [_wait_checkpoint(server.url, verifier, 1 + max(a.log_index for a in acks))]

        # Integrator held off: acknowledged = sequenced and committed, in no checkpoint yet.
        held = {**registry_env(database_url, tmp_path), "CHIPREG_CHECKPOINT_INTERVAL_S": "3600"}
        _restart(server, held, tmp_path)
        pending = _post(server.url, token, batches[1]) + _post(server.url, token, batches[2])
        acks += pending
        last = max(a.log_index for a in pending)
        assert _checkpoint(server.url, verifier).size <= min(a.log_index for a in pending)
        # The entry is stored and served, but not provable yet: no checkpoint covers it.
        r = httpx.get(f"{server.url}/v1/log/proof/tlog-proof", params={"index": last})
        assert (r.status_code, r.json()["code"]) == (404, "not_yet_published")
        r = httpx.get(
            f"{server.url}/v1/log/proof/inclusion", params={"index": last, "tree_size": last + 1}
        )
        assert (r.status_code, r.json()["code"]) == (400, "bad_tree_size")
        assert (
            httpx.get(
                f"{server.url}/v1/log/entries", params={"start": last, "end": last + 1}
            ).json()["entries"][0]["index"]
            == last
        )
        assert not losscheck.check(database_url, acks).problems[1:], "only the lag is a problem"
        assert losscheck.check(database_url, acks, integrated=False).ok

        # kill -9 with sequenced entries not integrated; the restarted integrator catches up.
        _restart(server, registry_env(database_url, tmp_path), tmp_path)
        checkpoints.append(_wait_checkpoint(server.url, verifier, last + 1))
        acks += _post(server.url, token, batches[3])
        checkpoints.append(
            _wait_checkpoint(server.url, verifier, 1 + max(a.log_index for a in acks))
        )
        time.sleep(0.3)  # a round more: the integrator is idle, the checkpoint is the latest
        final = _checkpoint(server.url, verifier)
        for old in checkpoints:
            _consistent(server.url, old, final)
    finally:
        server.stop()
    loss = losscheck.check(database_url, acks)
    assert loss.ok, loss.problems
    assert loss.acknowledged == loss.stored_reports == 4 * CHIPS
    assert loss.integrated_size == loss.log_size == final.size
