"""Log serving per the C2SP tlog-tiles SHOULDs: full tiles and entry bundles are immutable and
cached for long, partial ones and the checkpoint are not; gzip when the client asks; one path
per tile. Real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip

from attestation.note import NoteVerifier
from registry.services.log import LogAppender
from tests.conftest import LiveRegistry
from tests.registry.logtools import wait_checkpoint

SIZE = 300  # one full level-0 tile and entry bundle (256), one partial of 44


def test_tiles_are_cached_compressed_and_canonical(live_registry: LiveRegistry) -> None:
    with live_registry.context.sessions() as s:
        LogAppender(s).append(
            "usage_report",
            [b"entry %d" % i for i in range(SIZE)],
            live_registry.context.clock(),
        )
        s.commit()
    with live_registry.client() as http:
        vkey = http.get("/v1/log/key").json()["verifier_key"]
        wait_checkpoint(http, NoteVerifier.from_vkey(vkey), SIZE)

        for path in ("/v1/log/tile/0/000", "/v1/log/tile/entries/000"):
            r = http.get(path)
            assert r.status_code == 200, r.text
            cache = r.headers["cache-control"]
            assert "immutable" in cache and "public" in cache and "max-age=31536000" in cache
        for path in ("/v1/log/tile/0/001.p/44", "/v1/log/tile/entries/001.p/44"):
            r = http.get(path)
            assert r.status_code == 200, r.text
            assert r.headers["cache-control"] == "no-cache"
        assert http.get("/v1/log/checkpoint").headers["cache-control"] == "no-cache"

        # gzip only when asked for; the bytes are the same once decoded.
        plain = http.get("/v1/log/tile/entries/000", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        with http.stream(
            "GET", "/v1/log/tile/entries/000", headers={"Accept-Encoding": "gzip"}
        ) as zipped:
            wire = b"".join(zipped.iter_raw())
            assert zipped.headers["content-encoding"] == "gzip"
            assert "Accept-Encoding" in zipped.headers["vary"]
            assert "immutable" in zipped.headers["cache-control"]
        assert gzip.decompress(wire) == plain.content
        assert len(wire) < len(plain.content)

        # One path per tile: other spellings of the same tile are not found.
        for path in ("tile/0/x000/000", "tile/0/x000/001.p/44", "tile/0/0000", "tile/0/000.p/044"):
            r = http.get("/v1/log/" + path)
            assert (r.status_code, r.json()["code"]) == (404, "unknown_tile"), path
