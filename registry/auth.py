"""API tokens and roles: who is calling, and what each role may do.

Tokens are random bearer secrets shown once; only their SHA-256 is stored (they carry 256 bits
of entropy, so a slow password hash would add cost without adding safety).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from registry.errors import Forbidden

__all__ = ["Principal", "Role", "generate_token", "hash_token"]

TOKEN_PREFIX = "chipreg_"  # noqa: S105  (a public prefix that makes tokens greppable)


class Role(StrEnum):
    ADMIN = "admin"
    VENDOR = "vendor"
    OPERATOR = "operator"
    INSPECTOR = "inspector"
    PARTNER = "partner"
    LANDMARK = "landmark"  # a location landmark's server: challenges and RTT measurements
    METER = "meter"  # a facility power meter's gateway: signed energy readings


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    token_id: int
    name: str
    role: Role
    vendor_id: int | None = None
    operator_id: int | None = None

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise Forbidden(
                f"role {self.role.value!r} may not do this (allowed: {allowed})",
                code="role_not_allowed",
            )

    def require_operator(self, operator_id: int) -> None:
        """Admins act for anyone; an operator token acts only for its own operator."""
        if self.role is Role.ADMIN:
            return
        self.require(Role.OPERATOR)
        if self.operator_id != operator_id:
            raise Forbidden(
                f"this token acts for operator {self.operator_id}, not {operator_id}",
                code="not_your_operator",
            )

    def require_vendor(self, vendor_id: int) -> None:
        if self.role is Role.ADMIN:
            return
        self.require(Role.VENDOR)
        if self.vendor_id != vendor_id:
            raise Forbidden(
                f"this token acts for vendor {self.vendor_id}, not {vendor_id}",
                code="not_your_vendor",
            )
