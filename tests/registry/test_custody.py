"""A chip's end of service (decommission, revocation), operator key rotation and custody
transfers between operators, over real HTTP with real keys; and the partner's replay of the log
re-deriving the same custody and findings (docs/PROTOCOL.md 6.1-6.3)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from attestation.dsse import Envelope, verify_envelope
from attestation.errors import SignatureError
from attestation.keys import PrivateKey
from attestation.records import InstallationDeclaration
from attestation.transfer import Transfer, countersign, sign_transfer
from audit.facts import check_run
from audit.replay import Replay
from registry.auth import Role
from registry.cli.main import main
from registry.services.accounts import AccountService
from tests.registry.factories import (
    T0,
    World,
    add_operator,
    key,
    make_world,
    ok,
    operator_key,
    signed,
)
from tests.registry.test_detection import rejected_records

AS_OF = T0 + timedelta(days=1)
MAR1 = "2026-03-01T00:00:00Z"


@pytest.fixture
def world(live_registry: Any) -> Iterator[World]:
    now = [T0]
    live_registry.context.clock = lambda: now[0]
    w = make_world(live_registry)
    w.now = now  # type: ignore[attr-defined]
    yield w


def set_now(world: World, at: datetime) -> None:
    world.now[0] = at  # type: ignore[attr-defined]


def log_entries(world: World) -> list[tuple[int, str, bytes]]:
    """Every entry, fetched from the public log API."""
    out = []
    with world.registry.client() as http:
        while True:
            page = ok(
                http.get("/v1/log/entries", params={"start": len(out), "end": len(out) + 1000})
            )
            if not page["entries"]:
                return out
            out += [(e["index"], e["kind"], base64.b64decode(e["body"])) for e in page["entries"]]


def replay_log(world: World, entries: list[tuple[int, str, bytes]] | None = None) -> Replay:
    """The partner's replay of every entry (as served, or ``entries``)."""
    replay = Replay()
    for index, kind, body in log_entries(world) if entries is None else entries:
        replay.feed(index, kind, body)
    return replay


def verify(world: World) -> list[dict[str, Any]]:
    with world.registry.client(world.registry.token(Role.INSPECTOR)) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()}))
        return ok(http.get("/v1/findings", params={"kind": "chip_silent"}))["findings"]


def audit_matches(world: World) -> Replay:
    replay = replay_log(world)
    assert replay.problems == []
    assert replay.runs
    for run in replay.runs:
        check = check_run(replay, run)
        assert check.ok, check
    return replay


def status(
    world: World, token: str, chip_id: str, action: str, reason: str = "end of life"
) -> httpx.Response:
    with world.registry.client(token) as http:
        return http.post(f"/v1/chips/{chip_id}/{action}", json={"reason": reason})


def test_decommission_and_revocation(world: World) -> None:
    reg = world.registry
    a, b = world.enroll("NV-1"), world.enroll("NV-2")
    world.enroll("NV-3")
    world.enroll("NV-4")
    # The registry's clock past these windows: a window may not end in its future.
    set_now(world, T0 + timedelta(hours=1))
    ok(world.post([a.report(), a.report(), b.report()]))
    _, other_token, _ = add_operator(reg, "Toronto", "CA")

    # Role rules: the holding operator or admin decommissions; the vendor or admin revokes.
    for token, action, code in (
        (other_token, "decommission", "not_your_chip"),
        (world.vendor_token, "decommission", "role_not_allowed"),
        (world.operator_token, "revoke", "role_not_allowed"),
        (reg.token(Role.INSPECTOR), "revoke", "role_not_allowed"),
    ):
        r = status(world, token, "NV-1", action)
        assert (r.status_code, r.json()["code"]) == (403, code), (action, r.text)
    r = status(world, world.operator_token, "NV-9", "decommission")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_chip")
    # The role is checked before the chip is looked up: no probing for chip ids.
    r = status(world, world.vendor_token, "NV-9", "decommission")
    assert (r.status_code, r.json()["code"]) == (403, "role_not_allowed")
    r = status(world, world.operator_token, "NV-1", "decommission", "")
    assert r.status_code == 422

    done = ok(status(world, world.operator_token, "NV-1", "decommission", "rack retired"))
    assert done["decommissioned_at"] == "2026-03-01T01:00:00Z"
    assert done["decommission_reason"] == "rack retired"
    r = status(world, reg.admin_token, "NV-1", "decommission")
    assert (r.status_code, r.json()["code"]) == (409, "chip_decommissioned")
    ok(status(world, reg.admin_token, "NV-4", "decommission", "dark since February"))
    revoked = ok(status(world, world.vendor_token, "NV-2", "revoke", "key extracted"))
    assert revoked["revoked_at"] == "2026-03-01T01:00:00Z"
    r = status(world, reg.admin_token, "NV-2", "revoke")
    assert (r.status_code, r.json()["code"]) == (409, "chip_revoked")
    r = status(world, world.operator_token, "NV-2", "decommission")
    assert (r.status_code, r.json()["code"]) == (409, "chip_revoked")

    # The decommissioned chip's backlog (windows ending by 01:00) is taken; nothing later.
    set_now(world, T0 + timedelta(hours=2))
    results = ok(world.post([a.report(), a.report(), a.report()]))["results"]
    assert [x["status"] for x in results] == ["accepted", "accepted", "rejected"]
    assert (results[2]["http_status"], results[2]["code"]) == (403, "chip_decommissioned")
    # Nothing a revoked chip signs is taken, whatever its window.
    results = ok(world.post([b.report()]))["results"]
    assert (results[0]["http_status"], results[0]["code"]) == (403, "chip_revoked")
    # No new custody for a chip out of service.
    with reg.client(world.operator_token) as http:
        r = http.post(
            "/v1/installations",
            json=signed(
                "installation",
                {
                    "chip_id": "NV-1",
                    "facility_id": world.facility_id,
                    "installed_at": "2026-03-01T02:00:00Z",
                },
                world.operator_key,
            ),
        )
    assert (r.status_code, r.json()["code"]) == (409, "chip_decommissioned")

    # Silence: NV-3 is dark; NV-1 and NV-2 stopped with their service, so they are not silent;
    # NV-4 was silent long before its decommission, which does not hide that.
    set_now(world, AS_OF)
    silent = {f["subject_id"]: f for f in verify(world)}
    assert set(silent) == {"NV-3", "NV-4"}
    assert silent["NV-4"]["window_end"].startswith("2026-03-01T01:00:00")
    with reg.client(reg.admin_token) as http:
        chip = ok(http.get("/v1/chips/NV-1"))["chip"]
    assert chip["decommission_reason"] == "rack retired"

    # The partner's replay re-derives the same (chip_status records in the log).
    replay = audit_matches(world)
    assert [(s.record.chip_id, s.record.status) for s in replay.statuses] == [
        ("NV-1", "decommissioned"),
        ("NV-4", "decommissioned"),
        ("NV-2", "revoked"),
    ]


def test_admin_cli_decommissions_and_revokes(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = world.registry.context.settings
    monkeypatch.setenv("CHIPREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHIPREG_LOG_KEY_FILE", str(settings.log_key_file))
    world.enroll("NV-5")
    world.enroll("NV-6")
    assert main(["admin", "revoke-chip", "--chip-id", "NV-5", "--reason", "key leaked"]) == 0
    assert json.loads(capsys.readouterr().out)["chip_id"] == "NV-5"
    assert main(["admin", "revoke-chip", "--chip-id", "NV-5", "--reason", "again"]) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "chip_revoked"
    argv = ["admin", "decommission-chip", "--chip-id", "NV-6", "--reason", "end of life"]
    assert main(argv) == 0
    capsys.readouterr()
    with world.registry.client(world.registry.admin_token) as http:
        assert ok(http.get("/v1/chips/NV-5"))["chip"]["revocation_reason"] == "key leaked"
        assert ok(http.get("/v1/chips/NV-6"))["chip"]["decommission_reason"] == "end of life"
    assert [s.record.status for s in replay_log(world).statuses] == ["revoked", "decommissioned"]


# -- custody transfers ------------------------------------------------------------------------


def post_transfer(world: World, token: str, envelope: Envelope | dict[str, Any]) -> httpx.Response:
    body = envelope.to_dict() if isinstance(envelope, Envelope) else envelope
    with world.registry.client(token) as http:
        return http.post("/v1/transfers", json=body)


def refused(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


def test_transfer_signed_by_both_operators_moves_custody(world: World) -> None:
    reg = world.registry
    giver_key = world.operator_key
    b_id, b_token, b_facility = add_operator(reg, "Toronto", "CA")
    _, c_token, _ = add_operator(reg, "Bystander", "FR")
    receiver_key = operator_key("Toronto")
    chip = world.enroll("NV-1")
    world.enroll("NV-2")
    set_now(world, T0 + timedelta(hours=2))
    ok(world.post([chip.report()]))
    at = T0 + timedelta(hours=1)
    deal = Transfer("NV-1", world.facility_id, b_facility, at)

    # Only the giver's signature: the receiver has not agreed.
    offer = sign_transfer(deal, giver_key)
    refused(post_transfer(world, b_token, offer), 422, "two_signatures_required")
    # Two signatures, but the second by a key that is not the receiver's.
    refused(
        post_transfer(world, b_token, countersign(offer, key("op:Mallory"))),
        422,
        "bad_signature",
    )
    # The receiver twice, the giver never.
    twice = countersign(sign_transfer(deal, receiver_key), receiver_key)
    refused(post_transfer(world, b_token, twice), 422, "bad_signature")
    # Both signatures, but the chip is not held by the giving side (NV-2 is at Abilene).
    wrong_way = Transfer("NV-2", b_facility, world.facility_id, at)
    refused(
        post_transfer(world, b_token, sign_transfer(wrong_way, receiver_key, giver_key)),
        409,
        "chip_not_at_facility",
    )
    # Not in the future, not within one operator, not posted by a third party.
    future = Transfer("NV-1", world.facility_id, b_facility, T0 + timedelta(hours=3))
    refused(
        post_transfer(world, b_token, sign_transfer(future, giver_key, receiver_key)),
        422,
        "transfer_in_future",
    )
    # A facility id past the INTEGER columns (the payload allows 64 bits): refused like any
    # id out of range, not a failed query (500 on PostgreSQL before).
    for far in (2**31, 2**63 - 1):
        beyond = Transfer("NV-1", world.facility_id, far, at)
        refused(
            post_transfer(world, b_token, sign_transfer(beyond, giver_key, receiver_key)),
            422,
            "invalid_request",
        )
    agreed = sign_transfer(deal, giver_key, receiver_key)
    refused(post_transfer(world, c_token, agreed), 403, "not_your_operator")
    # A payload that is not exactly a transfer.
    odd = Envelope(
        agreed.payload.replace(b'"type"', b'"extra":1,"type"'),
        agreed.payload_type,
        agreed.signatures,
    )
    refused(post_transfer(world, b_token, odd), 400, "malformed_declaration")
    # No custody change on one operator's word, not even through an admin.
    with reg.client(reg.admin_token) as http:
        r = http.post(
            "/v1/installations",
            json=signed(
                "installation",
                {
                    "chip_id": "NV-1",
                    "facility_id": b_facility,
                    "installed_at": "2026-03-01T01:00:00Z",
                },
                receiver_key,
            ),
        )
    refused(r, 403, "chip_in_other_custody")

    # The giver delivers the windows it holds the chip in, up to the transfer at 01:00.
    backlog = ok(world.post([chip.report(), chip.report(), chip.report()]))["results"]
    assert [x["status"] for x in backlog] == ["accepted"] * 3
    moved = ok(post_transfer(world, b_token, agreed), 201)
    assert (moved["facility_id"], moved["declared_by_operator_id"]) == (b_facility, b_id)
    assert moved["installed_at"].startswith("2026-03-01T01:00:00")
    # The same agreement again is a replay, whoever sends it.
    refused(post_transfer(world, world.operator_token, agreed), 409, "replayed_transfer")
    with reg.client(reg.admin_token) as http:
        detail = ok(http.get("/v1/chips/NV-1"))
    assert detail["facility"]["id"] == b_facility
    assert [i["facility_id"] for i in detail["custody"]] == [world.facility_id, b_facility]

    # Reports of windows after the transfer come from the receiver only.
    late = chip.report()
    results = ok(world.post([late]))["results"]
    assert results[0]["code"] == "forbidden"
    assert ok(world.post([late], token=b_token))["results"][0]["status"] == "accepted"

    # And back again, by a second transfer; the first one replayed later is still refused.
    set_now(world, T0 + timedelta(hours=4))
    back = Transfer("NV-1", b_facility, world.facility_id, T0 + timedelta(hours=3))
    ok(
        post_transfer(world, world.operator_token, sign_transfer(back, receiver_key, giver_key)),
        201,
    )
    refused(post_transfer(world, b_token, agreed), 409, "replayed_transfer")

    # The partner's replay verifies both signatures of each transfer and ends with the
    # registry's custody; the verifier's findings re-derive from it.
    set_now(world, AS_OF)
    verify(world)
    replay = audit_matches(world)
    assert replay.counts["transfer"] == 2
    assert replay.location["NV-1"] == world.facility_id
    assert replay.custodian["NV-1"] == world.operator_id
    # A registry that logged a transfer with the giver's signature only, or custody passing by a
    # plain installation, fails the replay.
    entries = log_entries(world)
    first = next(i for i, (_, kind, _) in enumerate(entries) if kind == "transfer")
    index, kind, body = entries[first]
    logged = Envelope.from_json(body)
    one_sided = Envelope(logged.payload, logged.payload_type, logged.signatures[:1])
    forged = [*entries[:first], (index, kind, one_sided.to_json()), *entries[first + 1 :]]
    problems = replay_log(world, forged).problems
    assert (problems[0].index, problems[0].check) == (index, "transfer")
    assert "exactly 2 signatures" in problems[0].detail
    fields = {"chip_id": "NV-1", "facility_id": b_facility, "installed_at": "2026-03-01T01:00:00Z"}
    plain = Envelope.from_dict(signed("installation", fields, receiver_key)).to_json()
    forged = [*entries[:first], (index, "installation", plain), *entries[first + 1 :]]
    problems = replay_log(world, forged).problems
    assert problems and problems[0].check == "installation", problems
    assert "without a transfer" in problems[0].detail

    with reg.client(reg.admin_token) as http:
        custody = ok(http.get("/v1/chips/NV-1"))["custody"]
    assert [
        (d.facility_id, d.installed_at) for d in replay.installations if d.chip_id == "NV-1"
    ] == [(c["facility_id"], datetime.fromisoformat(c["installed_at"])) for c in custody]


# -- operator key rotation ---------------------------------------------------------------------


def install_body(world: World, chip_id: str, at: str, signer: PrivateKey) -> dict[str, Any]:
    fields = {"chip_id": chip_id, "facility_id": world.facility_id, "installed_at": at}
    return signed("installation", fields, signer)


def test_operator_key_rotation_keeps_earlier_declarations_verifiable(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = world.registry
    old_key, new_key = world.operator_key, key("op:Abilene Compute:2026")
    _, b_token, b_facility = add_operator(reg, "Toronto", "CA")
    world.enroll("NV-1")  # declared with the old key
    world.enroll("NV-2", install=False)
    path = f"/v1/operators/{world.operator_id}/keys"
    body = {"public_key": new_key.public_key.to_b64(), "reason": "annual rotation"}

    with reg.client(world.operator_token) as http:
        refused(http.post(path, json=body), 403, "role_not_allowed")
    with reg.client(reg.admin_token) as http:
        refused(http.post(path, json={**body, "public_key": "AAAA"}), 422, "bad_public_key")
        refused(http.post("/v1/operators/999/keys", json=body), 404, "unknown_operator")
        rotated = ok(http.post(path, json=body), 201)
        refused(http.post(path, json=body), 409, "key_reused")
        back = {**body, "public_key": old_key.public_key.to_b64()}
        refused(http.post(path, json=back), 409, "key_reused")
        assert ok(http.get(f"/v1/operators/{world.operator_id}/keys"))[-1] == rotated
    assert rotated["public_key"] == new_key.public_key.to_b64()

    # New declarations need the new key; the old one no longer signs for the operator.
    with reg.client(world.operator_token) as http:
        r = http.post("/v1/installations", json=install_body(world, "NV-2", MAR1, old_key))
        refused(r, 422, "bad_signature")
        ok(http.post("/v1/installations", json=install_body(world, "NV-2", MAR1, new_key)), 201)
        history = ok(http.get(path))
    assert [(k["reason"], k["public_key"]) for k in history] == [
        ("registered", old_key.public_key.to_b64()),
        ("annual rotation", new_key.public_key.to_b64()),
    ]
    with reg.client(b_token) as http:
        refused(http.get(path), 403, "not_your_operator")
    # Transfers too: the giver's old key does not count any more.
    deal = Transfer("NV-1", world.facility_id, b_facility, T0 + timedelta(hours=1))
    set_now(world, T0 + timedelta(hours=2))
    stale = sign_transfer(deal, old_key, operator_key("Toronto"))
    refused(post_transfer(world, b_token, stale), 422, "bad_signature")

    # The CLI rotates the same way.
    settings = reg.context.settings
    monkeypatch.setenv("CHIPREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CHIPREG_LOG_KEY_FILE", str(settings.log_key_file))
    third = key("op:Abilene Compute:2027")
    argv = ["admin", "rotate-operator-key", "--operator-id", str(world.operator_id)]
    argv += ["--public-key", third.public_key.to_b64(), "--reason", "key ceremony"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["public_key"] == third.public_key.to_b64()
    assert main(argv) == 2
    assert json.loads(capsys.readouterr().out)["error"] == "key_reused"

    # Every logged installation verifies under the key in force at its log position: by the
    # registry (its key history) and by the partner's replay; the old one not under the new key.
    set_now(world, AS_OF)
    verify(world)
    replay = audit_matches(world)
    with reg.client() as http:
        entries = ok(http.get("/v1/log/entries", params={"start": 0, "end": 1000}))["entries"]
    declarations = [
        (e["index"], Envelope.from_json(base64.b64decode(e["body"])))
        for e in entries
        if e["kind"] == "installation"
    ]
    with reg.context.sessions() as session:
        accounts = AccountService(session, reg.context.clock)
        signers = []
        for index, envelope in declarations:
            if InstallationDeclaration.from_envelope(envelope).facility_id != world.facility_id:
                continue
            registry_key = accounts.operator_key_at(world.operator_id, index)
            assert registry_key == replay.operator_key_at(world.operator_id, index)
            verify_envelope(envelope, registry_key)
            signers.append(registry_key)
    assert signers == [old_key.public_key, new_key.public_key]
    with pytest.raises(SignatureError):
        verify_envelope(declarations[0][1], new_key.public_key)
    assert [k for _, k in replay.operator_keys[world.operator_id]] == [
        old_key.public_key,
        new_key.public_key,
        third.public_key,
    ]


def test_a_non_custodian_learns_nothing_of_the_chips_status(world: World) -> None:
    """Custody is checked before revocation and decommission: another operator posting a
    correctly signed report gets one answer whatever the chip's status (issue 9 review). Evidence
    stays as it was: the in-service chip's report is kept and logged, the others are not."""
    chips = [world.enroll(name) for name in ("NV-1", "NV-2", "NV-3")]
    set_now(world, T0 + timedelta(hours=1))
    ok(world.post([chip.report() for chip in chips]))
    ok(status(world, world.operator_token, "NV-2", "decommission", "rack retired"))
    ok(status(world, world.vendor_token, "NV-3", "revoke", "key extracted"))
    set_now(world, T0 + timedelta(hours=2))
    _, other_token, _ = add_operator(world.registry, "Toronto", "CA")

    for chip in chips:  # windows after the decommission (its backlog would still be taken)
        chip.window_end = T0 + timedelta(hours=1)
    envelopes = [chip.report() for chip in chips]
    results = ok(world.post(envelopes, other_token))["results"]
    answers = {
        (r["http_status"], r["code"], r["detail"].replace(r["chip_id"], "<chip>")) for r in results
    }
    assert answers == {(403, "forbidden", "chip '<chip>' is not at one of your facilities")}
    kept = [(base64.b64decode(r["envelope"]), r["outcome"]) for r in rejected_records(world)]
    assert kept == [(envelopes[0].to_json(), "forbidden")]

    # The custodian is still told why: the chips' next reports, from their own operator.
    results = ok(world.post([chip.report() for chip in chips[1:]]))["results"]
    assert [r["code"] for r in results] == ["chip_decommissioned", "chip_revoked"]
