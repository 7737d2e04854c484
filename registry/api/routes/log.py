"""The transparency log, public: anyone may read it, that is the point."""

from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import BaseModel
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from attestation import tiles
from attestation.errors import FormatError
from attestation.tlog_proof import TlogProof, format_proof
from registry.api.body import StrictJsonRoute
from registry.api.deps import ContextDep, LogDep, SessionDep
from registry.api.schemas.common import Count, Id, UtcDatetime
from registry.errors import BadRequest, NotFound
from registry.services.bundles import BundleService


class CompressLog:
    """gzip for the log's responses when the client asks for it (C2SP tlog-tiles: tiles and
    bundles compress well, and mirrors fetch them in bulk). Only under ``/v1/log/``: ingest
    responses stay uncompressed, their clients ask for gzip by default and the CPU is better
    spent verifying reports."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=256)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(router.prefix + "/"):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


router = APIRouter(route_class=StrictJsonRoute, prefix="/v1/log", tags=["log"])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class LogKey(BaseModel):
    origin: str
    verifier_key: str


class LogEntryPublic(BaseModel):
    index: int
    kind: str
    leaf_hash: str
    body: str
    created_at: str


class LogEntries(BaseModel):
    entries: list[LogEntryPublic]


class InclusionProof(BaseModel):
    index: int
    tree_size: int
    leaf_hash: str
    hashes: list[str]


class ConsistencyProof(BaseModel):
    first: int
    second: int
    hashes: list[str]


@router.get("/checkpoint", response_class=PlainTextResponse)
def get_checkpoint(log: LogDep) -> PlainTextResponse:
    """The latest published checkpoint (C2SP tlog-checkpoint, signed note) with the witnesses'
    C2SP tlog-cosignature lines. A new one is published within about a second of new entries."""
    return PlainTextResponse(
        log.signed_checkpoint(),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/key", response_model=LogKey)
def get_log_key(log: LogDep) -> LogKey:
    """The log's verifier key (``name+keyid+base64``), for pinning by partners."""
    return LogKey(origin=log.signer.origin, verifier_key=log.signer.verifier_key)


@router.get("/entries", response_model=LogEntries)
def list_log_entries(
    log: LogDep,
    start: Annotated[Count, Query()],
    end: Annotated[Count, Query(ge=1)],
) -> LogEntries:
    """Entries with index in [start, end), at most 1000: the exact bytes each leaf commits to."""
    return LogEntries(
        entries=[
            LogEntryPublic(
                index=e.index,
                kind=e.kind,
                leaf_hash=_b64(e.leaf_hash),
                body=_b64(e.body),
                created_at=e.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            for e in log.entries(start, end)
        ]
    )


@router.get("/proof/inclusion", response_model=InclusionProof)
def get_inclusion_proof(
    log: LogDep,
    tree_size: Annotated[Count, Query(ge=1)],
    index: Annotated[Count | None, Query()] = None,
    leaf_hash: Annotated[str | None, Query(description="base64 leaf hash")] = None,
) -> InclusionProof:
    """RFC 6962 inclusion proof for an entry, by index or by leaf hash."""
    if (index is None) == (leaf_hash is None):
        raise BadRequest("give exactly one of index or leaf_hash", code="bad_query")
    if index is None:
        try:
            wanted = base64.b64decode(str(leaf_hash), validate=True)
        except ValueError as exc:
            raise BadRequest("leaf_hash is not base64", code="bad_query") from exc
        index = log.index_of(wanted)
    proof = log.inclusion_proof(index, tree_size)
    [entry] = log.entries(index, index + 1)
    return InclusionProof(
        index=index,
        tree_size=tree_size,
        leaf_hash=_b64(entry.leaf_hash),
        hashes=[_b64(h) for h in proof],
    )


@router.get("/proof/consistency", response_model=ConsistencyProof)
def get_consistency_proof(
    log: LogDep,
    first: Annotated[Count, Query(ge=1)],
    second: Annotated[Count, Query(ge=1)],
) -> ConsistencyProof:
    """RFC 6962 consistency proof between two tree sizes."""
    proof = log.consistency_proof(first, second)
    return ConsistencyProof(first=first, second=second, hashes=[_b64(h) for h in proof])


@router.get("/proof/tlog-proof", response_class=PlainTextResponse)
def get_tlog_proof(
    log: LogDep,
    index: Annotated[Count | None, Query()] = None,
    leaf_hash: Annotated[str | None, Query(description="base64 leaf hash")] = None,
) -> PlainTextResponse:
    """A C2SP tlog-proof (``c2sp.org/tlog-proof@v1``) of one entry against the latest published,
    cosigned checkpoint: verifiable offline with the log's and witnesses' keys."""
    if (index is None) == (leaf_hash is None):
        raise BadRequest("give exactly one of index or leaf_hash", code="bad_query")
    if index is None:
        try:
            wanted = base64.b64decode(str(leaf_hash), validate=True)
        except ValueError as exc:
            raise BadRequest("leaf_hash is not base64", code="bad_query") from exc
        index = log.index_of(wanted)
    size = log.sequenced_size()
    if index >= size:
        raise NotFound(
            f"the log has {size} entries; there is no entry {index}", code="unknown_entry"
        )
    # A sequenced entry is integrated and covered by a checkpoint within about a second.
    published = log.published()
    if published is None or index >= published.size:
        raise NotFound(
            f"entry {index} is not covered by a published checkpoint yet; retry in a second",
            code="not_yet_published",
        )
    proof = log.inclusion_proof(index, published.size)
    text = format_proof(TlogProof(index, tuple(proof), published.cosigned_note))
    return PlainTextResponse(text, media_type="text/plain; charset=utf-8")


_TILE_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}


def _tile_response(data: bytes, partial: bool) -> Response:
    headers = {"Cache-Control": "no-cache"} if partial else _TILE_HEADERS
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get(
    "/tile/{path:path}",
    response_class=Response,
    responses={
        200: {
            "description": "The tile (hashes) or entry bundle, bytes as C2SP tlog-tiles says",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
def get_tile(log: LogDep, path: str) -> Response:
    """C2SP tlog-tiles, read-only: ``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``
    (this prefix, ``/v1/log``, is the tlog-tiles prefix; ``/v1/log/checkpoint`` its checkpoint).
    """
    try:
        level, index, width = tiles.parse_tile_path("tile/" + path)
    except FormatError as exc:  # kept by hand: a path that is no tile names nothing (404)
        raise NotFound(str(exc), code="unknown_tile") from exc
    partial = width < tiles.TILE_WIDTH
    if level is None:
        return _tile_response(log.entry_bundle(index, width), partial)
    return _tile_response(log.tile(level, index, width), partial)


@router.get(
    "/bundle",
    response_class=Response,
    responses={
        200: {
            "description": "The signed audit bundle (docs/AUDIT.md)",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
def get_audit_bundle(
    *,
    log: LogDep,
    session: SessionDep,
    ctx: ContextDep,
    facility_id: Annotated[Id | None, Query()] = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
    start: Annotated[UtcDatetime | None, Query()] = None,
    end: Annotated[UtcDatetime | None, Query()] = None,
) -> Response:
    """A signed audit bundle (docs/AUDIT.md): one facility's or one country's log entries over
    a period, each with its inclusion proof against the latest cosigned checkpoint, signed
    with the log key. ``chipreg audit --bundle`` verifies it with no network."""
    data = BundleService(session, log.signer, ctx.clock).export(
        facility_id=facility_id, country=country, start=start, end=end
    )
    return Response(
        data,
        media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="chipreg-audit-bundle.json"'},
    )
