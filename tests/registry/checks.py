"""Assertions shared by the registry's HTTP tests: a refused request has the right status and
problem ``code``, and it wrote nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from registry.db.base import Base
from tests.conftest import LiveRegistry

PROBLEM_JSON = "application/problem+json"
# Written by the background integrator (tiles) and checkpoint publisher, not by requests.
PUBLISHER_TABLES = frozenset({"log_tiles", "log_checkpoints", "log_cosignatures"})


def row_counts(registry: LiveRegistry) -> dict[str, int]:
    """Rows per table: equal before and after a rejected request means it wrote nothing."""
    with registry.context.sessions() as s:
        return {
            t.name: int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in Base.metadata.sorted_tables
            if t.name not in PUBLISHER_TABLES
        }


def refused(
    registry: LiveRegistry,
    token: str | None,
    method: str,
    path: str,
    expected: tuple[int, str],
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send a request that must be refused with ``expected`` (status, code) and change no row."""
    before = row_counts(registry)
    with registry.client(token) as http:
        r = http.request(method, path, json=json, params=params, headers=headers)
    assert (r.status_code, r.json().get("code")) == expected, r.text
    assert r.headers["content-type"] == PROBLEM_JSON
    assert row_counts(registry) == before
    body: dict[str, Any] = r.json()
    return body
