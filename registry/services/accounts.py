"""Vendors (with their root certificates), operators (with their keys) and API tokens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.certs import load_vendor_root
from attestation.errors import CertificateError, FormatError
from attestation.keys import PublicKey
from attestation.logentries import OPERATOR, VENDOR, timestamp
from registry.auth import Principal, Role, generate_token, hash_token
from registry.db.models import ApiToken, Operator, Vendor
from registry.errors import AlreadyExists, InvalidRequest, NotFound
from registry.repositories.accounts import AccountRepository
from registry.services.log import LogAppender

__all__ = ["AccountService", "IssuedToken"]


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
    ) -> IssuedToken:
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
        return IssuedToken(record, secret)

    def authenticate(self, secret: str) -> Principal | None:
        record = self.repo.token_by_hash(hash_token(secret))
        return None if record is None else self.principal(record)

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
