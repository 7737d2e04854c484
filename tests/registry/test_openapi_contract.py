"""The OpenAPI document is the contract, checked by machine: schemathesis generates requests
for every operation (data that fits the schema and data that does not), sends each with the
token of every role and with none, to a real uvicorn server over a world with data, and fails
on any 5xx and on any status, content type, header or body the document does not declare.

On SQLite and PostgreSQL (ids overflowing PostgreSQL's 32-bit INTEGER columns were 500s there
only). Bounded: ``CHIPREG_CONTRACT_EXAMPLES`` examples per operation and generation mode
(default 5), derandomised so that a run is reproducible; ``CHIPREG_CONTRACT_OPERATIONS=a,b``
(operation ids) limits the run to some operations while working on them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from registry.auth import Role
from tests.conftest import LiveRegistry
from tests.registry.factories import link, make_world, ok

EXAMPLES = int(os.environ.get("CHIPREG_CONTRACT_EXAMPLES", "5"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def role_tokens(registry: LiveRegistry) -> dict[str, str | None]:
    """A token of every role (bound ones to the world's vendor and operator), a bad one, none."""
    world = make_world(registry)
    chip = world.enroll("NV-0001")
    other = world.enroll("NV-0002")
    ok(world.post([chip.report(peers=(link("NV-0002"),)), other.report()]))
    with registry.client(registry.admin_token) as http:
        as_of = datetime(2026, 3, 2, tzinfo=UTC).isoformat()
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": as_of}))
    return {
        "admin": registry.admin_token,
        "vendor": world.vendor_token,
        "operator": world.operator_token,
        "inspector": registry.token(Role.INSPECTOR),
        "partner": registry.token(Role.PARTNER),
        "landmark": registry.token(Role.LANDMARK),
        "meter": registry.token(Role.METER),
        "unknown token": "chipreg_not-a-token",
        "no token": None,
    }


def exchanges(
    operation: Any, mode: GenerationMode, url: str, tokens: dict[str, str | None], session: Any
) -> Any:
    """A hypothesis test: draw a case of ``operation``, send it as every role, check each."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def exchange(data: Any) -> None:
        case = data.draw(operation.as_strategy(generation_mode=mode))
        for role, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            try:
                case.call_and_validate(
                    base_url=url, session=session, headers=headers, checks=CHECKS
                )
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                raise AssertionError(f"as {role}: {exc}") from exc

    return exchange


def test_every_operation_keeps_its_documented_contract(live_registry: LiveRegistry) -> None:
    tokens = role_tokens(live_registry)
    schema = schemathesis.openapi.from_url(live_registry.url + "/openapi.json")
    session = requests.Session()
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 30
    only = os.environ.get("CHIPREG_CONTRACT_OPERATIONS")  # e.g. "get_tile,list_findings"
    if only:
        wanted = set(only.split(","))
        operations = [op for op in operations if op.definition.raw["operationId"] in wanted]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                exchanges(operation, mode, live_registry.url, tokens, session)()
            except Unsatisfiable:
                # Nothing in the request can be made invalid (no parameters, or a free string).
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (AssertionError, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}):\n{exc}")
    session.close()
    assert not failures, "\n\n".join(failures)


def test_the_document_declares_auth_errors_and_readable_ids(live_registry: LiveRegistry) -> None:
    with live_registry.client() as http:
        spec = ok(http.get("/openapi.json"))
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    ids = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            ids.append(op["operationId"])
            assert "_v1_" not in op["operationId"], op["operationId"]
            assert len(op["tags"]) == 1, (method, path, op["tags"])
            public = path.startswith("/v1/log/") or path in ("/healthz", "/metrics")
            assert (op.get("security") is None) == public, (method, path)
            errors = {s: r for s, r in op["responses"].items() if not s.startswith("2")}
            assert {"500", "503"} <= set(errors), (method, path)
            if not public:
                assert {"401", "403"} <= set(errors), (method, path)
            for status, response in errors.items():
                assert response["content"] == problem, (method, path, status)
            assert "Retry-After" in errors["503"]["headers"]
    assert len(ids) == len(set(ids))
    assert {"list_findings", "ingest_batch", "get_tile", "transition_finding"} <= set(ids)
