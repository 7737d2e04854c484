"""The batch response is written out by hand; it must be what JSONResponse renders."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from registry.api.routes.reports import _batch_body, _result
from registry.services.ingest import Accepted, Rejected


def test_batch_body_is_what_json_response_renders() -> None:
    results: list[Accepted | Rejected] = [
        Accepted(0, "NV-H100-0001", 7, "ab" * 32, 41),
        Rejected(1, "sequence_gap", "expected seq 3 for 'NV-H100-0002', got 5", "NV-H100-0002", 5),
        Rejected(2, "malformed_report", 'predicate: unknown field(s) "\u00e9\\n"\u2028'),
        Accepted(3, "a.b:c-d_e", 2**62, "00" * 32, 0),
    ]
    accepted = sum(1 for r in results if isinstance(r, Accepted))
    want = JSONResponse(
        {
            "accepted": accepted,
            "rejected": len(results) - accepted,
            "results": [_result(r) for r in results],
        }
    ).body
    assert _batch_body(results) == want
