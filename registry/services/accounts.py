"""Vendors (with their root certificates), operators (with their keys) and API tokens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.certs import load_vendor_root
from attestation.errors import CertificateError, FormatError
from attestation.keys import PublicKey
from attestation.logentries import OPERATOR, VENDOR, timestamp
from registry.auth import Principal, Role, generate_token, hash_token
from registry.db.models import ApiToken, Operator, TokenEvent, Vendor
from registry.errors import AlreadyExists, Conflict, InvalidRequest, NotFound, Unauthenticated
from registry.repositories.accounts import AccountRepository
from registry.services.log import LogAppender

__all__ = ["DIRECT_ACTOR", "AccountService", "IssuedToken"]

logger = logging.getLogger("chipreg.tokens")

#: Who acts when a command works on the database directly (``chipreg admin``), not via the API.
DIRECT_ACTOR = "chipreg admin (database)"


class IssuedToken:
    def __init__(self, record: ApiToken, secret: str) -> None:
        self.record = record
        self.secret = secret


class AccountService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = AccountRepository(session)
        self.log = LogAppender(session)
        self.clock = clock

    def create_vendor(self, name: str, root_certificate_pem: str) -> Vendor:
        try:
            root = load_vendor_root(root_certificate_pem.encode())
        except CertificateError as exc:
            raise InvalidRequest(str(exc), code="bad_certificate") from exc
        if root.name != name:
            raise InvalidRequest(
                f"root certificate names vendor {root.name!r}, not {name!r}",
                code="bad_certificate",
            )
        if self.repo.vendor_by_name(name) or self.repo.vendor_by_fingerprint(root.fingerprint):
            raise AlreadyExists(f"vendor {name!r} or this root is already registered")
        vendor = Vendor(
            name=name,
            root_certificate_pem=root_certificate_pem,
            fingerprint=root.fingerprint,
            created_at=self.clock(),
        )
        self.repo.add(vendor)
        self.log.append_record(
            VENDOR,
            {
                "vendor_id": vendor.id,
                "name": name,
                "root_certificate_pem": root_certificate_pem,
                "fingerprint": root.fingerprint,
                "registered_at": timestamp(vendor.created_at),
            },
            vendor.created_at,
        )
        return vendor

    def create_operator(self, name: str, country: str, public_key: str) -> Operator:
        try:
            PublicKey.from_b64(public_key)
        except FormatError as exc:
            raise InvalidRequest(f"public_key: {exc}", code="bad_public_key") from exc
        if self.repo.operator_by_name(name):
            raise AlreadyExists(f"operator {name!r} already exists")
        operator = Operator(
            name=name, country=country, public_key=public_key, created_at=self.clock()
        )
        self.repo.add(operator)
        # The operator's key goes in the log: auditors check declarations against it.
        self.log.append_record(
            OPERATOR,
            {
                "operator_id": operator.id,
                "name": name,
                "country": country,
                "public_key": public_key,
                "registered_at": timestamp(operator.created_at),
            },
            operator.created_at,
        )
        return operator

    def vendor(self, vendor_id: int) -> Vendor:
        vendor = self.repo.vendor(vendor_id)
        if vendor is None:
            raise NotFound(f"no vendor {vendor_id}", code="unknown_vendor")
        return vendor

    def operator(self, operator_id: int) -> Operator:
        operator = self.repo.operator(operator_id)
        if operator is None:
            raise NotFound(f"no operator {operator_id}", code="unknown_operator")
        return operator

    def create_token(
        self,
        name: str,
        role: Role,
        *,
        vendor_id: int | None = None,
        operator_id: int | None = None,
        actor: Principal | None = None,
    ) -> IssuedToken:
        """Issue a token; ``actor`` is the API caller (None: a direct ``chipreg admin`` call).

        The secret is returned once and never stored, logged or shown again.
        """
        if role is Role.VENDOR:
            if vendor_id is None or operator_id is not None:
                raise InvalidRequest("a vendor token needs vendor_id (only)", code="bad_binding")
            self.vendor(vendor_id)
        elif role is Role.OPERATOR:
            if operator_id is None or vendor_id is not None:
                raise InvalidRequest(
                    "an operator token needs operator_id (only)", code="bad_binding"
                )
            self.operator(operator_id)
        elif vendor_id is not None or operator_id is not None:
            raise InvalidRequest(
                f"a {role.value} token is not bound to a vendor or operator", code="bad_binding"
            )
        secret = generate_token()
        record = ApiToken(
            name=name,
            role=role.value,
            token_hash=hash_token(secret),
            vendor_id=vendor_id,
            operator_id=operator_id,
            created_at=self.clock(),
        )
        self.repo.add(record)
        self._audit(record, "created", "", actor, record.created_at)
        return IssuedToken(record, secret)

    def tokens(self) -> list[ApiToken]:
        """Every token ever issued, revoked ones included (never their secrets)."""
        return self.repo.tokens()

    def token_events(self, token_id: int | None = None) -> list[TokenEvent]:
        return self.repo.token_events(token_id)

    def revoke_token(
        self, token_id: int, *, reason: str, actor: Principal | None = None
    ) -> ApiToken:
        """Revoke a token: every later request with it gets 401 ``token_revoked``.

        Authentication reads the token row on every request (there is no per-process token
        cache), so revocation takes effect on the next request in every worker process.
        """
        record = self.repo.token(token_id)
        if record is None:
            raise NotFound(f"no token {token_id}", code="unknown_token")
        if record.revoked_at is not None:
            raise Conflict(f"token {token_id} is already revoked", code="token_already_revoked")
        if actor is not None and actor.token_id == token_id:
            # Revoking the token you are using is how the last admin locks everyone out.
            raise Conflict("a token cannot revoke itself", code="cannot_revoke_self")
        record.revoked_at = self.clock()
        self._audit(record, "revoked", reason, actor, record.revoked_at)
        return record

    def _audit(
        self,
        record: ApiToken,
        action: str,
        reason: str,
        actor: Principal | None,
        at: datetime,
    ) -> None:
        event = TokenEvent(
            token_id=record.id,
            action=action,
            reason=reason,
            actor_token_id=None if actor is None else actor.token_id,
            actor_name=DIRECT_ACTOR if actor is None else actor.name,
            actor_role=Role.ADMIN.value if actor is None else actor.role.value,
            at=at,
        )
        self.repo.add(event)
        # Names, ids and roles only: the secret is never logged.
        logger.info(
            "token %s: id=%d name=%r role=%s by %s%s",
            action,
            record.id,
            record.name,
            record.role,
            event.actor_name,
            f" reason={reason!r}" if reason else "",
        )

    def authenticate(self, secret: str) -> Principal:
        """The caller behind ``secret``; :class:`Unauthenticated` (distinct codes) otherwise."""
        record = self.repo.token_by_hash(hash_token(secret))
        if record is None:
            raise Unauthenticated("unknown API token", code="invalid_token")
        if record.revoked_at is not None:
            raise Unauthenticated(
                f"API token {record.id} was revoked at {record.revoked_at.isoformat()}",
                code="token_revoked",
            )
        return Principal(
            token_id=record.id,
            name=record.name,
            role=Role(record.role),
            vendor_id=record.vendor_id,
            operator_id=record.operator_id,
        )
