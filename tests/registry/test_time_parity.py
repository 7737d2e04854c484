"""Every time that crosses the registry's boundary is read by the parser the partner's audit uses.

The known case (a signed installation with a numeric ``installed_at``, accepted by the registry
and refused by the audit) is in test_declarations.py. Its siblings: the other signed times (a
cluster's ``start``/``end``, a transfer's ``transferred_at``) and the times of request bodies that
end up in log records (a verifier run's ``as_of``). Each variant is either refused with a precise
code and nothing changed, or accepted and re-derived by the audit from the log alone.
Real HTTP, real signatures, SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from attestation.dsse import Envelope, Signature, pae
from attestation.errors import FormatError
from attestation.timefmt import parse_declared_time
from attestation.transfer import Transfer, open_transfer, sign_transfer, transfer_payload
from audit.facts import check_run
from audit.replay import Replay
from registry.auth import Role
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import (
    T0,
    World,
    add_operator,
    make_world,
    ok,
    operator_key,
    signed,
)

# Times a declaration might carry that are not what the protocol writes: a Unix time (pydantic's
# lax datetime took it), no zone, a space, a lower-case zone letter, an offset for Z, a fraction.
NOT_CANONICAL = [
    1772323200,
    "2026-03-01T00:00:00",
    "2026-03-01 00:00:00Z",
    "2026-03-01T00:00:00z",
    "2026-03-01T00:00:00+00:00",
    "2026-03-01T00:00:00.5Z",
]


@pytest.fixture
def world(live_registry: LiveRegistry) -> Iterator[World]:
    now = [T0 + timedelta(days=2)]
    live_registry.context.clock = lambda: now[0]
    yield make_world(live_registry)


def _entries(world: World) -> list[tuple[int, str, bytes]]:
    out: list[tuple[int, str, bytes]] = []
    with world.registry.client() as http:
        while True:
            page = ok(
                http.get("/v1/log/entries", params={"start": len(out), "end": len(out) + 1000})
            )
            if not page["entries"]:
                return out
            out += [(e["index"], e["kind"], base64.b64decode(e["body"])) for e in page["entries"]]


def _signed_by_both(payload: bytes, *keys: Any) -> Envelope:
    envelope = Envelope(payload, "application/vnd.chipreg.declaration+json", ())
    sigs = tuple(
        Signature(k.public_key.key_id, k.sign(pae(envelope.payload_type, payload))) for k in keys
    )
    return Envelope(payload, envelope.payload_type, sigs)


@pytest.mark.parametrize("at", NOT_CANONICAL)
def test_transfer_time_is_read_as_the_audit_reads_it(world: World, at: object) -> None:
    """The audit reads transfers with open_transfer (canonical ``...Z`` only); so does ingest:
    every other spelling is 400 malformed_declaration, whatever its signatures, and changes
    nothing."""
    world.enroll("NV-1")
    _, b_token, b_facility = add_operator(world.registry, "Toronto", "CA")
    giver, receiver = world.operator_key, operator_key("Toronto")
    deal = Transfer("NV-1", world.facility_id, b_facility, T0 + timedelta(hours=1))
    doc = json.loads(transfer_payload(deal))
    doc["transferred_at"] = at
    payload = json.dumps(doc).encode()
    envelope = _signed_by_both(payload, giver, receiver)
    with pytest.raises(FormatError):  # the partner's audit
        open_transfer(envelope)
    refused(
        world.registry,
        b_token,
        "POST",
        "/v1/transfers",
        (400, "malformed_declaration"),
        json=envelope.to_dict(),
    )
    # The canonical spelling of the same instant goes through (the test's transfer is valid).
    with world.registry.client(b_token) as http:
        r = http.post("/v1/transfers", json=sign_transfer(deal, giver, receiver).to_dict())
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(
    "start",
    [1772323200, "2026-03-01T00:00:00", "2026-03-01 00:00:00Z", "2026-W09-7T00:00:00Z"],
)
def test_cluster_time_the_audit_would_reject_is_refused(world: World, start: object) -> None:
    """The sibling of the numeric ``installed_at``: a cluster's ``start`` and ``end``."""
    world.enroll("NV-1")
    world.enroll("NV-2")
    with pytest.raises(FormatError):  # what the partner's audit does with it
        parse_declared_time(start)
    for fields in ({"start": start}, {"end": start, "start": "2026-02-01T00:00:00Z"}):
        body = {
            "facility_id": world.facility_id,
            "name": "training run 7",
            "purpose": "pretraining",
            "chip_ids": ["NV-1", "NV-2"],
            "start": "2026-03-01T00:00:00Z",
            "end": "2026-04-01T00:00:00Z",
            **fields,
        }
        problem = refused(
            world.registry,
            world.operator_token,
            "POST",
            "/v1/clusters",
            (422, "invalid_request"),
            json=signed("cluster", body, world.operator_key),
        )
        assert next(iter(fields)) in json.dumps(problem)


@pytest.mark.parametrize(
    "as_of",
    ["2026-03-02T00:00:00.5Z", "2026-03-02t01:00:00+01:00", "2026-03-02T00:00:00z"],
)
def test_verifier_run_time_the_registry_takes_the_audit_re_derives(
    world: World, as_of: str
) -> None:
    """A request time in any spelling the API takes is logged canonically (``verifier_run``
    record) and the partner's audit re-derives the run from the log."""
    world.enroll("NV-1")
    with world.registry.client(world.registry.token(Role.INSPECTOR)) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": as_of}))
    replay = Replay()
    for index, kind, body in _entries(world):
        replay.feed(index, kind, body)
    assert replay.problems == []
    [run] = replay.runs
    assert run.record.as_of == parse_declared_time(as_of)
    check = check_run(replay, run)
    assert check.ok, check


@pytest.mark.parametrize("as_of", [1772409600, "2026-03-02T00:00:00", "2026-03-02 00:00:00Z"])
def test_verifier_run_time_that_is_no_rfc3339_time_is_refused(world: World, as_of: object) -> None:
    refused(
        world.registry,
        world.registry.token(Role.INSPECTOR),
        "POST",
        "/v1/verifier/runs",
        (422, "invalid_request"),
        json={"policy": "demo", "as_of": as_of},
    )


@pytest.mark.parametrize("effective_from", [1772323200, "2026-03-01T00:00:00", "2026-03-01 00:00Z"])
def test_request_field_time_that_is_no_rfc3339_time_is_refused(
    world: World, effective_from: object
) -> None:
    """A request body's time (here a transfer condition's ``effective_from``, logged as a
    ``transfer_condition`` record) is refused before anything is stored."""
    world.enroll("NV-1")
    refused(
        world.registry,
        world.registry.admin_token,
        "POST",
        "/v1/chips/NV-1/transfer-conditions",
        (422, "invalid_request"),
        json={"allowed_countries": ["US"], "effective_from": effective_from},
    )


@pytest.mark.parametrize(
    "effective_from", ["2026-03-01T00:00:00.25Z", "2026-03-01t02:00:00+02:00", "2026-03-01T00:00Z"]
)
def test_request_field_time_the_registry_takes_the_audit_reads(
    world: World, effective_from: str
) -> None:
    world.enroll("NV-1")
    try:
        expected = parse_declared_time(effective_from)
    except FormatError:
        expected = None  # not RFC 3339: must be refused
    with world.registry.client(world.registry.admin_token) as http:
        r = http.post(
            "/v1/chips/NV-1/transfer-conditions",
            json={"allowed_countries": ["US"], "effective_from": effective_from},
        )
    if expected is None:
        assert (r.status_code, r.json()["code"]) == (422, "invalid_request"), r.text
        return
    assert r.status_code == 201, r.text
    replay = Replay()
    for index, kind, body in _entries(world):
        replay.feed(index, kind, body)
    assert replay.problems == []
    [condition] = replay.conditions
    assert (
        condition.record.effective_from
        == expected
        == parse_declared_time(r.json()["effective_from"])
    )
