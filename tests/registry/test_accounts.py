"""Accounts over real HTTP, on SQLite and PostgreSQL: authentication, roles, vendors, operators
and tokens. Every rejection is checked for its status, its stable ``code``, and that it wrote
nothing."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from attestation.certs import create_vendor_root
from registry.auth import Role
from registry.db.models import ApiToken
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import VALID_FROM, VALID_TO, World, add_operator, key, make_world, ok


def vendor_root(name: str, seed_label: str | None = None) -> str:
    root_key = key(seed_label or f"vendor:{name}")
    return create_vendor_root(name, root_key, not_before=VALID_FROM, not_after=VALID_TO).decode()


def operator_body(name: str, country: str = "US", public_key: str | None = None) -> dict[str, str]:
    return {
        "name": name,
        "country": country,
        "public_key": public_key or key(f"op:{name}").public_key.to_b64(),
    }


def names(registry: LiveRegistry, path: str) -> list[str]:
    with registry.client(registry.admin_token) as http:
        return [item["name"] for item in ok(http.get(path))]


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    return make_world(live_registry)


# -- authentication ------------------------------------------------------------------------


def test_missing_or_malformed_authorization_is_unauthenticated(live_registry: LiveRegistry) -> None:
    refused(live_registry, None, "GET", "/v1/vendors", (401, "unauthenticated"))
    refused(
        live_registry,
        None,
        "POST",
        "/v1/vendors",
        (401, "unauthenticated"),
        json={"name": "NVIDIA", "root_certificate_pem": vendor_root("NVIDIA")},
    )
    for header in (
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        f"Token {live_registry.admin_token}",
        live_registry.admin_token,
    ):
        refused(
            live_registry,
            None,
            "GET",
            "/v1/vendors",
            (401, "unauthenticated"),
            headers={"Authorization": header},
        )


def test_unknown_token_is_invalid_token_and_revoked_is_token_revoked(
    live_registry: LiveRegistry,
) -> None:
    refused(live_registry, "chipreg_not-a-real-token", "GET", "/v1/vendors", (401, "invalid_token"))
    # A token differing from the admin's by one character is just as unknown.
    near_miss = live_registry.admin_token[:-1] + (
        "A" if live_registry.admin_token[-1] != "A" else "B"
    )
    refused(live_registry, near_miss, "GET", "/v1/vendors", (401, "invalid_token"))

    inspector = live_registry.token(Role.INSPECTOR)
    with live_registry.client(inspector) as http:
        ok(http.get("/v1/vendors"))
    with live_registry.context.sessions() as s:
        record = s.scalars(select(ApiToken).where(ApiToken.role == "inspector")).one()
        record.revoked_at = datetime.now(UTC)
        s.commit()
    refused(live_registry, inspector, "GET", "/v1/vendors", (401, "token_revoked"))


# -- roles ---------------------------------------------------------------------------------


def test_admin_only_endpoints_refuse_every_other_role(world: World) -> None:
    reg = world.registry
    tokens = {
        "vendor": world.vendor_token,
        "operator": world.operator_token,
        "inspector": reg.token(Role.INSPECTOR),
        "partner": reg.token(Role.PARTNER),
    }
    requests = [
        ("/v1/vendors", {"name": "AMD", "root_certificate_pem": vendor_root("AMD")}),
        ("/v1/operators", operator_body("Fresh Compute")),
        ("/v1/tokens", {"name": "escalate", "role": "admin"}),
    ]
    for role, token in tokens.items():
        for path, body in requests:
            problem = refused(reg, token, "POST", path, (403, "role_not_allowed"), json=body)
            assert repr(role) in problem["detail"]


def test_operator_list_is_closed_to_vendors_and_operators(world: World) -> None:
    reg = world.registry
    refused(reg, world.vendor_token, "GET", "/v1/operators", (403, "role_not_allowed"))
    refused(reg, world.operator_token, "GET", "/v1/operators", (403, "role_not_allowed"))
    for role in (Role.INSPECTOR, Role.PARTNER):
        with reg.client(reg.token(role)) as http:
            assert [o["name"] for o in ok(http.get("/v1/operators"))] == ["Abilene Compute"]


def test_operator_and_vendor_tokens_act_only_for_their_own_company(world: World) -> None:
    reg = world.registry
    other_op, other_op_token, _ = add_operator(reg, "Other Compute")
    facility = {
        "operator_id": other_op,
        "name": "not mine",
        "country": "US",
        "latitude": 1.0,
        "longitude": 1.0,
        "declared_power_kw": 100,
    }
    refused(
        reg,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (403, "not_your_operator"),
        json=facility,
    )
    # Other roles are refused by role before ownership is considered.
    refused(
        reg, world.vendor_token, "POST", "/v1/facilities", (403, "role_not_allowed"), json=facility
    )
    refused(
        reg,
        reg.token(Role.INSPECTOR),
        "POST",
        "/v1/facilities",
        (403, "role_not_allowed"),
        json=facility,
    )

    with reg.client(reg.admin_token) as http:
        amd = ok(
            http.post(
                "/v1/vendors", json={"name": "AMD", "root_certificate_pem": vendor_root("AMD")}
            ),
            201,
        )
    amd_token = reg.token(Role.VENDOR, vendor_id=amd["id"])
    chip = {
        "vendor_id": world.vendor_id,
        "certificate_pem": world.certificate("NV-0001", key("chip:NV-0001")).decode(),
        "peak_tflops_bf16": 989.0,
        "tdp_watts": 700.0,
    }
    refused(reg, amd_token, "POST", "/v1/chips", (403, "not_your_vendor"), json=chip)
    refused(reg, other_op_token, "POST", "/v1/chips", (403, "role_not_allowed"), json=chip)
    with reg.client(world.vendor_token) as http:
        ok(http.post("/v1/chips", json=chip), 201)


# -- vendors -------------------------------------------------------------------------------


def test_vendor_with_bad_certificate_is_refused(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    good = vendor_root("NVIDIA")
    for pem in ("not a certificate", good.replace("A", "B", 5), good[: len(good) // 2]):
        refused(
            reg,
            admin,
            "POST",
            "/v1/vendors",
            (422, "bad_certificate"),
            json={"name": "NVIDIA", "root_certificate_pem": pem},
        )
    problem = refused(
        reg,
        admin,
        "POST",
        "/v1/vendors",
        (422, "bad_certificate"),
        json={"name": "NVIDIA Corp", "root_certificate_pem": good},
    )
    assert "'NVIDIA'" in problem["detail"]
    assert names(reg, "/v1/vendors") == []


def test_duplicate_vendor_name_or_root_is_a_conflict(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    with reg.client(admin) as http:
        created = ok(
            http.post(
                "/v1/vendors",
                json={"name": "NVIDIA", "root_certificate_pem": vendor_root("NVIDIA")},
            ),
            201,
        )
    assert len(created["fingerprint"]) == 64
    # Same root again, and a new root (another key) under the same name.
    for pem in (vendor_root("NVIDIA"), vendor_root("NVIDIA", "another NVIDIA key")):
        refused(
            reg,
            admin,
            "POST",
            "/v1/vendors",
            (409, "already_exists"),
            json={"name": "NVIDIA", "root_certificate_pem": pem},
        )
    assert names(reg, "/v1/vendors") == ["NVIDIA"]


def test_vendor_request_schema_is_enforced(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    pem = vendor_root("NVIDIA")
    for body in (
        {"name": "NVIDIA"},
        {"name": "", "root_certificate_pem": pem},
        {"name": "NVIDIA", "root_certificate_pem": pem, "extra": 1},
    ):
        refused(reg, admin, "POST", "/v1/vendors", (422, "invalid_request"), json=body)


# -- operators -----------------------------------------------------------------------------


def test_operator_with_bad_public_key_is_refused(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    for bad in (
        "not base64!",
        base64.b64encode(b"x" * 31).decode(),
        base64.b64encode(b"x" * 33).decode(),
        "",
    ):
        refused(
            reg,
            admin,
            "POST",
            "/v1/operators",
            (422, "bad_public_key"),
            json=operator_body("Abilene Compute", public_key=bad or "="),
        )
    assert names(reg, "/v1/operators") == []


def test_operator_with_bad_country_is_refused(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    for country in ("us", "USA", "U", "", "1A"):
        problem = refused(
            reg,
            admin,
            "POST",
            "/v1/operators",
            (422, "invalid_request"),
            json=operator_body("Abilene Compute", country=country),
        )
        assert problem["errors"][0]["loc"] == ["body", "country"]
    assert names(reg, "/v1/operators") == []


def test_duplicate_operator_is_a_conflict(live_registry: LiveRegistry) -> None:
    reg, admin = live_registry, live_registry.admin_token
    with reg.client(admin) as http:
        created = ok(http.post("/v1/operators", json=operator_body("Abilene Compute")), 201)
    assert created["country"] == "US"
    refused(
        reg,
        admin,
        "POST",
        "/v1/operators",
        (409, "already_exists"),
        json=operator_body("Abilene Compute", "CA"),
    )
    assert names(reg, "/v1/operators") == ["Abilene Compute"]


# -- tokens --------------------------------------------------------------------------------


def test_token_bindings_must_match_the_role(world: World) -> None:
    reg, admin = world.registry, world.registry.admin_token
    bad: list[dict[str, Any]] = [
        {"role": "operator"},
        {"role": "operator", "vendor_id": world.vendor_id},
        {"role": "operator", "operator_id": world.operator_id, "vendor_id": world.vendor_id},
        {"role": "vendor"},
        {"role": "vendor", "operator_id": world.operator_id},
        {"role": "inspector", "operator_id": world.operator_id},
        {"role": "partner", "vendor_id": world.vendor_id},
        {"role": "admin", "operator_id": world.operator_id},
    ]
    for body in bad:
        refused(reg, admin, "POST", "/v1/tokens", (422, "bad_binding"), json={"name": "t", **body})


def test_token_for_unknown_company_or_role_is_refused(world: World) -> None:
    reg, admin = world.registry, world.registry.admin_token
    refused(
        reg,
        admin,
        "POST",
        "/v1/tokens",
        (404, "unknown_operator"),
        json={"name": "t", "role": "operator", "operator_id": world.operator_id + 1000},
    )
    refused(
        reg,
        admin,
        "POST",
        "/v1/tokens",
        (404, "unknown_vendor"),
        json={"name": "t", "role": "vendor", "vendor_id": world.vendor_id + 1000},
    )
    refused(
        reg,
        admin,
        "POST",
        "/v1/tokens",
        (422, "invalid_request"),
        json={"name": "t", "role": "root"},
    )


def test_issued_token_works_at_once_and_only_its_hash_is_stored(world: World) -> None:
    reg = world.registry
    with reg.client(reg.admin_token) as http:
        issued = ok(
            http.post(
                "/v1/tokens",
                json={"name": "ops bot", "role": "operator", "operator_id": world.operator_id},
            ),
            201,
        )
    secret = issued["token"]
    assert secret.startswith("chipreg_") and len(secret) > 40
    assert (issued["role"], issued["operator_id"], issued["vendor_id"]) == (
        "operator",
        world.operator_id,
        None,
    )

    with reg.client(secret) as http:
        listed = ok(http.get("/v1/facilities"))
    assert [f["id"] for f in listed] == [world.facility_id]

    with reg.context.sessions() as s:
        record = s.get(ApiToken, issued["id"])
        assert record is not None
        assert record.token_hash == hashlib.sha256(secret.encode()).hexdigest()
        # The secret itself appears in no column of any token row.
        for row in s.execute(select(ApiToken.__table__)).all():
            assert all(secret not in str(value) for value in row)


def test_tokens_bound_to_a_company_see_only_their_company(world: World) -> None:
    reg = world.registry
    _, other_token, other_facility = add_operator(reg, "Other Compute", country="CA")
    with reg.client(other_token) as http:
        assert [f["id"] for f in ok(http.get("/v1/facilities"))] == [other_facility]
    with reg.client(world.operator_token) as http:
        assert [f["id"] for f in ok(http.get("/v1/facilities"))] == [world.facility_id]
