"""Vendors (with their root certificates), operators (with their keys and key history) and API
tokens.

Operator key rotation (docs/PROTOCOL.md 6.3) is an admin act, like registering the operator:
the registry's word, logged as an ``operator_key`` record. Requiring the old key's signature
would not help when rotating matters most, when that key is lost or compromised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.certs import load_vendor_root
from attestation.keys import PublicKey
from attestation.records import OperatorKeyRecord, OperatorRecord, VendorRecord
from registry.auth import Principal, Role, generate_token, hash_token
from registry.db.models import ApiToken, Operator, OperatorKey, TokenEvent, Vendor
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
        root = load_vendor_root(root_certificate_pem.encode())
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
            VendorRecord(
                vendor_id=vendor.id,
                name=name,
                root_certificate_pem=root_certificate_pem,
                fingerprint=root.fingerprint,
                registered_at=vendor.created_at,
            ),
            vendor.created_at,
        )
        return vendor

    def create_operator(self, name: str, country: str, public_key: str) -> Operator:
        PublicKey.from_b64(public_key)
        if self.repo.operator_by_name(name):
            raise AlreadyExists(f"operator {name!r} already exists")
        operator = Operator(
            name=name, country=country, public_key=public_key, created_at=self.clock()
        )
        self.repo.add(operator)
        # The operator's key goes in the log: auditors check declarations against it.
        index = self.log.append_record(
            OperatorRecord(
                operator_id=operator.id,
                name=name,
                country=country,
                public_key=public_key,
                registered_at=operator.created_at,
            ),
            operator.created_at,
        )
        self.repo.add(
            OperatorKey(
                operator_id=operator.id,
                public_key=public_key,
                reason="registered",
                valid_from=operator.created_at,
                log_index=index,
            )
        )
        return operator

    def rotate_operator_key(
        self, caller: Principal, operator_id: int, public_key: str, reason: str
    ) -> OperatorKey:
        """Register ``public_key`` as the operator's declaration key from now on (admin).

        Declarations logged before keep verifying under the key in force at their log position
        (:meth:`operator_key_at`); new ones must be signed by the new key.
        """
        caller.require(Role.ADMIN)
        self.log.lock()  # two rotations at once must not both name the same previous key
        operator = self.operator(operator_id)
        PublicKey.from_b64(public_key)
        if any(k.public_key == public_key for k in self.repo.operator_keys(operator_id)):
            # A retired key may be a compromised one: never bring it back.
            raise Conflict(f"operator {operator_id} has had this key already", code="key_reused")
        now = self.clock()
        previous = operator.public_key
        operator.public_key = public_key
        key = OperatorKey(
            operator_id=operator_id,
            public_key=public_key,
            reason=reason,
            valid_from=now,
            log_index=self.log.append_record(
                OperatorKeyRecord(
                    operator_id=operator_id,
                    public_key=public_key,
                    previous_public_key=previous,
                    reason=reason,
                    declared_by=caller.name,
                    rotated_at=now,
                ),
                now,
            ),
        )
        self.repo.add(key)
        return key

    def operator_keys(self, caller: Principal, operator_id: int) -> list[OperatorKey]:
        """The operator's key history, oldest first (admin, inspector, partner, the operator)."""
        if caller.role is Role.OPERATOR:
            caller.require_operator(operator_id)
        else:
            caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
        self.operator(operator_id)
        return self.repo.operator_keys(operator_id)

    def operator_key_at(self, operator_id: int, log_index: int) -> PublicKey:
        """The key that signed the operator's declarations logged at ``log_index``: the last
        one registered before that position."""
        current = None
        for key in self.repo.operator_keys(operator_id):
            # Keys from before migration 0007 have no log index: the operator's first key.
            if key.log_index is None or key.log_index < log_index:
                current = key
        if current is None:
            raise NotFound(
                f"operator {operator_id} had no key at log index {log_index}",
                code="unknown_operator",
            )
        return PublicKey.from_b64(current.public_key)

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
        return self.principal(record)

    @staticmethod
    def principal(record: ApiToken) -> Principal:
        """The caller a (not revoked) token record stands for."""
        return Principal(
            token_id=record.id,
            name=record.name,
            role=Role(record.role),
            vendor_id=record.vendor_id,
            operator_id=record.operator_id,
        )
