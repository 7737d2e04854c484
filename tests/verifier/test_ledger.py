"""The one snapshot of the evidence ledger: each cut and boundary of docs/PROTOCOL.md 9.2 next
to its near miss (the registry, the audit and the simulator all rely on these)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from verifier.facts import FacilityFact, ReportFact, SubmissionFact
from verifier.ledger import (
    BudgetRecord,
    ChipRecord,
    ChipStatusRecord,
    ClusterRecord,
    ConditionRecord,
    FacilityRecord,
    InstallationRecord,
    Ledger,
    NotificationRecord,
    snapshot,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)


def facility(fid: int, operator: int, country: str, index: int) -> FacilityRecord:
    return FacilityRecord(FacilityFact(fid, operator, country, 0.0, 0.0), index)


def report(seq: int, start: datetime, index: int, source: str | None = None) -> ReportFact:
    return ReportFact("c1", seq, start, start + H, 0.5, 1.0, (), index, source=source)


LEDGER = Ledger(
    chips=[
        ChipRecord("c1", "H100", 989e12, 700.0, "NVIDIA", 2),
        ChipRecord("c2", "H100", 989e12, 700.0, "NVIDIA", 20),  # enrolled late
    ],
    facilities=[facility(1, 7, "US", 0), facility(2, 8, "CA", 1)],
    installations=[
        InstallationRecord("c1", 1, T0, 3),
        InstallationRecord("c1", 2, T0 + 5 * H, 10),  # a transfer to operator 8
    ],
    conditions=[
        ConditionRecord("c1", frozenset({"US", "CA", "DE"}), T0, 4),
        ConditionRecord("c1", frozenset({"CA", "FR"}), T0 + 2 * H, 5),
    ],
    statuses=[ChipStatusRecord("c1", T0 + 9 * H, 14)],
    clusters=[ClusterRecord(6, "run", frozenset({"c1"}), T0, T0 + 24 * H, 1, 6)],
    budgets=[BudgetRecord(6, 1e24, 7), BudgetRecord(6, 5e24, 12)],
    notifications=[NotificationRecord(6, 1e25, T0 + 3 * H, T0, 8)],
    reports=[
        report(1, T0, 9, source="operator:8"),  # delivered by whoever: logged under 7
        report(2, T0 + 5 * H, 11),
        report(3, T0 + 8 * H, 13),
    ],
    submissions=[
        SubmissionFact("c1", 1, "d", T0, T0 + H, T0 + 3 * H, "replayed_report", log_index=15),
    ],
)


def test_custody_changes_when_the_next_stay_begins() -> None:
    before = snapshot(LEDGER, as_of=T0 + 5 * H)
    assert before.chips["c1"].facility_id == 1  # the transfer at exactly as_of is not yet
    after = snapshot(LEDGER, as_of=T0 + 5 * H + timedelta(seconds=1))
    assert (after.chips["c1"].facility_id, after.chips["c1"].operator_id) == (2, 8)
    assert [(i.facility_id, i.end) for i in after.installations] == [(1, T0 + 5 * H), (2, None)]


def test_the_log_cut_hides_later_records() -> None:
    cut = snapshot(LEDGER, as_of=T0 + 24 * H, cut=10)
    assert set(cut.chips) == {"c1"}  # c2's enrollment is past the cut
    assert cut.chips["c1"].facility_id == 1  # so is the transfer
    assert cut.clusters[0].compute_budget_flop == 1e24  # the latest revision below the cut
    assert [r.seq for r in cut.reports] == [1]
    full = snapshot(LEDGER, as_of=T0 + 24 * H)
    assert set(full.chips) == {"c1", "c2"}
    assert full.clusters[0].compute_budget_flop == 5e24


def test_conditions_intersect_from_when_each_takes_effect() -> None:
    assert snapshot(LEDGER, as_of=T0 + H).chips["c1"].allowed_countries == {"US", "CA", "DE"}
    assert snapshot(LEDGER, as_of=T0 + 2 * H).chips["c1"].allowed_countries == {"CA"}


def test_retirement_and_notices_by_receipt() -> None:
    assert snapshot(LEDGER, as_of=T0 + 9 * H).chips["c1"].retired_at == T0 + 9 * H
    assert snapshot(LEDGER, as_of=T0 + 9 * H - timedelta(seconds=1)).chips["c1"].retired_at is None
    assert snapshot(LEDGER, as_of=T0 + 3 * H).clusters[0].notifications == ()
    later = snapshot(LEDGER, as_of=T0 + 3 * H + timedelta(seconds=1))
    assert [n.threshold_flop for n in later.clusters[0].notifications] == [1e25]


def test_reports_by_window_and_evidence_by_receipt() -> None:
    snap = snapshot(LEDGER, as_of=T0 + 8 * H, since=T0 + H)
    assert [r.seq for r in snap.reports] == [2]  # seq 1 ends at since, seq 3 starts at as_of
    assert snap.submissions == []  # its window ended at since
    assert len(snapshot(LEDGER, as_of=T0 + 3 * H + timedelta(seconds=1)).submissions) == 1
    assert snapshot(LEDGER, as_of=T0 + 3 * H).submissions == []


def test_a_reports_source_is_the_custodian_the_log_shows() -> None:
    # The delivering operator is not in a usage report's log entry: the custodian when it was
    # logged is what a partner can tell, so that is what every source says.
    snap = snapshot(LEDGER, as_of=T0 + 24 * H)
    assert [r.source for r in snap.reports] == ["operator:7", "operator:8", "operator:8"]
