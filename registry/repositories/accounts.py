"""Vendors, operators and API tokens."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import ApiToken, Operator, OperatorKey, TokenEvent, Vendor

__all__ = ["AccountRepository"]


class AccountRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: Vendor | Operator | ApiToken | OperatorKey | TokenEvent) -> None:
        self.session.add(obj)
        self.session.flush()

    def vendor(self, vendor_id: int) -> Vendor | None:
        return self.session.get(Vendor, vendor_id)

    def vendor_by_name(self, name: str) -> Vendor | None:
        return self.session.scalar(select(Vendor).where(Vendor.name == name))

    def vendor_by_fingerprint(self, fingerprint: str) -> Vendor | None:
        return self.session.scalar(select(Vendor).where(Vendor.fingerprint == fingerprint))

    def vendors(self) -> list[Vendor]:
        return list(self.session.scalars(select(Vendor).order_by(Vendor.id)))

    def operator(self, operator_id: int) -> Operator | None:
        return self.session.get(Operator, operator_id)

    def operator_by_name(self, name: str) -> Operator | None:
        return self.session.scalar(select(Operator).where(Operator.name == name))

    def operators(self) -> list[Operator]:
        return list(self.session.scalars(select(Operator).order_by(Operator.id)))

    def operator_keys(self, operator_id: int) -> list[OperatorKey]:
        """The operator's keys in the order they were registered."""
        return list(
            self.session.scalars(
                select(OperatorKey)
                .where(OperatorKey.operator_id == operator_id)
                .order_by(OperatorKey.id)
            )
        )

    def token_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, revoked or not (the caller tells the two apart)."""
        return self.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))

    def token(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def tokens(self) -> list[ApiToken]:
        return list(self.session.scalars(select(ApiToken).order_by(ApiToken.id)))

    def token_events(self, token_id: int | None = None) -> list[TokenEvent]:
        query = select(TokenEvent).order_by(TokenEvent.id)
        if token_id is not None:
            query = query.where(TokenEvent.token_id == token_id)
        return list(self.session.scalars(query))
