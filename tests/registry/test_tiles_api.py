"""The registry serves C2SP tlog-tiles byte for byte as Tessera does for the same entries."""

from __future__ import annotations

import base64

from attestation import merkle, tiles
from attestation.checkpoint import Checkpoint
from attestation.note import NoteVerifier
from registry.services.log import LogAppender
from tests.attestation.conftest import TESSERA_LOG, require
from tests.conftest import LiveRegistry
from tests.registry.logtools import wait_checkpoint


def tessera_root(name: str) -> bytes:
    text = require(TESSERA_LOG / name).read_text()
    return Checkpoint.from_text(text[: text.index("\n\n") + 1]).root_hash


def test_tiles_match_the_tessera_test_log(live_registry: LiveRegistry) -> None:
    bundle = require(TESSERA_LOG / "tile" / "entries" / "000.p" / "15").read_bytes()
    entries = tiles.parse_bundle(bundle)
    with live_registry.context.sessions() as s:
        log = LogAppender(s)
        for e in entries:  # one leaf per step, as Tessera built it
            log.append("usage_report", [e], live_registry.context.clock())
        s.commit()
    with live_registry.client() as http:
        vkey = http.get("/v1/log/key").json()["verifier_key"]
        cp, _ = wait_checkpoint(http, NoteVerifier.from_vkey(vkey), 15)
        assert cp.root_hash == tessera_root("checkpoint")
        for n in range(1, 16):
            tile = require(TESSERA_LOG / "tile" / "0" / "000.p" / str(n)).read_bytes()
            assert http.get(f"/v1/log/tile/0/000.p/{n}").content == tile
            bundle_n = require(TESSERA_LOG / "tile" / "entries" / "000.p" / str(n)).read_bytes()
            assert http.get(f"/v1/log/tile/entries/000.p/{n}").content == bundle_n
            proof = http.get("/v1/log/proof/consistency", params={"first": n, "second": 15})
            merkle.verify_consistency(
                size1=n,
                size2=15,
                root1=tessera_root(f"checkpoint.{n}"),
                root2=cp.root_hash,
                proof=[base64.b64decode(h) for h in proof.json()["hashes"]],
            )
