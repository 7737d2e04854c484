"""The console's log pages: the signed checkpoint, a search, one entry with its inclusion proof."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from attestation.errors import ProofError
from attestation.merkle import verify_inclusion
from registry.api.deps import ContextDep, SessionDep
from registry.api.schemas.common import INT64_MAX, Count
from registry.console.base import (
    LiveDep,
    _page,
    router,
)
from registry.errors import BadRequest, NotFound
from registry.services.entries import DecodedEntry, EntryDecoder
from registry.services.log import TransparencyLog

# -- the log -----------------------------------------------------------------------------


def _decode(decoder: EntryDecoder, log: TransparencyLog, index: int) -> DecodedEntry | None:
    found = log.entries(index, index + 1)
    return decoder.decode(found[0]) if found else None


@router.get("/log")
def log_page(
    request: Request,
    live: LiveDep,
    session: SessionDep,
    ctx: ContextDep,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    log = TransparencyLog(session, ctx.log_signer)
    if q:
        q = q.strip()
        if q.isascii() and q.isdigit():
            if int(q) > INT64_MAX:
                raise NotFound(f"no log entry {q}", code="unknown_entry")
            return RedirectResponse(f"/console/log/{int(q)}", status_code=303)
        try:
            leaf = base64.b64decode(q, validate=True)
        except (binascii.Error, ValueError):
            try:
                leaf = bytes.fromhex(q)
            except ValueError as exc:
                raise BadRequest(
                    "search by index, or leaf hash in base64 or hex", code="bad_query"
                ) from exc
        return RedirectResponse(f"/console/log/{log.index_of(leaf)}", status_code=303)
    size, root = log.head()
    return _page(
        request,
        live,
        "log.html",
        size=size,
        root=root,
        published=log.published(),
        checkpoint=log.signed_checkpoint(),
        witnesses=ctx.settings.witnesses,
    )


@router.get("/log/{index}")
def log_entry(
    request: Request, index: Count, live: LiveDep, session: SessionDep, ctx: ContextDep
) -> Response:
    log = TransparencyLog(session, ctx.log_signer)
    entry = _decode(EntryDecoder(session), log, index) if index >= 0 else None
    if entry is None:
        raise NotFound(f"no log entry {index}", code="unknown_entry")
    published = log.published()
    proof: list[bytes] | None = None
    verified = False
    if published is not None and index < published.size:
        proof = log.inclusion_proof(index, published.size)
        try:
            verify_inclusion(
                leaf_hash=entry.leaf_hash,
                index=index,
                tree_size=published.size,
                proof=proof,
                root=published.root_hash,
            )
            verified = True
        except ProofError:
            verified = False
    return _page(
        request, live, "entry.html", e=entry, published=published, proof=proof, verified=verified
    )
