"""The log endpoints: signed checkpoint, entries and proofs all verify against each other."""

from __future__ import annotations

import base64

from attestation import merkle
from attestation.checkpoint import verify_checkpoint
from attestation.note import NoteVerifier
from tests.conftest import LiveRegistry
from tests.registry.factories import make_world, ok
from tests.registry.logtools import wait_checkpoint


def b64(s: str) -> bytes:
    return base64.b64decode(s)


def test_checkpoint_entries_and_proofs_verify(live_registry: LiveRegistry) -> None:
    world = make_world(live_registry)
    chips = [world.enroll(f"NV-H100-{i:04d}") for i in range(3)]
    with live_registry.client() as http:
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
        verifier = NoteVerifier.from_vkey(vkey)
        empty = verify_checkpoint(http.get("/v1/log/checkpoint").text, verifier)
        assert (empty.size, empty.root_hash) == (0, merkle.EMPTY_ROOT)

        ok(world.post([c.report() for c in chips]))
        cp3, _ = wait_checkpoint(http, verifier, 3)
        ok(world.post([c.report() for c in chips] + [chips[0].report()]))
        cp7, _ = wait_checkpoint(http, verifier, 7)
        response = http.get("/v1/log/checkpoint")
        assert response.headers["content-type"].startswith("text/plain")
        assert verify_checkpoint(response.text, verifier) == cp7
        assert cp7.origin == "test.chipreg.local/log"

        entries = ok(http.get("/v1/log/entries", params={"start": 0, "end": 100}))["entries"]
        assert [e["index"] for e in entries] == list(range(7))
        leaves = [merkle.leaf_hash(b64(e["body"])) for e in entries]
        assert [b64(e["leaf_hash"]) for e in entries] == leaves
        assert merkle.root_from_leaf_hashes(leaves) == cp7.root_hash
        assert merkle.root_from_leaf_hashes(leaves[:3]) == cp3.root_hash

        for index in range(7):
            proof = ok(http.get("/v1/log/proof/inclusion", params={"index": index, "tree_size": 7}))
            merkle.verify_inclusion(
                leaf_hash=leaves[index],
                index=index,
                tree_size=7,
                proof=[b64(h) for h in proof["hashes"]],
                root=cp7.root_hash,
            )
        by_hash = ok(
            http.get(
                "/v1/log/proof/inclusion",
                params={"leaf_hash": base64.b64encode(leaves[4]).decode(), "tree_size": 7},
            )
        )
        assert by_hash["index"] == 4

        proof = ok(http.get("/v1/log/proof/consistency", params={"first": 3, "second": 7}))
        merkle.verify_consistency(
            size1=3,
            size2=7,
            root1=cp3.root_hash,
            root2=cp7.root_hash,
            proof=[b64(h) for h in proof["hashes"]],
        )


def test_bad_proof_requests_are_precise(live_registry: LiveRegistry) -> None:
    world = make_world(live_registry)
    chip = world.enroll("NV-H100-0001")
    ok(world.post([chip.report(), chip.report()]))
    with live_registry.client() as http:
        cases = [
            ("/v1/log/proof/inclusion", {"index": 0, "tree_size": 3}, 400, "bad_tree_size"),
            ("/v1/log/proof/inclusion", {"index": 2, "tree_size": 2}, 400, "bad_index"),
            ("/v1/log/proof/inclusion", {"tree_size": 2}, 400, "bad_query"),
            ("/v1/log/proof/inclusion", {"leaf_hash": "AAAA", "tree_size": 2}, 404, "unknown_leaf"),
            ("/v1/log/proof/consistency", {"first": 2, "second": 1}, 400, "bad_tree_size"),
            ("/v1/log/proof/consistency", {"first": 0, "second": 1}, 422, "invalid_request"),
            ("/v1/log/entries", {"start": 5, "end": 2}, 400, "bad_range"),
        ]
        for path, params, status, code in cases:
            r = http.get(path, params=params)
            assert (r.status_code, r.json()["code"]) == (status, code), (path, params, r.text)
