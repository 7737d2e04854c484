"""What the model modules share: the id type of big tables and the hash chain's genesis."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer

__all__ = ["GENESIS", "BigId"]

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT for big tables.
BigId = BigInteger().with_variant(Integer, "sqlite")

GENESIS = "0" * 64
