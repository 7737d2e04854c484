"""Report ingest results (the request body is parsed by hand for speed; see routes/reports.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["BatchResult", "ReportResult"]


class ReportResult(BaseModel):
    index: int
    status: Literal["accepted", "rejected"]
    chip_id: str | None = None
    seq: int | None = None
    digest: str | None = None
    log_index: int | None = None
    http_status: int | None = None
    code: str | None = None
    detail: str | None = None


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ReportResult]


ENVELOPE_SCHEMA = {
    "type": "object",
    "required": ["payload", "payloadType", "signatures"],
    "additionalProperties": False,
    "properties": {
        "payload": {"type": "string", "description": "base64 of the in-toto statement bytes"},
        "payloadType": {"type": "string", "enum": ["application/vnd.in-toto+json"]},
        "signatures": {
            "type": "array",
            "minItems": 1,
            "maxItems": 1,
            "items": {
                "type": "object",
                "required": ["sig"],
                "properties": {"keyid": {"type": "string"}, "sig": {"type": "string"}},
            },
        },
    },
}

BATCH_SCHEMA = {
    "type": "object",
    "required": ["reports"],
    "additionalProperties": False,
    "properties": {"reports": {"type": "array", "items": ENVELOPE_SCHEMA, "minItems": 1}},
}
