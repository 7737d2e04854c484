"""Who looked at what (treaty confidentiality): every read of non-public data by an inspector
or a partner is recorded (who, when, which path and query, over the API or the console) in the
transaction of the request, and admins read the record."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from registry.auth import Principal, Role
from registry.db.models import ReadAccess
from registry.errors import Forbidden
from registry.repositories.console import ConsoleRepository

__all__ = ["AUDITED_ROLES", "AccessLog", "require_detail"]

AUDITED_ROLES = frozenset({Role.INSPECTOR, Role.PARTNER})


class AccessLog:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = ConsoleRepository(session)
        self.clock = clock

    def record(self, caller: Principal, *, channel: str, path: str, query: str) -> None:
        """Record the read if the caller's role is audited (a no-op otherwise)."""
        if caller.role not in AUDITED_ROLES:
            return
        self.repo.add(
            ReadAccess(
                token_id=caller.token_id,
                actor_name=caller.name,
                actor_role=caller.role.value,
                at=self.clock(),
                channel=channel,
                # The path arrives percent-decoded: spell U+0000 as sent (PostgreSQL cannot
                # store it in text, and the read is refused as 422 afterwards anyway).
                path=path.replace("\x00", "%00")[:2000],
                query=query.replace("\x00", "%00")[:2000],
            )
        )

    def list(
        self, caller: Principal, *, token_id: int | None, limit: int, offset: int
    ) -> tuple[list[ReadAccess], int]:
        caller.require(Role.ADMIN)
        return self.repo.accesses(token_id=token_id, limit=limit, offset=offset)


def require_detail(caller: Principal, *, partner_aggregates_only: bool) -> None:
    """Per-chip detail is refused to partners when the policy limits them to aggregates."""
    if partner_aggregates_only and caller.role is Role.PARTNER:
        raise Forbidden(
            "partners read aggregates per facility and country here "
            "(GET /v1/inventory/aggregates), not per-chip detail",
            code="aggregates_only",
        )
