"""API tokens over real HTTP, on SQLite and PostgreSQL: issue, list, revoke, the audit trail,
and that a revoked token is refused with its own code on its very next request."""

from __future__ import annotations

import logging

import pytest

from registry.auth import Role
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import add_operator, ok


def issue(registry: LiveRegistry, name: str, role: str, **binding: int) -> dict:
    with registry.client(registry.admin_token) as http:
        return ok(http.post("/v1/tokens", json={"name": name, "role": role, **binding}), 201)


def test_issue_list_revoke_with_audit_trail_and_log_lines(
    live_registry: LiveRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chipreg.tokens")
    issued = issue(live_registry, "inspector one", "inspector")
    secret = issued["token"]
    assert secret.startswith("chipreg_")
    with live_registry.client(secret) as http:
        me = ok(http.get("/v1/tokens/self"))
    assert me["id"] == issued["id"] and me["role"] == "inspector" and me["revoked_at"] is None
    assert "token" not in me

    with live_registry.client(live_registry.admin_token) as http:
        listed = ok(http.get("/v1/tokens"))
        assert [t["name"] for t in listed] == ["test admin", "inspector one"]
        assert all("token" not in t and "token_hash" not in t for t in listed)
        revoked = ok(
            http.post(f"/v1/tokens/{issued['id']}/revoke", json={"reason": "left the team"})
        )
        assert revoked["revoked_at"] is not None
        events = ok(http.get(f"/v1/tokens/{issued['id']}/events"))
    assert [(e["action"], e["reason"], e["actor_name"]) for e in events] == [
        ("created", "", "test admin"),
        ("revoked", "left the team", "test admin"),
    ]
    # The very next request with it is refused, with a code distinct from an unknown token.
    body = refused(live_registry, secret, "GET", "/v1/tokens/self", (401, "token_revoked"))
    assert str(issued["id"]) in body["detail"]
    refused(live_registry, "chipreg_nope", "GET", "/v1/tokens/self", (401, "invalid_token"))

    messages = [r.getMessage() for r in caplog.records if r.name == "chipreg.tokens"]
    assert any("token created" in m and "inspector one" in m for m in messages)
    assert any("token revoked" in m and "left the team" in m for m in messages)
    assert not any(secret in m for m in messages)


def test_revocation_is_checked_by_every_route_at_once(live_registry: LiveRegistry) -> None:
    operator_id, operator_token, facility_id = add_operator(live_registry, "Acme")
    with live_registry.client(operator_token) as http:
        ok(http.get(f"/v1/facilities/{facility_id}"))
    with live_registry.client(live_registry.admin_token) as http:
        mine = [t for t in ok(http.get("/v1/tokens")) if t["operator_id"] == operator_id]
        ok(http.post(f"/v1/tokens/{mine[0]['id']}/revoke", json={"reason": "key leaked"}))
    refused(
        live_registry,
        operator_token,
        "GET",
        f"/v1/facilities/{facility_id}",
        (401, "token_revoked"),
    )
    refused(
        live_registry,
        operator_token,
        "POST",
        "/v1/reports/batch",
        (401, "token_revoked"),
        json={"reports": []},
    )


def test_token_admin_refusals_write_nothing(live_registry: LiveRegistry) -> None:
    inspector = live_registry.token(Role.INSPECTOR)
    refused(live_registry, inspector, "GET", "/v1/tokens", (403, "role_not_allowed"))
    refused(
        live_registry,
        inspector,
        "POST",
        "/v1/tokens/1/revoke",
        (403, "role_not_allowed"),
        json={"reason": "x"},
    )
    admin = live_registry.admin_token
    refused(
        live_registry,
        admin,
        "POST",
        "/v1/tokens/99/revoke",
        (404, "unknown_token"),
        json={"reason": "x"},
    )
    refused(live_registry, admin, "GET", "/v1/tokens/99/events", (404, "unknown_token"))
    refused(live_registry, admin, "POST", "/v1/tokens/1/revoke", (422, "invalid_request"), json={})
    refused(
        live_registry,
        admin,
        "POST",
        "/v1/tokens/1/revoke",
        (409, "cannot_revoke_self"),
        json={"reason": "oops"},
    )
    other = issue(live_registry, "spare", "partner")
    with live_registry.client(admin) as http:
        ok(http.post(f"/v1/tokens/{other['id']}/revoke", json={"reason": "unused"}))
    refused(
        live_registry,
        admin,
        "POST",
        f"/v1/tokens/{other['id']}/revoke",
        (409, "token_already_revoked"),
        json={"reason": "again"},
    )
