"""Web console sessions: a token is exchanged once for an opaque session id (the cookie), and
each request resumes the session server-side. Only the id's SHA-256 is stored; each session has
its own CSRF secret that every form must echo. A revoked token ends its sessions at once."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from registry.auth import Principal
from registry.db.models import ConsoleSession
from registry.errors import Unauthenticated
from registry.repositories.console import ConsoleRepository
from registry.services.accounts import AccountService

__all__ = ["ConsoleSessions", "LiveSession"]


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class LiveSession:
    session_id: str
    principal: Principal
    csrf: str


class ConsoleSessions:
    def __init__(self, session: Session, clock: Callable[[], datetime], *, ttl: timedelta) -> None:
        self.session = session
        self.repo = ConsoleRepository(session)
        self.clock = clock
        self.ttl = ttl

    def login(self, token: str) -> LiveSession | None:
        """A new session for a valid token; None if the token is unknown or revoked."""
        try:
            principal = AccountService(self.session, self.clock).authenticate(token.strip())
        except Unauthenticated:
            return None
        now = self.clock()
        self.repo.purge_expired(now)
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        self.repo.add(
            ConsoleSession(
                id_hash=_hash(session_id),
                token_id=principal.token_id,
                csrf=csrf,
                created_at=now,
                expires_at=now + self.ttl,
            )
        )
        return LiveSession(session_id, principal, csrf)

    def resume(self, session_id: str) -> LiveSession | None:
        found = self.repo.live_session(_hash(session_id), self.clock())
        if found is None:
            return None
        record, token = found
        return LiveSession(session_id, AccountService.principal(token), record.csrf)

    def logout(self, session_id: str) -> None:
        self.repo.end(_hash(session_id))
