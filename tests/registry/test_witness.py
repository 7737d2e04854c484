"""A real witness over HTTP: the registry's publisher gets cosignatures; a fork gets none."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from attestation import merkle
from attestation.checkpoint import Checkpoint, sign_checkpoint
from attestation.cosignature import CosignatureSigner, verify_cosignatures
from attestation.keys import PrivateKey
from attestation.note import NoteSigner, NoteVerifier
from attestation.tlog_witness import format_add_checkpoint
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings, WitnessSetting
from registry.witness import Witness, create_witness_app, generate_witness_key, load_state
from tests.conftest import LiveRegistry
from tests.registry.factories import make_world, ok
from tests.registry.logtools import wait_checkpoint

ORIGIN = "test.chipreg.local/log"


def write_log_key(path: Path, label: str = "log") -> NoteSigner:
    key = PrivateKey.from_seed(hashlib.sha256(label.encode()).digest())
    signer = NoteSigner(ORIGIN, key)
    raw = base64.b64encode(b"\x01" + key.seed).decode()
    path.write_text(f"PRIVATE+KEY+{ORIGIN}+{signer.key_id.hex()}+{raw}\n")
    return signer


class WitnessServer:
    def __init__(self, tmp: Path, log: NoteVerifier) -> None:
        self.signer = generate_witness_key("witness.test/w1", tmp / "witness.key")
        self.state = tmp / "witness-state.json"
        self.witness = Witness(self.signer, {log.name: log}, self.state)
        self.server = BackgroundServer(create_witness_app(self.witness))  # type: ignore[arg-type]


@pytest.fixture
def witness_server(tmp_path: Path) -> Iterator[WitnessServer]:
    log = write_log_key(tmp_path / "log-key")
    w = WitnessServer(tmp_path, log.verifier())
    with w.server:
        yield w


def witnessed_app(database_url: str, tmp: Path, witness: WitnessServer) -> tuple[FastAPI, str]:
    """A registry app submitting to ``witness``, and an admin token."""
    settings = Settings(
        database_url=database_url,
        log_key_file=tmp / "log-key",
        log_origin=ORIGIN,
        checkpoint_interval_s=0.05,
        witnesses=[WitnessSetting(url=witness.server.url, vkey=witness.signer.verifier_key())],
    )
    app = create_app(settings)
    with app.state.context.sessions() as s:
        admin = AccountService(s, utc_now).create_token("admin", Role.ADMIN).secret
        s.commit()
    return app, admin


def log_size(registry: LiveRegistry) -> int:
    with registry.context.sessions() as s:
        return int(s.execute(text("SELECT size FROM log_sequence")).scalar_one())


def test_publisher_collects_cosignatures_and_a_fork_gets_none(
    database_url: str, tmp_path: Path, witness_server: WitnessServer
) -> None:
    app, admin = witnessed_app(database_url, tmp_path, witness_server)
    with BackgroundServer(app) as server:
        registry = LiveRegistry(server.url, app.state.context, admin)
        world = make_world(registry)
        chips = [world.enroll(f"NV-H100-{i:04d}") for i in range(2)]
        with registry.client() as http:
            verifier = NoteVerifier.from_vkey(ok(http.get("/v1/log/key"))["verifier_key"])
            ok(world.post([c.report() for c in chips]))
            size = log_size(registry)
            _, note = wait_checkpoint(http, verifier, size)
            # the cosignature arrives with the checkpoint (stored in the same round)
            _, cosigs = verify_cosignatures(note, [witness_server.signer.verifier()])
            assert [c.name for c in cosigs] == ["witness.test/w1"]
            ok(world.post([chips[0].report()]))
            cp2, note2 = wait_checkpoint(http, verifier, size + 1)
            _, cosigs2 = verify_cosignatures(note2, [witness_server.signer.verifier()])
            assert len(cosigs2) == 1
    state = load_state(witness_server.state)
    assert state[ORIGIN].size == cp2.size and state[ORIGIN].root_hash == cp2.root_hash

    # A forked history signed with the same log key: the witness refuses it and says why.
    log_signer = write_log_key(tmp_path / "unused-key")
    forked = [merkle.leaf_hash(b"a different history %d" % i) for i in range(cp2.size + 3)]
    fork_cp = sign_checkpoint(
        Checkpoint(ORIGIN, len(forked), merkle.root_from_leaf_hashes(forked)), log_signer
    )
    proof = merkle.consistency_proof(cp2.size, forked)
    with httpx.Client(base_url=witness_server.server.url) as http:
        r = http.post("/add-checkpoint", content=format_add_checkpoint(cp2.size, proof, fork_cp))
        assert r.status_code == 422
        assert "not consistent" in r.text
        stale = http.post("/add-checkpoint", content=format_add_checkpoint(0, [], fork_cp))
        assert (stale.status_code, stale.text) == (409, f"{cp2.size}\n")
        assert stale.headers["content-type"].startswith("text/x.tlog.size")
        origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
        monitored = http.get(f"/{origin_hash}/checkpoint").text
        assert monitored.startswith(f"{ORIGIN}\n{cp2.size}\n")
    assert load_state(witness_server.state)[ORIGIN].size == cp2.size


def test_witness_key_round_trip(tmp_path: Path) -> None:
    signer = generate_witness_key("w.example/1", tmp_path / "k")
    again = CosignatureSigner.from_skey((tmp_path / "k").read_text())
    assert again.verifier_key() == signer.verifier_key()
    with pytest.raises(FileExistsError):
        generate_witness_key("w.example/1", tmp_path / "k")
