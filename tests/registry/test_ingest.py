"""Report ingest over real HTTP, on SQLite and PostgreSQL: every acceptance and rejection path."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from attestation.dsse import Envelope, Signature
from registry.db.models import Chip, LogEntry, RejectionCount, Report
from tests.conftest import LiveRegistry
from tests.registry.factories import SimChip, World, add_operator, key, link, make_world, ok


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    w.enroll("NV-H100-0001")
    w.enroll("NV-H100-0002")
    return w


def counts(world: World) -> tuple[int, int]:
    with world.registry.context.sessions() as s:
        reports = s.scalar(select(func.count()).select_from(Report))
        entries = s.scalar(
            select(func.count()).select_from(LogEntry).where(LogEntry.kind == "usage_report")
        )
    return int(reports or 0), int(entries or 0)


def rejection_count(world: World, code: str) -> int:
    with world.registry.context.sessions() as s:
        n = s.scalar(select(func.sum(RejectionCount.count)).where(RejectionCount.code == code))
    return int(n or 0)


def single(world: World, envelope: Envelope) -> tuple[int, dict]:
    with world.registry.client(world.operator_token) as http:
        r = http.post(
            "/v1/reports", content=envelope.to_json(), headers={"Content-Type": "application/json"}
        )
    return r.status_code, r.json()


def flip_payload_byte(envelope: Envelope) -> Envelope:
    """Change one byte of the signed statement so that it still parses (0.5 -> 0.4)."""
    payload = bytearray(envelope.payload)
    i = payload.index(b'"utilization":0.5') + len(b'"utilization":0.')
    payload[i] = ord("4")
    return Envelope(bytes(payload), envelope.payload_type, envelope.signatures)


def flip_signature_byte(envelope: Envelope) -> Envelope:
    sig = bytearray(envelope.signatures[0].sig)
    sig[10] ^= 0x01
    return Envelope(
        envelope.payload,
        envelope.payload_type,
        (Signature(envelope.signatures[0].keyid, bytes(sig)),),
    )


def test_accepted_report_is_stored_logged_and_chained(world: World) -> None:
    chip = world.chips["NV-H100-0001"]
    first, second = chip.report(peers=(link("NV-H100-0002"),)), chip.report()
    with world.registry.context.sessions() as s:
        base = s.scalar(select(func.count()).select_from(LogEntry)) or 0  # the declarations
    body = ok(world.post([first, second]))
    assert body["accepted"] == 2 and body["rejected"] == 0
    assert [r["seq"] for r in body["results"]] == [1, 2]
    assert [r["log_index"] for r in body["results"]] == [base, base + 1]
    with world.registry.context.sessions() as s:
        stored = s.scalars(select(Report).order_by(Report.seq)).all()
        head = s.get(Chip, "NV-H100-0001")
        leaf = s.get(LogEntry, base)
    # The registry keeps the exact bytes it verified, once, as the log entry it commits to.
    assert stored[0].log_index == base
    assert leaf is not None and leaf.body == first.to_json()
    assert json.loads(stored[0].links_json) == [["NV-H100-0002", "nvlink", 10**10, 10**10]]
    assert (
        head is not None and head.last_seq == 2 and head.last_digest == body["results"][1]["digest"]
    )


def test_flipped_byte_replay_and_unknown_chip_get_distinct_codes(world: World) -> None:
    chip = world.chips["NV-H100-0001"]
    good = chip.report()
    assert single(world, good)[0] == 201
    before = counts(world)

    other = world.chips["NV-H100-0002"].report()
    for tampered in (flip_payload_byte(other), flip_signature_byte(other)):
        status, problem = single(world, tampered)
        assert (status, problem["code"]) == (422, "bad_signature")

    status, problem = single(world, good)
    assert (status, problem["code"]) == (409, "replayed_report")

    ghost = SimChip("NV-H100-9999", key("ghost")).report()
    status, problem = single(world, ghost)
    assert (status, problem["code"]) == (404, "unknown_chip")
    assert problem["type"].endswith("/unknown_chip")

    assert counts(world) == before, "rejected reports must be stored nowhere"
    assert rejection_count(world, "bad_signature") == 2
    assert rejection_count(world, "replayed_report") == 1
    assert rejection_count(world, "unknown_chip") == 1


def test_chain_violations(world: World) -> None:
    chip = world.chips["NV-H100-0001"]
    r1 = chip.report()
    r1_end = chip.window_end
    r2, r3 = chip.report(), chip.report()
    ok(world.post([r1]))

    results = ok(world.post([r3]))["results"]
    assert results[0]["code"] == "sequence_gap" and results[0]["http_status"] == 409

    # Same seq 1, different content: a second report claiming an accepted slot.
    clone = SimChip(chip.chip_id, chip.key)
    clash = clone.report(utilization=0.9)
    assert ok(world.post([clash]))["results"][0]["code"] == "sequence_reused"

    # Right seq, wrong previous digest.
    forger = SimChip(chip.chip_id, chip.key, seq=1, prev="ab" * 32, window_end=r1_end)
    assert ok(world.post([forger.report()]))["results"][0]["code"] == "broken_hash_chain"

    # The genuine next report is still accepted afterwards.
    assert ok(world.post([r2]))["results"][0]["status"] == "accepted"


def test_window_must_move_forward(world: World) -> None:
    chip = world.chips["NV-H100-0001"]
    ok(world.post([chip.report()]))
    chip.window_end -= timedelta(minutes=5)
    result = ok(world.post([chip.report()]))["results"][0]
    assert result["code"] == "window_out_of_order"


def test_mixed_batch_accepts_the_good_and_counts_the_bad(world: World) -> None:
    a, b = world.chips["NV-H100-0001"], world.chips["NV-H100-0002"]
    a1 = a.report()
    tampered = flip_signature_byte(b.report())
    batch = [a1, tampered, a1, a.report()]
    body = ok(world.post(batch))
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
    ]
    assert [r.get("code") for r in body["results"]] == [
        None,
        "bad_signature",
        "replayed_report",
        None,
    ]
    assert counts(world) == (2, 2)


def test_malformed_envelopes_are_rejected_per_report(world: World) -> None:
    good = world.chips["NV-H100-0001"].report()
    doc = json.loads(good.to_json())
    not_json_payload = dict(doc, payload=base64.b64encode(b"not json").decode())
    bad_base64 = dict(doc, payload="***")
    extra_field = dict(doc, extra=1)
    two_sigs = dict(doc, signatures=doc["signatures"] * 2)
    wrong_type = dict(doc, payloadType="text/plain")
    body = json.dumps(
        {"reports": [not_json_payload, bad_base64, extra_field, two_sigs, wrong_type, 7]}
    )
    with world.registry.client(world.operator_token) as http:
        r = ok(
            http.post(
                "/v1/reports/batch", content=body, headers={"Content-Type": "application/json"}
            )
        )
    assert r["accepted"] == 0
    assert {x["code"] for x in r["results"]} == {"malformed_report"}
    assert all(x["http_status"] == 400 for x in r["results"])
    assert counts(world) == (0, 0)


def test_signature_by_another_chip_key_is_rejected(world: World) -> None:
    a, b = world.chips["NV-H100-0001"], world.chips["NV-H100-0002"]
    envelope = a.report()
    forged_sig = b.key.sign(b"anything")
    forged = Envelope(
        envelope.payload,
        envelope.payload_type,
        (Signature(envelope.signatures[0].keyid, forged_sig),),
    )
    assert ok(world.post([forged]))["results"][0]["code"] == "bad_signature"


def test_operator_may_only_ingest_for_its_own_chips(world: World) -> None:
    _, other_token, _ = add_operator(world.registry, "Other Operator", "FI")
    result = ok(world.post([world.chips["NV-H100-0001"].report()], token=other_token))["results"][0]
    assert (result["code"], result["http_status"]) == ("forbidden", 403)

    world.enroll("NV-H100-0003", install=False)
    result = ok(world.post([world.chips["NV-H100-0003"].report()]))["results"][0]
    assert result["code"] == "chip_not_installed"

    with world.registry.client(world.vendor_token) as http:
        r = http.post("/v1/reports/batch", json={"reports": []})
    assert r.status_code == 403 and r.json()["code"] == "role_not_allowed"
    assert counts(world) == (0, 0)
