"""Undeclared-cluster rule, under the demo policy (21 H100 > 2e16 OP/s > 20 H100)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from tests.verifier.factories import (
    ABOVE,
    AT_THRESHOLD,
    BELOW,
    H100,
    T0,
    WINDOW,
    chip,
    chips,
    declared,
    h100_ids,
    report,
    ring_reports,
)
from verifier.clusters import find_undeclared_clusters
from verifier.facts import DeclaredClusterFact, LinkFact, ReportFact, Snapshot
from verifier.findings import Severity
from verifier.policy import Policy


def _snapshot(
    ids: list[str], reports: list[ReportFact], clusters: Sequence[DeclaredClusterFact] = ()
) -> Snapshot:
    return Snapshot(chips(*(chip(i) for i in ids)), reports, list(clusters))


def test_planted_undeclared_cluster_is_caught(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    reports = ring_reports(ids)
    findings = find_undeclared_clusters(_snapshot(ids, reports), demo_policy)

    assert len(findings) == 1
    f = findings[0]
    assert f.rule_id == "cluster.undeclared"
    assert f.rule_version == 1
    assert f.kind == "undeclared_cluster"
    assert (f.policy_id, f.policy_version) == ("demo", "2026.3")
    assert f.severity is Severity.CRITICAL
    assert f.subject_type == "cluster"
    assert f.subject_id.startswith("undeclared-")
    assert (f.facility_id, f.country) == (1, "US")
    assert (f.window_start, f.window_end) == (T0, T0 + WINDOW)
    assert f.evidence == tuple(sorted(r.log_index for r in reports if r.log_index is not None))
    assert len(f.fingerprint) == 64
    assert "14110" in f.citation
    assert "21 chips" in f.summary
    d = f.details
    assert d["chip_ids"] == ids
    assert d["chip_count"] == 21
    assert d["undeclared_chip_ids"] == ids
    assert d["unregistered_peers"] == []
    assert d["total_peak_ops"] == 21 * H100
    assert d["equivalent_h100"] == 21.0
    assert d["facilities"] == {"1": 21}
    assert d["countries"] == {"US": 21}
    assert d["max_pair_throughput_gbps"] == 106.667
    assert d["mean_pair_throughput_gbps"] == 106.667
    assert d["linked_pairs_observed"] == 21
    assert d["windows_observed"] == 1
    assert d["link_threshold_bits_per_s"] == 100e9
    assert d["compute_threshold_ops_per_s"] == 2e16


def test_component_just_below_compute_threshold_is_ignored(demo_policy: Policy) -> None:
    ids = h100_ids(20)  # 1.978e16 OP/s
    assert find_undeclared_clusters(_snapshot(ids, ring_reports(ids)), demo_policy) == []


def test_traffic_just_below_bandwidth_threshold_is_ignored(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    snapshot = _snapshot(ids, ring_reports(ids, BELOW))
    assert find_undeclared_clusters(snapshot, demo_policy) == []


def test_traffic_exactly_at_bandwidth_threshold_is_not_over_it(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    snapshot = _snapshot(ids, ring_reports(ids, AT_THRESHOLD))
    assert find_undeclared_clusters(snapshot, demo_policy) == []


def test_declared_cluster_is_not_flagged(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    exact = _snapshot(ids, ring_reports(ids), [declared(7, ids)])
    superset = _snapshot(ids, ring_reports(ids), [declared(7, [*ids, "gpu-spare"])])
    assert find_undeclared_clusters(exact, demo_policy) == []
    assert find_undeclared_clusters(superset, demo_policy) == []


def test_declaration_ending_mid_window_does_not_cover_it(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    partial = declared(7, ids, end=T0 + timedelta(minutes=5))
    findings = find_undeclared_clusters(_snapshot(ids, ring_reports(ids), [partial]), demo_policy)
    assert len(findings) == 1
    assert findings[0].details["undeclared_chip_ids"] == ids
    assert findings[0].details["related_declared_cluster_ids"] == [7]


def test_declaration_starting_mid_window_does_not_cover_it(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    late = declared(7, ids, start=T0 + timedelta(minutes=1))
    assert (
        len(find_undeclared_clusters(_snapshot(ids, ring_reports(ids), [late]), demo_policy)) == 1
    )


def test_declaration_covering_part_of_the_chips_flags_the_rest(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    findings = find_undeclared_clusters(
        _snapshot(ids, ring_reports(ids), [declared(7, ids[:15])]), demo_policy
    )
    assert len(findings) == 1
    assert findings[0].details["undeclared_chip_ids"] == ids[15:]


def test_two_declarations_together_do_not_cover_one_cluster(demo_policy: Policy) -> None:
    # Two declared clusters secretly wired together are one undeclared, larger cluster.
    ids = h100_ids(21)
    clusters = [declared(1, ids[:10]), declared(2, ids[10:])]
    findings = find_undeclared_clusters(_snapshot(ids, ring_reports(ids), clusters), demo_policy)
    assert len(findings) == 1
    assert findings[0].details["undeclared_chip_ids"] == []
    assert findings[0].details["related_declared_cluster_ids"] == [1, 2]


def test_chain_is_transitively_connected(demo_policy: Policy) -> None:
    big = chips(*(chip(c, peak=1e16, model="B-next") for c in ("a", "b", "c")))
    reports = [report("a", {"b": ABOVE}), report("b", {"c": ABOVE}), report("c")]
    findings = find_undeclared_clusters(Snapshot(big, reports, []), demo_policy)
    assert len(findings) == 1
    assert findings[0].details["chip_ids"] == ["a", "b", "c"]
    assert findings[0].details["linked_pairs_observed"] == 2


def test_one_sided_report_forms_the_edge(demo_policy: Policy) -> None:
    big = chips(chip("a", peak=1.5e16), chip("b", peak=1.5e16))
    silent_about_a = [report("a", {"b": ABOVE}), report("b", {})]
    b_never_reported = [report("a", {"b": ABOVE})]
    b_claims_little = [report("a", {"b": ABOVE}), report("b", {"a": 10_000})]
    for reports in (silent_about_a, b_never_reported, b_claims_little):
        findings = find_undeclared_clusters(Snapshot(big, reports, []), demo_policy)
        assert [f.details["chip_ids"] for f in findings] == [["a", "b"]]


def test_link_kinds_to_one_peer_are_summed(demo_policy: Policy) -> None:
    big = chips(chip("a", peak=1.5e16), chip("b", peak=1.5e16))
    half = ABOVE // 2  # each link kind alone is below 100 Gbit/s
    links = (LinkFact("b", "nvlink", half, 0), LinkFact("b", "infiniband", 0, half))
    reports = [ReportFact("a", 1, T0, T0 + WINDOW, 0.9, 6e5, links, 1)]
    assert len(find_undeclared_clusters(Snapshot(big, reports, []), demo_policy)) == 1


def test_duplicate_report_of_a_window_is_not_double_counted(demo_policy: Policy) -> None:
    big = chips(chip("a", peak=1.5e16), chip("b", peak=1.5e16))
    half = ABOVE // 2
    reports = [report("a", {"b": half}, seq=1), report("a", {"b": half}, seq=2)]
    assert find_undeclared_clusters(Snapshot(big, reports, []), demo_policy) == []


def test_unregistered_peers_count_as_edges_with_no_compute(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    reports = [*ring_reports(ids), report(ids[0], {"ghost-1": ABOVE}, seq=2)]
    findings = find_undeclared_clusters(_snapshot(ids, reports), demo_policy)
    assert len(findings) == 1
    d = findings[0].details
    assert d["unregistered_peers"] == ["ghost-1"]
    assert d["chip_count"] == 22
    assert d["registered_chip_count"] == 21
    assert d["total_peak_ops"] == 21 * H100

    # Twenty registered chips plus an unknown one are still below the compute threshold.
    ids20 = ids[:20]
    reports20 = [*ring_reports(ids20), report(ids20[0], {"ghost-1": ABOVE}, seq=2)]
    assert find_undeclared_clusters(_snapshot(ids20, reports20), demo_policy) == []


def test_declaration_of_registered_chips_covers_component_with_unregistered_peer(
    demo_policy: Policy,
) -> None:
    ids = h100_ids(21)
    reports = [*ring_reports(ids), report(ids[0], {"ghost-1": ABOVE}, seq=2)]
    assert find_undeclared_clusters(_snapshot(ids, reports, [declared(3, ids)]), demo_policy) == []


def test_same_cluster_in_several_windows_is_merged(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    reports = [r for k in range(3) for r in ring_reports(ids, start=T0 + k * WINDOW, seq=k + 1)]
    findings = find_undeclared_clusters(_snapshot(ids, reports), demo_policy)
    assert len(findings) == 1
    f = findings[0]
    assert (f.window_start, f.window_end) == (T0, T0 + 3 * WINDOW)
    assert f.details["windows_observed"] == 3
    windows = f.details["windows"]
    assert isinstance(windows, list)
    assert windows[0] == ["2026-03-02T12:00:00Z", "2026-03-02T12:15:00Z"]
    assert len(windows) == 3
    assert len(f.evidence) == 63
    assert f.evidence == tuple(sorted(f.evidence))


def test_merged_cluster_keeps_its_fingerprint_as_it_persists(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    first = ring_reports(ids)
    later = ring_reports(ids, start=T0 + WINDOW, seq=2)
    once = find_undeclared_clusters(_snapshot(ids, first), demo_policy)
    twice = find_undeclared_clusters(_snapshot(ids, first + later), demo_policy)
    assert once[0].fingerprint == twice[0].fingerprint
    assert once[0].window_end != twice[0].window_end


def test_different_chip_sets_in_different_windows_are_separate(demo_policy: Policy) -> None:
    ids = h100_ids(22)
    reports = [*ring_reports(ids[:21]), *ring_reports(ids[1:], start=T0 + WINDOW, seq=2)]
    findings = find_undeclared_clusters(_snapshot(ids, reports), demo_policy)
    assert len(findings) == 2
    assert {f.window_start for f in findings} == {T0, T0 + WINDOW}


def test_cluster_split_across_facilities_is_one_cluster(demo_policy: Policy) -> None:
    ids = h100_ids(22)
    fleet = chips(
        *(
            chip(c, facility=2 if n < 11 else 1, country="DE" if n < 11 else "FR")
            for n, c in enumerate(ids)
        )
    )
    findings = find_undeclared_clusters(Snapshot(fleet, ring_reports(ids), []), demo_policy)
    assert len(findings) == 1
    f = findings[0]
    assert f.details["facilities"] == {"1": 11, "2": 11}
    assert f.details["countries"] == {"DE": 11, "FR": 11}
    assert (f.facility_id, f.country) == (1, "DE")  # ties go to the lowest
    assert "2 facilities" in f.summary


def test_reports_without_log_index_are_not_evidence(demo_policy: Policy) -> None:
    ids = h100_ids(21)
    reports = [
        report(c, {n: ABOVE}, log_index=None) for c, n in zip(ids, ids[1:] + ids[:1], strict=True)
    ]
    findings = find_undeclared_clusters(_snapshot(ids, reports), demo_policy)
    assert len(findings) == 1
    assert findings[0].evidence == ()


def test_default_policy_needs_treaty_scale(default_policy: Policy) -> None:
    ids = h100_ids(21)
    assert find_undeclared_clusters(_snapshot(ids, ring_reports(ids)), default_policy) == []
