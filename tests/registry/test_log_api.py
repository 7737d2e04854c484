"""The log endpoints: signed checkpoint, entries, proofs, tlog-proof and tiles all verify
against each other, and every accepted thing is in the log."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from attestation import merkle, tiles
from attestation.checkpoint import verify_checkpoint
from attestation.note import NoteVerifier
from attestation.records import EnrollmentRecord, VerifierRunRecord
from attestation.tlog_proof import verify_proof
from registry.auth import Role
from registry.repositories.log import LogRepository
from tests.conftest import LiveRegistry
from tests.registry.factories import make_world, ok
from tests.registry.logtools import wait_checkpoint


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def all_entries(http: httpx.Client, size: int) -> list[dict]:
    out: list[dict] = []
    while len(out) < size:
        page = ok(http.get("/v1/log/entries", params={"start": len(out), "end": size}))
        out.extend(page["entries"])
    return out


def log_size(registry: LiveRegistry) -> int:
    with registry.context.sessions() as s:
        return LogRepository(s).sequenced_size()


def test_checkpoint_entries_and_proofs_verify(live_registry: LiveRegistry) -> None:
    with live_registry.client() as http:
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
        verifier = NoteVerifier.from_vkey(vkey)
        empty = verify_checkpoint(http.get("/v1/log/checkpoint").text, verifier)
        assert (empty.size, empty.root_hash) == (0, merkle.EMPTY_ROOT)

    world = make_world(live_registry)
    chips = [world.enroll(f"NV-H100-{i:04d}") for i in range(3)]
    with live_registry.client() as http:
        base = log_size(live_registry)
        ok(world.post([c.report() for c in chips]))
        cp3, _ = wait_checkpoint(http, verifier, base + 3)
        ok(world.post([c.report() for c in chips] + [chips[0].report()]))
        cp7, _ = wait_checkpoint(http, verifier, base + 7)
        response = http.get("/v1/log/checkpoint")
        assert response.headers["content-type"].startswith("text/plain")
        assert verify_checkpoint(response.text, verifier) == cp7
        assert cp7.origin == "test.chipreg.local/log"

        entries = all_entries(http, cp7.size)
        assert [e["index"] for e in entries] == list(range(cp7.size))
        leaves = [merkle.leaf_hash(b64(e["body"])) for e in entries]
        assert [b64(e["leaf_hash"]) for e in entries] == leaves
        assert merkle.root_from_leaf_hashes(leaves) == cp7.root_hash
        assert merkle.root_from_leaf_hashes(leaves[: cp3.size]) == cp3.root_hash

        for index in range(cp7.size):
            proof = ok(
                http.get("/v1/log/proof/inclusion", params={"index": index, "tree_size": cp7.size})
            )
            merkle.verify_inclusion(
                leaf_hash=leaves[index],
                index=index,
                tree_size=cp7.size,
                proof=[b64(h) for h in proof["hashes"]],
                root=cp7.root_hash,
            )
        by_hash = ok(
            http.get(
                "/v1/log/proof/inclusion",
                params={"leaf_hash": base64.b64encode(leaves[4]).decode(), "tree_size": cp7.size},
            )
        )
        assert by_hash["index"] == 4

        proof = ok(
            http.get("/v1/log/proof/consistency", params={"first": cp3.size, "second": cp7.size})
        )
        merkle.verify_consistency(
            size1=cp3.size,
            size2=cp7.size,
            root1=cp3.root_hash,
            root2=cp7.root_hash,
            proof=[b64(h) for h in proof["hashes"]],
        )

        # An offline tlog-proof of the last report, against the published checkpoint.
        text = http.get("/v1/log/proof/tlog-proof", params={"index": cp7.size - 1}).text
        got, _ = verify_proof(text, leaves[-1], verifier)
        assert got == cp7

        # tlog-tiles: the level-0 partial tile and the entry bundle of the tree.
        tile = http.get(f"/v1/log/{tiles.tile_path(0, 0, cp7.size)}")
        assert tile.headers["content-type"] == "application/octet-stream"
        assert tile.content == b"".join(leaves)
        bundle = http.get(f"/v1/log/{tiles.entries_path(0, cp7.size)}").content
        assert [merkle.leaf_hash(e) for e in tiles.parse_bundle(bundle)] == leaves
        assert http.get(f"/v1/log/{tiles.tile_path(0, 0)}").status_code == 404
        assert http.get(f"/v1/log/{tiles.tile_path(0, 0, cp7.size + 1)}").status_code == 404


def test_everything_accepted_is_logged_with_its_kind(live_registry: LiveRegistry) -> None:
    world = make_world(live_registry)
    chip = world.enroll("NV-H100-0001")
    ok(world.post([chip.report()]))
    inspector = live_registry.token(Role.INSPECTOR)
    with live_registry.client(inspector) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo"}))
        entries = all_entries(http, log_size(live_registry))
    kinds = [e["kind"] for e in entries]
    assert kinds == [
        "vendor",
        "operator",
        "facility",
        "enrollment",
        "installation",
        "usage_report",
        "verifier_run",
    ]
    enrollment = EnrollmentRecord.from_json(b64(entries[3]["body"]))
    assert enrollment.chip_id == "NV-H100-0001"
    assert "BEGIN CERTIFICATE" in enrollment.certificate_pem
    installation = json.loads(b64(entries[4]["body"]))
    assert installation["payloadType"] == "application/vnd.chipreg.declaration+json"
    run = VerifierRunRecord.from_json(b64(entries[6]["body"]))
    assert (run.policy_id, run.log_size) == ("demo", 6)


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v1/log/proof/inclusion", {"index": 0, "tree_size": 1000}, 400, "bad_tree_size"),
        ("/v1/log/proof/inclusion", {"index": 10, "tree_size": 2}, 400, "bad_index"),
        ("/v1/log/proof/inclusion", {"tree_size": 2}, 400, "bad_query"),
        ("/v1/log/proof/inclusion", {"leaf_hash": "AAAA", "tree_size": 2}, 404, "unknown_leaf"),
        ("/v1/log/proof/consistency", {"first": 2, "second": 1}, 400, "bad_tree_size"),
        ("/v1/log/proof/consistency", {"first": 0, "second": 1}, 422, "invalid_request"),
        ("/v1/log/entries", {"start": 5, "end": 2}, 400, "bad_range"),
        # Beyond the log is "no such entry", not "wait for the next checkpoint".
        ("/v1/log/proof/tlog-proof", {"index": 100_000}, 404, "unknown_entry"),
        ("/v1/log/tile/0/1", {}, 404, "unknown_tile"),
        ("/v1/log/tile/0/x000/000.p/3", {}, 404, "unknown_tile"),  # non-canonical spellings
        ("/v1/log/tile/entries/x000/000.p/3", {}, 404, "unknown_tile"),
        ("/v1/log/tile/0/000.p/0", {}, 404, "unknown_tile"),
    ],
)
def test_bad_proof_requests_are_precise(
    live_registry: LiveRegistry, path: str, params: dict, status: int, code: str
) -> None:
    world = make_world(live_registry)
    chip = world.enroll("NV-H100-0001")
    ok(world.post([chip.report(), chip.report()]))
    with live_registry.client() as http:
        r = http.get(path, params=params)
        assert (r.status_code, r.json()["code"]) == (status, code), (path, params, r.text)
