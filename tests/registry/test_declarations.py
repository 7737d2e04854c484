"""Declarations over real HTTP, on SQLite and PostgreSQL: facilities, chip enrollment,
installations (chain of custody) and declared clusters. Every refusal is checked for its status,
its stable ``code``, and that it wrote nothing."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey
from registry.auth import Role
from tests.registry.checks import refused
from tests.registry.factories import (
    VALID_FROM,
    VALID_TO,
    World,
    add_operator,
    key,
    make_world,
    ok,
    operator_key,
    signed,
)

FEB = "2026-02-01T00:00:00Z"
MAR = "2026-03-01T00:00:00Z"


@pytest.fixture
def world(live_registry: Any) -> World:
    return make_world(live_registry)


def facility_body(
    operator_id: int, name: str = "Abilene site 2", **overrides: Any
) -> dict[str, Any]:
    body = {
        "operator_id": operator_id,
        "name": name,
        "country": "US",
        "latitude": 32.45,
        "longitude": -99.73,
        "declared_power_kw": 5_000,
    }
    return {**body, **overrides}


def chip_body(vendor_id: int, certificate: bytes) -> dict[str, Any]:
    return {
        "vendor_id": vendor_id,
        "certificate_pem": certificate.decode(),
        "peak_tflops_bf16": 989.0,
        "tdp_watts": 700.0,
    }


def certificate(
    world: World,
    chip_id: str,
    chip_key: PrivateKey | None = None,
    *,
    root: tuple[bytes, PrivateKey] | None = None,
    not_before: datetime = VALID_FROM,
    not_after: datetime = VALID_TO,
) -> bytes:
    root_pem, root_key = root or (world.root_pem, world.root_key)
    return issue_chip_certificate(
        root_pem=root_pem,
        root_key=root_key,
        chip_id=chip_id,
        model="H100-SXM5-80GB",
        chip_key=(chip_key or key(f"chip:{chip_id}")).public_key,
        not_before=not_before,
        not_after=not_after,
    )


def installation(
    chip_id: str, facility_id: int, at: str = FEB, signer: str = "Abilene Compute"
) -> dict[str, Any]:
    """An installation declaration signed by the operator ``signer``'s key."""
    fields = {"chip_id": chip_id, "facility_id": facility_id, "installed_at": at}
    return signed("installation", fields, operator_key(signer))


def post(world: World, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    with world.registry.client(token) as http:
        return ok(http.post(path, json=body), 201)


def chip_detail(world: World, chip_id: str) -> dict[str, Any]:
    with world.registry.client(world.registry.admin_token) as http:
        return ok(http.get(f"/v1/chips/{chip_id}"))


def facility_ids(world: World) -> list[int]:
    with world.registry.client(world.registry.admin_token) as http:
        return [f["id"] for f in ok(http.get("/v1/facilities"))]


# -- facilities ----------------------------------------------------------------------------


def test_operator_declares_facilities_for_itself(world: World) -> None:
    created = post(world, world.operator_token, "/v1/facilities", facility_body(world.operator_id))
    assert (created["operator_id"], created["name"], created["pue"]) == (
        world.operator_id,
        "Abilene site 2",
        1.3,
    )
    by_admin = post(
        world,
        world.registry.admin_token,
        "/v1/facilities",
        facility_body(world.operator_id, "site 3"),
    )
    assert facility_ids(world) == [world.facility_id, created["id"], by_admin["id"]]


def test_facility_for_another_operator_is_forbidden(world: World) -> None:
    other_id, _, other_facility = add_operator(world.registry, "Other Compute")
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (403, "not_your_operator"),
        json=facility_body(other_id),
    )
    refused(
        world.registry,
        world.registry.admin_token,
        "POST",
        "/v1/facilities",
        (404, "unknown_operator"),
        json=facility_body(other_id + 1000),
    )
    assert facility_ids(world) == [world.facility_id, other_facility]


@pytest.mark.parametrize(
    "override",
    [
        {"latitude": 91},
        {"latitude": -90.5},
        {"longitude": 180.01},
        {"declared_power_kw": 0},
        {"pue": 0.9},
        {"country": "usa"},
        {"name": ""},
        {"surprise": True},
    ],
)
def test_facility_with_invalid_fields_is_refused(world: World, override: dict[str, Any]) -> None:
    problem = refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (422, "invalid_request"),
        json=facility_body(world.operator_id, **override),
    )
    assert problem["errors"][0]["loc"] == ["body", *override]
    assert facility_ids(world) == [world.facility_id]


def test_duplicate_facility_name_is_a_conflict(world: World) -> None:
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (409, "already_exists"),
        json=facility_body(world.operator_id, "Abilene Compute site 1"),
    )
    # Names are unique per operator, not globally.
    other_id, other_token, _ = add_operator(world.registry, "Other Compute")
    post(world, other_token, "/v1/facilities", facility_body(other_id, "Abilene Compute site 1"))


# -- chips ---------------------------------------------------------------------------------


def test_vendor_enrolls_its_chip(world: World) -> None:
    chip_key = key("chip:NV-0001")
    created = post(
        world,
        world.vendor_token,
        "/v1/chips",
        chip_body(world.vendor_id, certificate(world, "NV-0001")),
    )
    assert created["chip_id"] == "NV-0001"
    assert created["model"] == "H100-SXM5-80GB"
    assert created["key_id"] == chip_key.public_key.key_id
    assert (created["last_seq"], created["last_window_end"]) == (0, None)
    detail = chip_detail(world, "NV-0001")
    assert (detail["vendor"], detail["current_installation"], detail["custody"]) == (
        "NVIDIA",
        None,
        [],
    )


def test_another_vendors_token_may_not_enroll(world: World) -> None:
    amd_key = key("vendor:AMD")
    amd_root = create_vendor_root("AMD", amd_key, not_before=VALID_FROM, not_after=VALID_TO)
    amd = post(
        world,
        world.registry.admin_token,
        "/v1/vendors",
        {"name": "AMD", "root_certificate_pem": amd_root.decode()},
    )
    amd_token = world.registry.token(Role.VENDOR, vendor_id=amd["id"])
    body = chip_body(world.vendor_id, certificate(world, "NV-0001"))
    refused(world.registry, amd_token, "POST", "/v1/chips", (403, "not_your_vendor"), json=body)
    # A chip certified by AMD's root does not become NVIDIA's by naming NVIDIA's vendor id.
    amd_chip = certificate(world, "AMD-0001", root=(amd_root, amd_key))
    refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (422, "bad_certificate"),
        json=chip_body(world.vendor_id, amd_chip),
    )
    refused(
        world.registry,
        world.registry.admin_token,
        "POST",
        "/v1/chips",
        (404, "unknown_vendor"),
        json=chip_body(amd["id"] + 1000, amd_chip),
    )


def test_certificate_from_another_root_is_refused(world: World) -> None:
    # Same vendor name, so the issuer name matches; only the signature tells them apart.
    impostor_key = key("impostor NVIDIA root")
    impostor_root = create_vendor_root(
        "NVIDIA", impostor_key, not_before=VALID_FROM, not_after=VALID_TO
    )
    forged = certificate(world, "NV-0001", root=(impostor_root, impostor_key))
    problem = refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (422, "bad_certificate"),
        json=chip_body(world.vendor_id, forged),
    )
    assert "not signed by the vendor root" in problem["detail"]


def test_certificate_outside_its_validity_is_refused(world: World) -> None:
    now = datetime.now(UTC)
    expired = certificate(
        world, "NV-0001", not_before=VALID_FROM, not_after=now - timedelta(days=1)
    )
    problem = refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (422, "bad_certificate"),
        json=chip_body(world.vendor_id, expired),
    )
    assert "expired" in problem["detail"]
    future = certificate(world, "NV-0001", not_before=now + timedelta(days=30), not_after=VALID_TO)
    problem = refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (422, "bad_certificate"),
        json=chip_body(world.vendor_id, future),
    )
    assert "not yet valid" in problem["detail"]


def test_ca_or_garbage_as_chip_certificate_is_refused(world: World) -> None:
    for pem in (world.root_pem, b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"):
        refused(
            world.registry,
            world.vendor_token,
            "POST",
            "/v1/chips",
            (422, "bad_certificate"),
            json=chip_body(world.vendor_id, pem),
        )


def test_same_chip_or_same_key_twice_is_a_conflict(world: World) -> None:
    chip_key = key("chip:NV-0001")
    post(
        world,
        world.vendor_token,
        "/v1/chips",
        chip_body(world.vendor_id, certificate(world, "NV-0001")),
    )
    # The same chip again, even with a freshly issued certificate.
    refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (409, "already_exists"),
        json=chip_body(world.vendor_id, certificate(world, "NV-0001")),
    )
    # A second identity for the same key is what a cloned chip looks like.
    clone = certificate(world, "NV-0002", chip_key)
    refused(
        world.registry,
        world.vendor_token,
        "POST",
        "/v1/chips",
        (409, "duplicate_key"),
        json=chip_body(world.vendor_id, clone),
    )
    refused(
        world.registry,
        world.registry.admin_token,
        "GET",
        "/v1/chips/NV-0002",
        (404, "unknown_chip"),
    )


# -- installations -------------------------------------------------------------------------


def test_operator_installs_an_enrolled_chip(world: World) -> None:
    world.enroll("NV-0001", install=False)
    created = post(
        world, world.operator_token, "/v1/installations", installation("NV-0001", world.facility_id)
    )
    assert created["chip_id"] == "NV-0001"
    assert created["facility_id"] == world.facility_id
    assert created["removed_at"] is None
    assert created["declared_by_operator_id"] == world.operator_id
    assert created["installed_at"].startswith("2026-02-01T00:00:00")
    detail = chip_detail(world, "NV-0001")
    assert detail["current_installation"]["id"] == created["id"]
    assert detail["facility"]["id"] == world.facility_id


def test_installation_of_unknown_chip_or_at_unknown_facility_is_not_found(world: World) -> None:
    world.enroll("NV-0001", install=False)
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (404, "unknown_chip"),
        json=installation("NV-9999", world.facility_id),
    )
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (404, "unknown_facility"),
        json=installation("NV-0001", world.facility_id + 1000),
    )
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "invalid_request"),
        json=installation("NV-0001", world.facility_id, at="2026-02-01T00:00:00"),
    )


def test_chip_in_another_operators_custody_cannot_be_taken(world: World) -> None:
    world.enroll("NV-0001")
    _, other_token, other_facility = add_operator(world.registry, "Other Compute")
    refused(
        world.registry,
        other_token,
        "POST",
        "/v1/installations",
        (403, "chip_in_other_custody"),
        json=installation("NV-0001", other_facility, at=MAR, signer="Other Compute"),
    )
    # Nor may an operator declare installations at someone else's facility.
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (403, "not_your_operator"),
        json=installation("NV-0001", other_facility, at=MAR),
    )
    assert chip_detail(world, "NV-0001")["facility"]["id"] == world.facility_id


def test_move_between_own_facilities_closes_the_old_installation(world: World) -> None:
    world.enroll("NV-0001")
    second = post(world, world.operator_token, "/v1/facilities", facility_body(world.operator_id))
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "installation_out_of_order"),
        json=installation("NV-0001", second["id"], at="2026-01-01T00:00:00Z"),
    )
    moved = post(
        world,
        world.operator_token,
        "/v1/installations",
        installation("NV-0001", second["id"], at=MAR),
    )
    detail = chip_detail(world, "NV-0001")
    assert detail["current_installation"]["id"] == moved["id"]
    assert detail["facility"]["id"] == second["id"]
    first, current = detail["custody"]
    assert (first["facility_id"], current["facility_id"]) == (world.facility_id, second["id"])
    assert first["removed_at"] == current["installed_at"]
    assert current["removed_at"] is None


def test_installing_twice_at_the_same_facility_is_a_conflict(world: World) -> None:
    world.enroll("NV-0001")
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (409, "already_installed"),
        json=installation("NV-0001", world.facility_id, at=MAR),
    )
    assert len(chip_detail(world, "NV-0001")["custody"]) == 1


# -- clusters ------------------------------------------------------------------------------


def cluster(
    chip_ids: list[str],
    facility_id: int,
    start: str = MAR,
    end: str = "2026-04-01T00:00:00Z",
    signer: str = "Abilene Compute",
) -> dict[str, Any]:
    """A cluster declaration signed by the operator ``signer``'s key."""
    fields = {
        "facility_id": facility_id,
        "name": "training run 7",
        "purpose": "pretraining",
        "chip_ids": chip_ids,
        "start": start,
        "end": end,
    }
    return signed("cluster", fields, operator_key(signer))


def test_operator_declares_a_cluster_of_its_chips(world: World) -> None:
    for chip_id in ("NV-0002", "NV-0001"):
        world.enroll(chip_id)
    created = post(
        world,
        world.operator_token,
        "/v1/clusters",
        cluster(["NV-0002", "NV-0001"], world.facility_id),
    )
    assert created["chip_ids"] == ["NV-0001", "NV-0002"]
    assert (created["operator_id"], created["facility_id"]) == (
        world.operator_id,
        world.facility_id,
    )


def test_cluster_with_bad_window_or_duplicates_is_invalid(world: World) -> None:
    world.enroll("NV-0001")
    for start, end in ((MAR, MAR), ("2026-04-01T00:00:00Z", MAR)):
        refused(
            world.registry,
            world.operator_token,
            "POST",
            "/v1/clusters",
            (422, "bad_window"),
            json=cluster(["NV-0001"], world.facility_id, start, end),
        )
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/clusters",
        (422, "duplicate_chips"),
        json=cluster(["NV-0001", "NV-0001"], world.facility_id),
    )
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/clusters",
        (422, "invalid_request"),
        json=cluster([], world.facility_id),
    )


def test_cluster_with_unknown_or_foreign_chips_is_refused(world: World) -> None:
    world.enroll("NV-0001")
    world.enroll("NV-0002", install=False)
    _, other_token, other_facility = add_operator(world.registry, "Other Compute")
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/clusters",
        (404, "unknown_chip"),
        json=cluster(["NV-0001", "NV-9999"], world.facility_id),
    )
    # Enrolled but installed nowhere.
    problem = refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/clusters",
        (403, "chip_not_yours"),
        json=cluster(["NV-0001", "NV-0002"], world.facility_id),
    )
    assert "NV-0002" in problem["detail"] and "NV-0001" not in problem["detail"]
    # Installed, but at another operator's facility.
    refused(
        world.registry,
        other_token,
        "POST",
        "/v1/clusters",
        (403, "chip_not_yours"),
        json=cluster(["NV-0001"], other_facility, signer="Other Compute"),
    )
    refused(
        world.registry,
        other_token,
        "POST",
        "/v1/clusters",
        (403, "not_your_operator"),
        json=cluster(["NV-0001"], world.facility_id),
    )


# -- signed declarations -------------------------------------------------------------------


def test_declarations_must_be_signed_by_the_facility_operator(world: World) -> None:
    world.enroll("NV-0001", install=False)
    fields = {"chip_id": "NV-0001", "facility_id": world.facility_id, "installed_at": FEB}
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "bad_signature"),
        json=signed("installation", fields, key("someone else")),
    )
    # A cluster declaration is not an installation, and a plain JSON body is no declaration.
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (400, "malformed_declaration"),
        json=signed(
            "cluster",
            {"facility_id": world.facility_id, "name": "x", "purpose": "y", "chip_ids": ["a"]},
            operator_key("Abilene Compute"),
        ),
    )
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "invalid_request"),
        json=fields,
    )
    body = installation("NV-0001", world.facility_id)
    post(world, world.operator_token, "/v1/installations", body)
    # The exact envelope is the newest log entry.
    with world.registry.client() as http:
        size = len(ok(http.get("/v1/log/entries", params={"start": 0, "end": 1000}))["entries"])
        [entry] = ok(http.get("/v1/log/entries", params={"start": size - 1, "end": size}))[
            "entries"
        ]
    assert entry["kind"] == "installation"
    assert json.loads(base64.b64decode(entry["body"])) == body


@pytest.mark.parametrize(
    "installed_at",
    [
        1767225600,  # a Unix time: pydantic's lax datetime took it, the partner's audit did not
        "2026-02-01T00:00:00",  # no zone
        "2026-02-01 00:00:00Z",  # a space is ISO 8601, not RFC 3339 as the audit reads it
        "2026-W05-7T00:00:00Z",
    ],
)
def test_installation_time_the_audit_would_reject_is_refused(
    world: World, installed_at: object
) -> None:
    # Regression: the registry accepted a signed declaration that the partner's audit then
    # refused, so a log the registry called valid failed its audit. Both now parse declared
    # times with attestation.timefmt.parse_declared_time.
    world.enroll("NV-0001", install=False)
    fields = {"chip_id": "NV-0001", "facility_id": world.facility_id, "installed_at": installed_at}
    problem = refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "invalid_request"),
        json=signed("installation", fields, operator_key("Abilene Compute")),
    )
    assert "installed_at" in json.dumps(problem)


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ("/v1/installations", {"facility_id": "FACILITY"}),  # pydantic's lax int took "3"
        ("/v1/installations", {"facility_id": 1.0}),
        ("/v1/installations", {"facility_id": True}),
        ("/v1/clusters", {"facility_id": "FACILITY"}),
    ],
)
def test_declarations_the_audit_would_reject_are_refused(
    world: World, path: str, change: dict[str, object]
) -> None:
    # Regression: the registry's schema coerced these into integers and logged the envelope;
    # the audit parses the logged payload with attestation.records, which does not. Both now
    # read declarations with that one parser.
    world.enroll("NV-0001")
    fields: dict[str, object]
    if path == "/v1/installations":
        world.enroll("NV-0002", install=False)
        fields = {"chip_id": "NV-0002", "facility_id": world.facility_id, "installed_at": FEB}
    else:
        fields = {
            "facility_id": world.facility_id,
            "name": "run",
            "purpose": "training",
            "chip_ids": ["NV-0001"],
            "start": FEB,
            "end": "2026-03-01T00:00:00Z",
        }
    for key_, value in change.items():
        fields[key_] = str(world.facility_id) if value == "FACILITY" else value
    kind = "installation" if path == "/v1/installations" else "cluster"
    problem = refused(
        world.registry,
        world.operator_token,
        "POST",
        path,
        (422, "invalid_request"),
        json=signed(kind, fields, operator_key("Abilene Compute")),
    )
    assert "facility_id" in json.dumps(problem)


def test_a_cluster_is_stored_as_signed(world: World) -> None:
    # Regression: the schema stripped a name's spaces before storing it, while the partner's
    # audit keeps the signed name, and the name appears in the cluster's findings.
    world.enroll("NV-0001")
    fields = {
        "facility_id": world.facility_id,
        "name": "  run 7 ",
        "purpose": "training",
        "chip_ids": ["NV-0001"],
        "start": MAR,
        "end": "2026-04-01T00:00:00Z",
    }
    body = signed("cluster", fields, operator_key("Abilene Compute"))
    created = post(world, world.operator_token, "/v1/clusters", body)
    assert created["name"] == "  run 7 "


def test_installation_time_with_an_offset_is_normalised_to_utc(world: World) -> None:
    world.enroll("NV-0001", install=False)
    created = post(
        world,
        world.operator_token,
        "/v1/installations",
        installation("NV-0001", world.facility_id, at="2026-02-01T02:00:00+02:00"),
    )
    assert created["installed_at"].startswith("2026-02-01T00:00:00")
