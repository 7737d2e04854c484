"""The chain rule and the one set of rejection codes (docs/PROTOCOL.md 4.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agents.client import ACKNOWLEDGED_CODES, RETRY_LATER_CODES
from attestation.chain import RejectionCode, judge
from attestation.keys import PrivateKey
from attestation.report import GENESIS_DIGEST, UsageReport, report_digest, sign_report
from registry.services.ingest import REJECTION_STATUS

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
KEY = PrivateKey.from_seed(bytes(32))
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md"


@dataclass
class Head:
    seq: int = 0
    digest: str = GENESIS_DIGEST
    window_end: datetime | None = None


def signed(
    seq: int, prev: str, start: datetime, utilization: float = 0.5
) -> tuple[UsageReport, str]:
    report = UsageReport(
        chip_id="c1",
        key_id=KEY.public_key.key_id,
        seq=seq,
        prev_digest=prev,
        window_start=start,
        window_end=start + WINDOW,
        utilization=utilization,
        energy_j=1.0,
        interconnect=(),
    )
    return report, report_digest(sign_report(report, KEY).payload)


def test_each_chain_code_next_to_the_next_link() -> None:
    first, d1 = signed(1, GENESIS_DIGEST, T0)
    assert judge(Head(), first, d1, lambda s: None) is None
    head = Head(1, d1, T0 + WINDOW)
    second, d2 = signed(2, d1, T0 + WINDOW)
    assert judge(head, second, d2, lambda s: None) is None
    assert judge(head, first, d1, lambda s: None) is RejectionCode.REPLAYED_REPORT
    other, d1b = signed(1, GENESIS_DIGEST, T0, utilization=0.9)
    assert judge(head, other, d1b, lambda s: None) is RejectionCode.SEQUENCE_REUSED
    skip, d3 = signed(3, d1, T0 + WINDOW)
    assert judge(head, skip, d3, lambda s: None) is RejectionCode.SEQUENCE_GAP
    forked, df = signed(2, "ab" * 32, T0 + WINDOW)
    assert judge(head, forked, df, lambda s: None) is RejectionCode.BROKEN_HASH_CHAIN
    early, de = signed(2, d1, T0 + WINDOW - timedelta(seconds=1))
    assert judge(head, early, de, lambda s: None) is RejectionCode.WINDOW_OUT_OF_ORDER
    # An earlier report is looked up only for a replay or a reuse.
    later = Head(2, d2, T0 + 2 * WINDOW)
    assert judge(later, first, d1, {1: d1}.get) is RejectionCode.REPLAYED_REPORT
    assert judge(later, other, d1b, {1: d1}.get) is RejectionCode.SEQUENCE_REUSED


def test_one_set_of_codes_for_ingest_agent_and_protocol() -> None:
    assert set(REJECTION_STATUS) == set(RejectionCode)
    assert set(RejectionCode) >= ACKNOWLEDGED_CODES | RETRY_LATER_CODES
    table = PROTOCOL.read_text().split("### 4.2 Rejection codes", 1)[1].split("###", 1)[0]
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", table, re.MULTILINE))
    assert documented == {str(c): str(s) for c, s in REJECTION_STATUS.items()}
