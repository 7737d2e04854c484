"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from registry import metrics
from registry.api.body import StrictJsonRoute
from registry.api.deps import ContextDep, LogDep, SessionDep

router = APIRouter(route_class=StrictJsonRoute, tags=["health"])


@router.get("/healthz")
def get_health(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def get_metrics(log: LogDep, ctx: ContextDep) -> Response:
    state = log.repo.state()
    integrated, updated_at = (state.size, state.updated_at) if state is not None else (0, None)
    body = metrics.exposition(log.sequenced_size(), updated_at, ctx.clock(), integrated)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
