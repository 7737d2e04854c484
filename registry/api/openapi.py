"""The OpenAPI document: every error each operation can answer, as the problem documents the
server really sends (``application/problem+json``), with bearer auth and readable operation ids.

FastAPI documents only the success response and its own 422 schema; the registry's errors are
raised deep in services, so the statuses each operation can give are derived here from what the
operation takes (a token, a body, path parameters) plus a table of the domain errors of each
(kept next to :mod:`registry.api.problems`, the one place errors become HTTP). The schemathesis
run in the test suite (tests/registry/test_openapi_contract.py) fails on any status or body
that this document does not declare.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from registry.api.problems import MEDIA_TYPE

__all__ = ["DOMAIN_ERRORS", "install_openapi", "operation_id"]

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem document; `code` is stable (docs/PROTOCOL.md, errors).",
    "type": "object",
    "required": ["type", "title", "status", "code", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "422 `invalid_request`: every failed constraint; 422 "
            "`batch_rejected` (`POST /v1/chips/batch`): every refused item",
            "items": {
                "anyOf": [
                    {
                        "title": "ConstraintError",
                        "type": "object",
                        "required": ["loc", "msg", "type"],
                        "properties": {
                            "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                            "msg": {"type": "string"},
                            "type": {"type": "string"},
                        },
                    },
                    {
                        "title": "RefusedItem",
                        "type": "object",
                        "required": ["index", "status", "code", "detail"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "chip_id": {"type": ["string", "null"]},
                            "status": {"type": "integer", "minimum": 400, "maximum": 599},
                            "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                            "detail": {"type": "string"},
                        },
                    },
                ]
            },
        },
    },
    "additionalProperties": True,
}

_WHAT = {
    400: "Malformed request (`malformed_json`, `duplicate_json_key`, or the operation's own codes)",
    401: "No, unknown or revoked token (`unauthenticated`, `invalid_token`, `token_revoked`)",
    403: "The token's role or binding may not do this (`role_not_allowed`, `not_your_*`)",
    404: "Something named in the request does not exist (`unknown_*`)",
    409: "Conflicts with the registry's state (`already_exists`, ...)",
    413: "Body or batch over the limits (`payload_too_large`, `batch_too_large`)",
    422: "A value is outside its documented range or shape (`invalid_request`, ...)",
    429: "The ingest queue is full (`overloaded`): retry after `Retry-After` seconds",
    500: "A bug (`internal_error`); the registry's log has the details",
    503: "The database is unavailable (`database_unavailable`): nothing was stored; retry "
    "after `Retry-After` seconds",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before retrying",
        "schema": {"type": "integer", "minimum": 1},
    }
}

# The domain errors of each operation (by operation id) beyond those every operation of its
# shape can give (see _statuses). A status missing here fails the schemathesis contract test.
DOMAIN_ERRORS: dict[str, frozenset[int]] = {
    "create_vendor": frozenset({409}),
    "create_operator": frozenset({409}),
    "create_token": frozenset({404}),
    "create_facility": frozenset({404, 409}),
    "enroll_chip": frozenset({404, 409}),
    "install_chip": frozenset({404, 409}),
    "declare_cluster": frozenset({404, 409}),
    "ingest_batch": frozenset({429}),
    "ingest_one": frozenset({404, 409, 429}),
    "register_landmark": frozenset({409}),
    "register_meter": frozenset({404, 409}),
    "post_measurement": frozenset({404, 409}),
    "post_reading": frozenset({404, 409}),
    "transition_finding": frozenset({409}),
    "create_webhook": frozenset({409}),
    "list_log_entries": frozenset({400}),
    "get_inclusion_proof": frozenset({400, 404}),
    "get_consistency_proof": frozenset({400}),
    "get_tlog_proof": frozenset({400, 404}),
    "get_tile": frozenset({404}),
    "get_audit_bundle": frozenset({404}),
    "enroll_chips": frozenset({404, 409}),
    "revoke_token": frozenset({409}),
    "rotate_operator_key": frozenset({409}),
    "decommission_chip": frozenset({409}),
    "revoke_chip": frozenset({409}),
    "transfer_chip": frozenset({404, 409}),
    "issue_gpu_challenge": frozenset({409}),
    "issue_reattestation_challenge": frozenset({409}),
    "submit_reattestation": frozenset({409}),
}


def operation_id(route: APIRoute) -> str:
    """The route's function name: ``list_findings``, ``get_tile`` (unique across the API)."""
    return route.name


def _statuses(operation: dict[str, Any]) -> set[int]:
    statuses = {500, 503}
    if operation.get("security"):
        statuses |= {401, 403}
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 413}
    if any(p.get("in") == "path" for p in parameters):
        statuses.add(404)
    return statuses | DOMAIN_ERRORS.get(str(operation.get("operationId")), frozenset())


def _problem_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {_WHAT[status]}",
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in (429, 503):
        response["headers"] = _RETRY_AFTER
    return response


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare every error response of every operation as a problem document."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            for status in sorted(_statuses(operation)):
                responses[str(status)] = _problem_response(status)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that returns the completed document (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    openapi_version=app.openapi_version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    setattr(app, "openapi", openapi)  # noqa: B010 (FastAPI's documented way to customise it)
