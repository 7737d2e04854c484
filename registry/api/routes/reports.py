"""Usage-report ingest.

The body is decoded by :func:`registry.api.body.json_body` (the strict decoder every route
uses) rather than validated by a pydantic model: at tens of thousands of
reports per second the per-field validation of a model costs more than the signature check,
and the protocol core validates every envelope strictly anyway.

A request is admitted into this process's ingest queue (or refused with 429), prepared on its
own thread (parse and verify, no lock), then committed by the process's group-commit writer
(:mod:`registry.ingest.writer`); the response is sent only after that commit.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from registry import metrics
from registry.api.body import StrictJsonRoute, json_body
from registry.api.context import AppContext
from registry.api.deps import CallerDep, ContextDep, LogDep, SessionDep
from registry.api.problems import problem
from registry.api.schemas.reports import BATCH_SCHEMA, ENVELOPE_SCHEMA, BatchResult, ReportResult
from registry.auth import Role
from registry.errors import InvalidRequest, PayloadTooLarge
from registry.ingest.writer import IngestWriter, sqlite_lock_path
from registry.services.ingest import Accepted, IngestService, Rejected
from registry.services.sequencer_state import KeyCache

router = APIRouter(route_class=StrictJsonRoute, prefix="/v1", tags=["reports"])


JsonBody = Annotated[Any, Depends(json_body)]


def _result(r: Accepted | Rejected) -> ReportResult:
    if isinstance(r, Accepted):
        return ReportResult(r.index, "accepted", r.chip_id, r.seq, r.digest, r.log_index)
    return ReportResult(
        r.index, "rejected", r.chip_id, r.seq, http_status=r.status, code=r.code, detail=r.detail
    )


# JSONResponse's rendering (starlette: ensure_ascii=False, allow_nan=False, compact), built once.
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def _batch_body(results: list[Accepted | Rejected]) -> bytes:
    """The batch response, byte for byte what ``JSONResponse`` renders for the same dicts.

    Written out for accepted reports (the bulk of every response; their fields are ints and
    a validated chip id and hex digest, escaped by the same encoder anyway), rendered from
    :meth:`ReportResult.to_dict` (the one definition of the fields) for rejected ones; a test
    holds the two byte-identical.
    """
    parts = []
    accepted = 0
    for r in results:
        if isinstance(r, Accepted):
            accepted += 1
            parts.append(
                f'{{"index":{r.index},"status":"accepted","chip_id":{_dumps(r.chip_id)},'
                f'"seq":{r.seq},"digest":{_dumps(r.digest)},"log_index":{r.log_index}}}'
            )
        else:
            parts.append(_dumps(_result(r).to_dict()))
    body = (
        f'{{"accepted":{accepted},"rejected":{len(results) - accepted},'
        f'"results":[{",".join(parts)}]}}'
    )
    return body.encode("utf-8")


class IngestPipeline:
    """What ingest keeps per process: the chip-key cache and the group-commit writer."""

    def __init__(self, ctx: AppContext) -> None:
        settings = ctx.settings
        self.keys = KeyCache()
        self.writer = IngestWriter(
            ctx.ingest_engine,
            ctx.log_signer,
            lambda: ctx.clock(),  # noqa: PLW0108 (read ctx.clock at each call: tests swap it)
            max_pending_reports=settings.ingest_max_pending_reports,
            max_group_reports=settings.ingest_max_group_reports,
            retry_after_s=settings.ingest_retry_after_s,
            lock_path=sqlite_lock_path(ctx.engine),
        )


_PIPELINE_LOCK = threading.Lock()


def ingest_pipeline(app: FastAPI) -> IngestPipeline:
    """This process's pipeline for ``app``, created on first use (in each worker process)."""
    pipeline: IngestPipeline | None = getattr(app.state, "ingest", None)
    if pipeline is None:
        with _PIPELINE_LOCK:
            pipeline = getattr(app.state, "ingest", None)
            if pipeline is None:
                pipeline = IngestPipeline(app.state.context)
                app.state.ingest = pipeline
    return pipeline


async def get_pipeline(request: Request) -> IngestPipeline:  # no I/O: no thread hop
    return ingest_pipeline(request.app)


PipelineDep = Annotated[IngestPipeline, Depends(get_pipeline)]


def _ingest(
    envelopes: list[Any],
    *,
    caller: CallerDep,
    session: SessionDep,
    log: LogDep,
    ctx: ContextDep,
    pipeline: IngestPipeline,
) -> list[Accepted | Rejected]:
    started = time.perf_counter()
    with pipeline.writer.admitted(len(envelopes)):
        service = IngestService(
            session, log, ctx.clock, max_skew=timedelta(seconds=ctx.settings.max_clock_skew_s)
        )
        prepared = service.prepare(envelopes, caller, pipeline.keys)
        # End the request's read transaction before waiting on the writer.
        session.commit()
        metrics.VERIFY_SECONDS.observe(prepared.verify_seconds)
        results = pipeline.writer.submit(prepared)
    metrics.INGEST_SECONDS.observe(time.perf_counter() - started)
    metrics.BATCH_SIZE.observe(len(envelopes))
    return results


@router.post(
    "/reports/batch",
    response_model=None,
    responses={200: {"model": BatchResult}},
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": BATCH_SCHEMA}}}
    },
)
def ingest_batch(
    *,
    body: JsonBody,
    caller: CallerDep,
    session: SessionDep,
    log: LogDep,
    ctx: ContextDep,
    pipeline: PipelineDep,
) -> Response:
    """Ingest up to ``CHIPREG_MAX_BATCH_REPORTS`` signed usage reports in one transaction.

    Each report is accepted or rejected on its own; accepted ones are committed and have their
    log index when this returns, and are in a signed checkpoint within about a second. Rejected
    ones carry a code (docs/PROTOCOL.md, section 4). When the registry's ingest queue is full
    the whole request is refused with 429 ``overloaded`` and a
    ``Retry-After`` header; nothing of it was stored.
    """
    caller.require(Role.OPERATOR)
    if (
        not isinstance(body, dict)
        or set(body) != {"reports"}
        or not isinstance(body["reports"], list)
    ):
        raise InvalidRequest('body must be {"reports": [<envelope>, ...]}', code="invalid_request")
    envelopes = body["reports"]
    limit = ctx.settings.max_batch_reports
    if not envelopes:
        raise InvalidRequest("reports must not be empty")
    if len(envelopes) > limit:
        raise PayloadTooLarge(f"at most {limit} reports per batch", code="batch_too_large")
    results = _ingest(
        envelopes, caller=caller, session=session, log=log, ctx=ctx, pipeline=pipeline
    )
    return Response(_batch_body(results), media_type="application/json")


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportResult,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ENVELOPE_SCHEMA}},
        }
    },
)
def ingest_one(
    *,
    body: JsonBody,
    caller: CallerDep,
    session: SessionDep,
    log: LogDep,
    ctx: ContextDep,
    pipeline: PipelineDep,
) -> JSONResponse:
    """Ingest one signed usage report; a rejection is a problem response with its code."""
    caller.require(Role.OPERATOR)
    [result] = _ingest([body], caller=caller, session=session, log=log, ctx=ctx, pipeline=pipeline)
    if isinstance(result, Rejected):
        extra = {
            k: v for k, v in (("chip_id", result.chip_id), ("seq", result.seq)) if v is not None
        }
        return problem(result.status, result.code, result.detail, **extra)
    return JSONResponse(_result(result).to_dict(), status_code=201)
