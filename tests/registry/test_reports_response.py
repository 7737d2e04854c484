"""The batch response is written out by hand; it must be what JSONResponse renders for the one
definition of its fields (:mod:`attestation.batchresult`), which the agent parses back."""

from __future__ import annotations

import json

import pytest
from fastapi.responses import JSONResponse

from attestation.batchresult import BatchResult, ReportResult
from attestation.errors import FormatError
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
            "results": [_result(r).to_dict() for r in results],
        }
    ).body
    assert _batch_body(results) == want

    # The agent reads back exactly what the registry meant.
    parsed = BatchResult.from_dict(json.loads(_batch_body(results)))
    assert parsed.results == tuple(_result(r) for r in results)
    assert (parsed.accepted, parsed.rejected) == (2, 2)
    assert [r.acknowledged for r in parsed.results] == [True, False, False, True]


def test_result_wire_form_keeps_the_documented_fields_in_order() -> None:
    accepted = ReportResult(0, "accepted", "NV-1", 8, "ab" * 32, 1042)
    assert list(accepted.to_dict()) == ["index", "status", "chip_id", "seq", "digest", "log_index"]
    rejected = ReportResult(
        1, "rejected", "NV-1", 7, http_status=409, code="replayed_report", detail="d"
    )
    assert list(rejected.to_dict()) == [
        "index", "status", "http_status", "code", "detail", "chip_id", "seq"
    ]  # fmt: skip
    assert rejected.acknowledged and not rejected.retry_later
    bare = ReportResult(2, "rejected", http_status=400, code="malformed_report", detail="d")
    assert "chip_id" not in bare.to_dict() and ReportResult.from_dict(bare.to_dict()) == bare


@pytest.mark.parametrize(
    "doc",
    [
        [],
        {"accepted": 1, "rejected": 0},
        {"accepted": 1, "rejected": 0, "results": [{"index": 0, "status": "maybe"}]},
        {"accepted": 1, "rejected": 0, "results": [{"index": 0, "status": "accepted"}]},
        {"accepted": True, "rejected": 0, "results": []},
        {"accepted": 2, "rejected": 0, "results": [
            {"index": 0, "status": "accepted", "chip_id": "a", "seq": 1, "digest": "d",
             "log_index": 0}
        ]},
        {"accepted": 0, "rejected": 1, "results": [
            {"index": "0", "status": "rejected", "http_status": 409, "code": "c", "detail": "d"}
        ]},
    ],
)  # fmt: skip
def test_a_batch_result_that_is_not_one_is_a_format_error(doc: object) -> None:
    with pytest.raises(FormatError):
        BatchResult.from_dict(doc)
