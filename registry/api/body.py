"""The one way a request body becomes JSON: bounded in size and depth, decoded strictly.

Every route is a :class:`StrictJsonRoute`, which decodes a JSON body before FastAPI does and
leaves the result where FastAPI (and :func:`json_body`) look for it, so no body anywhere is
read with the lenient ``json.loads`` (which lets the last of two duplicate keys win, turns
``1e999`` into infinity and overflows the stack on deep nesting).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from attestation._json import loads_strict
from attestation.errors import DuplicateKeyError, FormatError
from registry.errors import InvalidRequest, PayloadTooLarge

__all__ = ["MAX_JSON_DEPTH", "StrictJsonRoute", "decode_json", "json_body"]

# Deeper than any document of the protocol (reports nest 4 levels) and far below the
# interpreter's recursion limit, so every later step can recurse over what was accepted.
MAX_JSON_DEPTH = 32


def _has_nul(value: dict[str, Any] | list[Any]) -> bool:
    stack: list[dict[str, Any] | list[Any]] = [value]
    while stack:
        item = stack.pop()
        for child in (*item, *item.values()) if isinstance(item, dict) else item:
            if isinstance(child, str) and "\x00" in child:
                return True
            if isinstance(child, (dict, list)):
                stack.append(child)
    return False


def decode_json(body: bytes) -> Any:
    """``body`` as JSON; FormatError ``duplicate_json_key`` or ``malformed_json`` (400), or
    InvalidRequest for a string holding U+0000."""
    try:
        value = loads_strict(body, "body", max_depth=MAX_JSON_DEPTH)
    except FormatError as exc:
        # Answered by the one mapping (registry.errors.from_core), as 400: a duplicate key with
        # its own code, anything else a body names malformed JSON.
        if not isinstance(exc, DuplicateKeyError):
            exc.code = "malformed_json"
        raise
    # PostgreSQL cannot store U+0000 in text, SQLite truncates at it in places: refuse it in
    # any string (keys too). In JSON it can only be spelled as an escape, so look only then.
    if b"\\u0000" in body and _has_nul([value]):
        raise InvalidRequest("strings must not contain U+0000", code="invalid_request")
    return value


async def _read_body(request: Request) -> bytes:
    limit: int = request.app.state.context.settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes")
    return body


async def json_body(request: Request) -> Any:
    """The body decoded by :func:`decode_json`, whatever its content type (ingest routes)."""
    if not hasattr(request, "_json"):
        request._json = decode_json(await _read_body(request))
    return request._json


def _is_json(content_type: str | None) -> bool:
    # FastAPI's own rule for when it decodes a body as JSON: no content type, or
    # application/json, or application/<anything>+json.
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class StrictJsonRoute(APIRoute):
    """An API route whose JSON body is size-bounded and strictly decoded before FastAPI sees it.

    Starlette's ``Request.json()`` returns ``request._json`` when it is set; FastAPI reads the
    body through it, so setting it here replaces the lenient decoder for every body model.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            if request.method not in ("GET", "HEAD", "OPTIONS"):
                body = await _read_body(request)
                if body and _is_json(request.headers.get("content-type")):
                    await json_body(request)
            return await handler(request)

        return strict_handler
