"""Liveness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from registry import metrics
from registry.api.deps import LogDep, SessionDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(session: SessionDep) -> dict[str, str]:
    session.execute(text("SELECT 1"))
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def prometheus(log: LogDep) -> Response:
    size, _ = log.head()
    metrics.LOG_SIZE.set(size)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
