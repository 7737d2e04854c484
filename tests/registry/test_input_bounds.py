"""Bad input of every kind is a 4xx problem with a code and writes nothing: deep nesting,
duplicate keys and non-finite numbers in any JSON body (one strict decoder), integers beyond
64 bits in paths, queries and bodies (one bounded type), and authorisation before any lookup.
Real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from registry.api.app import create_app
from registry.api.body import MAX_JSON_DEPTH, StrictJsonRoute
from registry.auth import Role
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.checks import PROBLEM_JSON, refused, row_counts
from tests.registry.factories import World, make_world, ok, signed

TOO_BIG = 2**63  # one past the largest 64-bit integer: offsets, log indexes, tree sizes
ID_TOO_BIG = 2**31  # one past the largest id (INTEGER columns: 32 bits on PostgreSQL)
FACILITY = {
    "name": "Dup site",
    "country": "US",
    "latitude": 1.0,
    "longitude": 2.0,
    "declared_power_kw": 100,
}


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    return make_world(live_registry)


def post_bytes(world: World, token: str, path: str, body: bytes) -> dict[str, Any]:
    """POST raw bytes as JSON; return the problem after checking nothing was written."""
    before = row_counts(world.registry)
    with world.registry.client(token) as http:
        r = http.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.headers["content-type"] == PROBLEM_JSON, r.text
    assert row_counts(world.registry) == before
    problem: dict[str, Any] = {"status": r.status_code, **r.json()}
    return problem


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Every API route, inside included routers too (FastAPI keeps those as one route each)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from api_routes(included.routes)


def test_every_route_decodes_bodies_strictly(registry_settings: Settings) -> None:
    app = create_app(registry_settings)
    routes = list(api_routes(app.routes))
    paths = {r.path for r in routes}
    # Every router, the console's and the newest ones included.
    assert {"/v1/transfers", "/v1/gpu/challenges", "/v1/chips", "/console/login", "/docs"} <= paths
    assert all(isinstance(r, StrictJsonRoute) for r in routes), [
        r.path for r in routes if not isinstance(r, StrictJsonRoute)
    ]
    app.state.context.engine.dispose()


def test_deeply_nested_json_is_a_bad_request_on_every_body(world: World) -> None:
    admin = world.registry.admin_token
    deep = b"[" * 200_000 + b"]" * 200_000  # beyond the interpreter's recursion limit
    for token, path in (
        (world.operator_token, "/v1/reports/batch"),
        (world.operator_token, "/v1/reports"),
        (world.operator_token, "/v1/facilities"),
        (world.operator_token, "/v1/installations"),
        (admin, "/v1/verifier/runs"),
        (admin, "/v1/landmark-measurements"),
    ):
        for body in (deep, b'{"reports": ' + deep + b"}"):
            problem = post_bytes(world, token, path, body)
            assert (problem["status"], problem["code"]) == (400, "malformed_json"), path
    # The bound is a documented depth, not the interpreter's stack: one level over it is refused,
    # exactly at it the body is decoded (and then refused for its shape, not its depth).
    over = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    problem = post_bytes(world, world.operator_token, "/v1/reports/batch", over)
    assert (problem["status"], problem["code"]) == (400, "malformed_json")
    at = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    problem = post_bytes(world, world.operator_token, "/v1/reports/batch", at)
    assert (problem["status"], problem["code"]) == (422, "invalid_request")


def test_duplicate_keys_are_refused_on_every_body(world: World) -> None:
    # Last-one-wins would create this facility for operator world.operator_id.
    body = (
        b'{"operator_id": 999, "operator_id": %d, "name": "Dup site", "country": "US",'
        b' "latitude": 1, "longitude": 2, "declared_power_kw": 100}' % world.operator_id
    )
    problem = post_bytes(world, world.operator_token, "/v1/facilities", body)
    assert (problem["status"], problem["code"]) == (400, "duplicate_json_key")
    nested = b'{"reports": [{"payload": "", "payload": "", "payloadType": "x", "signatures": []}]}'
    for path, data in (
        ("/v1/reports/batch", b'{"reports": [], "reports": [{}]}'),
        ("/v1/reports/batch", nested),
        ("/v1/installations", b'{"payload": "a", "payload": "b", "payloadType": "x"}'),
        ("/v1/verifier/runs", b'{"policy": "default", "policy": "demo"}'),
    ):
        token = world.registry.admin_token if "verifier" in path else world.operator_token
        problem = post_bytes(world, token, path, data)
        assert (problem["status"], problem["code"]) == (400, "duplicate_json_key"), path
    # The near miss: the same facility without the duplicate is created.
    with world.registry.client(world.operator_token) as http:
        ok(http.post("/v1/facilities", json={"operator_id": world.operator_id, **FACILITY}), 201)


def test_non_finite_numbers_are_refused(world: World) -> None:
    fields = b'"name": "x", "country": "US", "latitude": 1, "longitude": 2'
    for number in (b"1e999", b"-1e999", b"NaN", b"Infinity"):
        body = b'{"operator_id": %d, %s, "declared_power_kw": 100, "non_it_load_kw": %s}' % (
            world.operator_id,
            fields,
            number,
        )
        problem = post_bytes(world, world.operator_token, "/v1/facilities", body)
        assert (problem["status"], problem["code"]) == (400, "malformed_json"), number
    # Spelled as a string, pydantic would read "inf" as a float: refused as a value.
    refused(
        world.registry,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (422, "invalid_request"),
        json={"operator_id": world.operator_id, **FACILITY, "declared_power_kw": "inf"},
    )


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", f"/v1/facilities/{ID_TOO_BIG}", None),
        ("GET", f"/v1/facilities/{TOO_BIG}", None),
        ("GET", "/v1/facilities/99999999999999999999", None),
        ("GET", "/v1/findings", {"offset": TOO_BIG}),
        ("GET", "/v1/findings", {"facility_id": ID_TOO_BIG}),
        ("GET", f"/v1/findings/{ID_TOO_BIG}/transitions", None),
        ("GET", f"/v1/clusters/{ID_TOO_BIG}/obligations", None),
        ("GET", f"/v1/webhooks/{ID_TOO_BIG}/deliveries", None),
        ("GET", "/v1/log/entries", {"start": TOO_BIG, "end": TOO_BIG + 1}),
        ("GET", "/v1/log/proof/inclusion", {"tree_size": TOO_BIG, "index": 0}),
        ("GET", "/v1/log/proof/consistency", {"first": 1, "second": TOO_BIG}),
        ("GET", "/v1/log/proof/tlog-proof", {"index": TOO_BIG}),
        ("GET", "/v1/log/bundle", {"facility_id": ID_TOO_BIG}),
        ("GET", f"/v1/findings/{ID_TOO_BIG}", None),
        ("GET", f"/v1/facilities/{ID_TOO_BIG}/power-balance", None),
        ("GET", f"/v1/operators/{ID_TOO_BIG}/keys", None),
        ("GET", f"/v1/tokens/{ID_TOO_BIG}/events", None),
        ("GET", f"/v1/log/entries/{TOO_BIG}/decoded", None),
        ("GET", "/v1/chips", {"facility_id": ID_TOO_BIG}),
        ("GET", "/v1/chips", {"offset": TOO_BIG}),
        ("GET", "/v1/clusters", {"operator_id": ID_TOO_BIG}),
        ("GET", "/v1/access-log", {"token_id": ID_TOO_BIG}),
    ],
)
def test_integers_beyond_64_bits_in_paths_and_queries(
    world: World, method: str, path: str, params: dict[str, Any] | None
) -> None:
    refused(
        world.registry,
        world.registry.admin_token,
        method,
        path,
        (422, "invalid_request"),
        params=params,
    )


def test_integers_beyond_64_bits_in_bodies_and_for_any_role(world: World) -> None:
    reg = world.registry
    for token in (world.vendor_token, reg.token(Role.PARTNER), reg.token(Role.INSPECTOR)):
        refused(
            reg,
            token,
            "POST",
            f"/v1/findings/{TOO_BIG}/transitions",
            (422, "invalid_request"),
            json={"to": "resolved", "note": "x"},
        )
    refused(
        reg,
        world.operator_token,
        "POST",
        "/v1/facilities",
        (422, "invalid_request"),
        json={**FACILITY, "operator_id": 99999999999999999999},
    )
    refused(
        reg,
        reg.admin_token,
        "POST",
        "/v1/tokens",
        (422, "invalid_request"),
        json={"name": "t", "role": "operator", "operator_id": ID_TOO_BIG},
    )
    refused(
        reg,
        world.operator_token,
        "POST",
        "/v1/installations",
        (422, "invalid_request"),
        json=signed(
            "installation",
            {"chip_id": "NV-1", "facility_id": ID_TOO_BIG, "installed_at": "2026-02-01T00:00:00Z"},
            world.operator_key,
        ),
    )
    # The largest id is an ordinary unknown id.
    refused(
        reg, reg.admin_token, "GET", f"/v1/facilities/{ID_TOO_BIG - 1}", (404, "unknown_facility")
    )
    with reg.client(reg.admin_token) as http:
        assert ok(http.get("/v1/findings", params={"offset": TOO_BIG - 1}))["findings"] == []


GPU_EVIDENCE = {"nonce": "0" * 64, "report": "AA==", "certificates": ["AA=="]}


def test_lookups_come_after_the_role_check(world: World) -> None:
    """A role that may never do something hears 403 whether or not the object exists."""
    reg = world.registry
    vendor, meter = world.vendor_token, reg.token(Role.METER)
    for token, method, path, body in (
        (vendor, "POST", "/v1/findings/424242/transitions", {"to": "resolved", "note": "x"}),
        (meter, "GET", "/v1/findings/424242/transitions", None),
        (meter, "GET", "/v1/facilities/424242", None),
        (meter, "GET", "/v1/chips/NO-SUCH-CHIP", None),
        (meter, "GET", "/v1/clusters/424242/obligations", None),
        (vendor, "PUT", "/v1/clusters/424242/budget", {"compute_budget_flop": 1e25}),
        (meter, "GET", "/v1/chips/NO-SUCH-CHIP/transfer-conditions", None),
        (meter, "POST", "/v1/chips/NO-SUCH-CHIP/transfer-conditions", {"allowed_countries": []}),
        (meter, "GET", "/v1/findings/424242", None),
        (meter, "GET", "/v1/chips/NO-SUCH-CHIP/series", None),
        (meter, "GET", "/v1/facilities/424242/power-balance", None),
        (meter, "GET", "/v1/chips/NO-SUCH-CHIP/gpu-challenges", None),
        (meter, "POST", "/v1/chips/NO-SUCH-CHIP/gpu-evidence", GPU_EVIDENCE),
        (meter, "POST", "/v1/chips/NO-SUCH-CHIP/decommission", {"reason": "x"}),
        (meter, "POST", "/v1/chips/NO-SUCH-CHIP/revoke", {"reason": "x"}),
        (meter, "GET", "/v1/operators/424242/keys", None),
        (vendor, "POST", "/v1/operators/424242/keys", {"public_key": "x", "reason": "x"}),
        (vendor, "POST", "/v1/tokens/424242/revoke", {"reason": "x"}),
        (vendor, "GET", "/v1/tokens/424242/events", None),
    ):
        refused(reg, token, method, path, (403, "role_not_allowed"), json=body)
    # The near miss: a role that may, asking about what does not exist, hears 404.
    refused(
        reg, reg.token(Role.INSPECTOR), "GET", "/v1/facilities/424242", (404, "unknown_facility")
    )


def test_bundle_of_an_unknown_facility_is_not_found(world: World) -> None:
    refused(
        world.registry,
        None,
        "GET",
        "/v1/log/bundle",
        (404, "unknown_facility"),
        params={"facility_id": 424242},
    )


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"]
)
def test_timestamps_near_the_ends_of_time_are_refused(world: World, when: str) -> None:
    """Converting them to UTC or adding a window overflowed: 500 before."""
    reg = world.registry
    world.enroll("NV-1")
    for method, path, body, params in (
        ("POST", "/v1/verifier/runs", {"policy": "demo", "as_of": when}, None),
        ("POST", "/v1/verifier/runs", {"since": when, "as_of": "2026-03-02T00:00:00Z"}, None),
        (
            "POST",
            "/v1/chips/NV-1/transfer-conditions",
            {"allowed_countries": [], "effective_from": when},
            None,
        ),
        ("GET", "/v1/log/bundle", None, {"country": "US", "start": when}),
        ("GET", "/v1/chips/NV-1/series", None, {"start": when}),
        ("GET", "/v1/facilities/1/power-balance", None, {"end": when}),
    ):
        refused(
            reg, reg.admin_token, method, path, (422, "invalid_request"), json=body, params=params
        )


def test_nul_characters_are_refused_in_bodies_and_queries(world: World) -> None:
    """PostgreSQL cannot store U+0000 in text: a 500 there before, on any free-text field."""
    reg = world.registry
    for body in (
        b'{"name": "Lab\\u0000", "country": "US", "public_key": "x"}',
        b'{"name": "Lab", "country": "US", "public_key": "x", "x\\u0000": 1}',
    ):
        problem = post_bytes(world, reg.admin_token, "/v1/operators", body)
        assert (problem["status"], problem["code"]) == (422, "invalid_request"), body
    refused(
        reg,
        reg.admin_token,
        "GET",
        "/v1/findings",
        (422, "invalid_request"),
        params={"kind": "chip_silent\x00"},
    )
    inspector = reg.token(Role.INSPECTOR)  # an audited role: its reads are recorded
    refused(reg, inspector, "GET", "/v1/chips", (422, "invalid_request"), params={"model": "H\x00"})
    refused(reg, inspector, "GET", "/v1/chips/NV%00-1", (422, "invalid_request"))
    refused(reg, inspector, "GET", "/v1/chips/NV%00-1/series", (422, "invalid_request"))
    # The near miss: an escaped backslash followed by "u0000" is just text.
    with reg.client(reg.admin_token) as http:
        r = http.post(
            "/v1/operators",
            content=b'{"name": "Lab \\\\u0000", "country": "US", "public_key": "x"}',
            headers={"Content-Type": "application/json"},
        )
    assert (r.status_code, r.json()["code"]) == (422, "bad_public_key"), r.text
