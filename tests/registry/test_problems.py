"""Errors leave the API as RFC 9457 problem documents with stable codes; the API documents
itself without reaching outside the registry. Real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest

from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.checks import PROBLEM_JSON, refused, row_counts
from tests.registry.factories import World, make_world, ok

MAX_BATCH = 3
MAX_BYTES = 4096


@pytest.fixture
def registry_settings(registry_settings: Settings) -> Settings:
    """The shared settings with small limits, so the limits are cheap to exceed."""
    return registry_settings.model_copy(
        update={"max_batch_reports": MAX_BATCH, "max_request_bytes": MAX_BYTES}
    )


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    w.enroll("NV-0001")
    return w


def post_raw(
    world: World, body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    before = row_counts(world.registry)
    with world.registry.client(world.operator_token) as http:
        r = http.post("/v1/reports/batch", content=body, headers={"Content-Type": content_type})
    assert r.headers["content-type"] == PROBLEM_JSON
    assert row_counts(world.registry) == before
    return r.status_code, r.json()


def test_unknown_route_is_a_not_found_problem(live_registry: LiveRegistry) -> None:
    for token in (None, live_registry.admin_token):
        problem = refused(live_registry, token, "GET", "/v1/no-such-thing", (404, "not_found"))
        assert problem["type"] == "https://chipreg.org/errors/not_found"
        assert (problem["status"], problem["title"]) == (404, "Not Found")


def test_wrong_method_is_a_method_not_allowed_problem(live_registry: LiveRegistry) -> None:
    with live_registry.client(live_registry.admin_token) as http:
        r = http.delete("/v1/vendors")
    assert (r.status_code, r.json()["code"]) == (405, "method_not_allowed")
    assert r.headers["content-type"] == PROBLEM_JSON
    # RFC 9110 section 15.5.6: a 405 names methods the resource supports. Starlette lists
    # those of the first route matching the path only (here POST; GET is a separate route).
    allowed = set(r.headers["allow"].replace(" ", "").split(","))
    assert allowed and allowed <= {"GET", "HEAD", "POST"}


def test_malformed_json_body_is_a_bad_request(world: World) -> None:
    for body in (b'{"reports": [', b"\xff\xfe not utf-8", b""):
        status, problem = post_raw(world, body)
        assert (status, problem["code"]) == (400, "malformed_json"), body


@pytest.mark.parametrize(
    "body",
    [b'{"reports": []}', b"[]", b'{"reports": {}}', b'{"reports": [], "extra": 1}', b"null"],
)
def test_batch_of_wrong_shape_is_invalid(world: World, body: bytes) -> None:
    status, problem = post_raw(world, body)
    assert (status, problem["code"]) == (422, "invalid_request")


def test_batch_over_the_limit_is_too_large(world: World) -> None:
    chip = world.chips["NV-0001"]
    reports = [chip.report() for _ in range(MAX_BATCH + 1)]
    before = row_counts(world.registry)
    r = world.post(reports)
    assert (r.status_code, r.json()["code"]) == (413, "batch_too_large")
    assert r.headers["content-type"] == PROBLEM_JSON
    assert f"at most {MAX_BATCH}" in r.json()["detail"]
    assert row_counts(world.registry) == before
    # Nothing of the refused batch was kept: the same reports, within the limit, go through.
    assert ok(world.post(reports[:MAX_BATCH]))["accepted"] == MAX_BATCH


def test_body_over_the_byte_limit_is_too_large(world: World) -> None:
    padded = b'{"reports": [' + b" " * MAX_BYTES + b"]}"
    status, problem = post_raw(world, padded)
    assert (status, problem["code"]) == (413, "payload_too_large")


def test_docs_are_served_from_the_registry_itself(live_registry: LiveRegistry) -> None:
    with live_registry.client() as http:
        page = http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        html = page.text
        assert '<script src="/static/docs/swagger-ui-bundle.js">' in html
        # No CDN, no absolute URL of any kind: the docs work on an air-gapped network.
        assert "://" not in html
        assert "cdn" not in html.lower()
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert "/static/docs/swagger-ui-bundle.js" in assets
        for asset in assets:
            assert asset.startswith("/static/docs/"), asset
            served = http.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 0
        bundle = http.get("/static/docs/swagger-ui-bundle.js")
        assert "javascript" in bundle.headers["content-type"]
        assert b"SwaggerUIBundle" in bundle.content
        refused(live_registry, None, "GET", "/static/docs/no-such-file.js", (404, "not_found"))


def test_openapi_documents_the_batch_endpoint(live_registry: LiveRegistry) -> None:
    with live_registry.client() as http:
        spec = ok(http.get("/openapi.json"))
    batch = spec["paths"]["/v1/reports/batch"]["post"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["reports"]
    assert schema["properties"]["reports"]["minItems"] == 1
    assert "200" in batch["responses"]
    assert "/docs" not in spec["paths"]
