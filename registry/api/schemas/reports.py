"""Report ingest results (the request body is parsed by hand for speed; see routes/reports.py)."""

from __future__ import annotations

from attestation.batchresult import BatchResult, ReportResult

# The result classes are defined once, in attestation.batchresult (the agent reads them too);
# the OpenAPI document declares them from there.
__all__ = ["BATCH_SCHEMA", "ENVELOPE_SCHEMA", "BatchResult", "ReportResult"]


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
