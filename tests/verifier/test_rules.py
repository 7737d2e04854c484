"""Every playbook rule beyond the foundation two: a planted violation it catches and a near
miss it ignores, under the demo policy (thresholds in verifier/policies/demo.toml)."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest

from tests.verifier.factories import ABOVE, H100, T0, WINDOW, chip, chips, declared, h100_ids
from verifier.compute import THRESHOLD_RULE_ID
from verifier.engine import run
from verifier.facts import (
    ChipFact,
    ClusterNotificationFact,
    FacilityFact,
    HostPowerFact,
    InstallationFact,
    LandmarkFact,
    LinkFact,
    MeterReadingFact,
    ReportFact,
    RttMeasurementFact,
    Snapshot,
    SubmissionFact,
)
from verifier.findings import Finding, rfc3339
from verifier.policy import Policy

AS_OF = T0 + WINDOW
SECONDS = WINDOW.total_seconds()
# Facilities: 1 Abilene (US), 2 Hamina (FI), 3 Dublin (IE).
FACILITIES = {
    1: FacilityFact(1, 1, "US", 32.4487, -99.7331, 500.0, 1.3, 0.0),
    2: FacilityFact(2, 2, "FI", 60.5693, 27.1878, 500.0, 1.2, 0.0),
    3: FacilityFact(3, 2, "IE", 53.3147, -6.4370, 500.0, 1.3, 0.0),
}
# Landmarks: Dallas (near Abilene, ~290 km), Helsinki (~130 km from Hamina).
LANDMARKS = {10: LandmarkFact(10, 32.7767, -96.7970), 11: LandmarkFact(11, 60.1699, 24.9384)}
_log = iter(range(5000, 10**6))


def rep(
    chip_id: str,
    peers: dict[str, int] | None = None,
    *,
    start: object = T0,
    seq: int = 1,
    util: float = 0.5,
    energy: float = 350.0 * SECONDS,
    facility: int | None = None,
    digest: str | None = None,
    source: str | None = None,
) -> ReportFact:
    links = tuple(LinkFact(p, "nvlink", b // 2, b - b // 2) for p, b in (peers or {}).items())
    s = T0 if start is None else start
    assert isinstance(s, type(T0))
    return ReportFact(
        chip_id,
        seq,
        s,
        s + WINDOW,
        util,
        energy,
        links,
        next(_log),
        facility_id=facility,
        digest=digest,
        received_at=s + WINDOW + timedelta(seconds=5),
        source=source,
    )


def h(chip_id: str, facility: int = 1, **kw: object) -> ChipFact:
    country = FACILITIES[facility].country
    base = chip(chip_id, facility=facility, country=country)
    return dataclasses.replace(base, peak_power_w=700.0, **kw)  # type: ignore[arg-type]


def snap(fleet: list[ChipFact], reports: list[ReportFact], **kw: object) -> Snapshot:
    return Snapshot(
        chips(*fleet),
        reports,
        kw.pop("clusters", []),  # type: ignore[arg-type]
        facilities=kw.pop("facilities", FACILITIES),  # type: ignore[arg-type]
        landmarks=LANDMARKS,
        **kw,  # type: ignore[arg-type]
    )


def rules(findings: list[Finding]) -> set[str]:
    return {f.rule_id for f in findings}


def found(policy: Policy, snapshot: Snapshot, rule_id: str) -> list[Finding]:
    return [f for f in run(snapshot, policy, AS_OF) if f.rule_id == rule_id]


def mutual(ids: list[str], per_pair: int) -> list[ReportFact]:
    """A ring in which both ends of every pair report the same bytes."""
    n = len(ids)
    peers: dict[str, dict[str, int]] = {c: {} for c in ids}
    for i, c in enumerate(ids):
        nxt = ids[(i + 1) % n]
        peers[c][nxt] = per_pair
        peers[nxt][c] = per_pair
    return [rep(c, peers[c], util=0.9, energy=600.0 * SECONDS) for c in ids]


# --- cluster.split -------------------------------------------------------------------------


def _split(per_pair_cross: int) -> Snapshot:
    a, b = h100_ids(12, "fi"), h100_ids(12, "ie")
    reports = mutual(a, ABOVE) + mutual(b, ABOVE)
    # One cross-site link per pair of rails at the given rate, reported by both ends.
    bridge = {r.chip_id: r for r in reports}
    for x, y in zip(a[:4], b[:4], strict=True):
        for one, two in ((x, y), (y, x)):
            r = bridge[one]
            bridge[one] = dataclasses.replace(
                r,
                links=(
                    *r.links,
                    LinkFact(two, "infiniband", per_pair_cross // 2, per_pair_cross // 2),
                ),
            )
    fleet = [h(c, 2) for c in a] + [h(c, 3) for c in b]
    sets = [declared(1, a, facility=2), declared(2, b, facility=3)]
    return snap(fleet, list(bridge.values()), clusters=sets)


def test_split_cluster_is_caught(demo_policy: Policy) -> None:
    cross = int(30e9 * SECONDS / 8)  # 30 Gbit/s between sites
    [f] = found(demo_policy, _split(cross), "cluster.split")
    assert f.details["chip_count"] == 24
    assert f.details["peak_ops_by_facility"] == {"2": 12 * H100, "3": 12 * H100}
    assert f.severity.value == "critical"
    assert f.evidence


def test_slow_cross_site_link_is_not_a_split(demo_policy: Policy) -> None:
    cross = int(20e9 * SECONDS / 8)  # 20 Gbit/s: below the 25 Gbit/s inter-site threshold
    assert found(demo_policy, _split(cross), "cluster.split") == []


# --- link.one_sided ------------------------------------------------------------------------


def test_one_sided_link_is_caught(demo_policy: Policy) -> None:
    reports = [rep("a", {"b": int(5e9 * SECONDS / 8)}), rep("b", {})]
    [f] = found(demo_policy, snap([h("a"), h("b")], reports), "link.one_sided")
    assert f.subject_id == "a|b"
    assert f.details["peer_registered"] is True
    assert set(f.evidence) == {r.log_index for r in reports}


def test_link_to_unregistered_peer_is_one_sided(demo_policy: Policy) -> None:
    reports = [rep("a", {"ghost": int(5e9 * SECONDS / 8)})]
    [f] = found(demo_policy, snap([h("a")], reports), "link.one_sided")
    assert f.details["peer_registered"] is False


def test_both_ends_within_tolerance_are_fine(demo_policy: Policy) -> None:
    v = int(5e9 * SECONDS / 8)
    reports = [rep("a", {"b": v}), rep("b", {"a": int(v * 0.85)})]
    assert found(demo_policy, snap([h("a"), h("b")], reports), "link.one_sided") == []


def test_peer_that_did_not_report_is_left_to_the_silence_rule(demo_policy: Policy) -> None:
    reports = [rep("a", {"b": int(5e9 * SECONDS / 8)})]
    assert found(demo_policy, snap([h("a"), h("b")], reports), "link.one_sided") == []


def test_light_one_sided_traffic_is_ignored(demo_policy: Policy) -> None:
    reports = [rep("a", {"b": int(0.5e9 * SECONDS / 8)}), rep("b", {})]
    assert found(demo_policy, snap([h("a"), h("b")], reports), "link.one_sided") == []


# --- chip.underreporting (peers) -----------------------------------------------------------


def _peers(gbps: float, util: float, model: str = "H100-SXM") -> Snapshot:
    """Chip b claims ``util``; its three peers together claim ``gbps`` (both directions) with
    it, averaged over the window."""
    v = int(gbps * 1e9 * SECONDS / 8 / 3)
    reports = [rep(p, {"b": v}) for p in ("a", "c", "d")]
    reports.append(rep("b", {p: v for p in ("a", "c", "d")}, util=util, energy=70 * SECONDS))
    fleet = [h("a"), h("b", model=model), h("c"), h("d")]
    return snap(fleet, reports)


def test_idle_claim_contradicted_by_peers(demo_policy: Policy) -> None:
    # 400 Gbit/s at 1% busy would need 40 Tbit/s of links; an H100 has 8 Tbit/s.
    [f] = found(demo_policy, _peers(400, 0.01), "chip.underreporting")
    assert (f.subject_id, f.details["channel"]) == ("b", "peers")
    assert f.details["samples"][0]["carried_gbps_max"] == 160.0  # 8e12 x the 2% floor


def test_idle_chip_with_management_traffic_is_fine(demo_policy: Policy) -> None:
    v = int(2e9 * SECONDS / 8)
    reports = [rep("a", {"b": v}), rep("b", {"a": v}, util=0.01, energy=70 * SECONDS)]
    assert found(demo_policy, snap([h("a"), h("b")], reports), "chip.underreporting") == []


def test_short_communication_heavy_job_is_honest(demo_policy: Policy) -> None:
    # A crash-looping multi-GPU job: 20-40 s of all-reduce per window, 3% busy, 38.8 Gbit/s of
    # window-averaged traffic (the false alarm of issue 14): 8 Tbit/s x 3% = 240 Gbit/s carried.
    assert found(demo_policy, _peers(38.8, 0.03), "chip.underreporting") == []


def test_work_hidden_behind_short_bursts_is_caught(demo_policy: Policy) -> None:
    # Really busy 20% of the window at training traffic (~6 Tbit/s), claims 3%.
    [f] = found(demo_policy, _peers(0.2 * 6000, 0.03), "chip.underreporting")
    assert f.details["samples"][0]["carried_gbps_max"] == 240.0


def test_link_capacity_follows_the_chip_model(demo_policy: Policy) -> None:
    # 200 Gbit/s at 2%: above an H100's 160 Gbit/s, within a B200's 304 Gbit/s.
    assert found(demo_policy, _peers(200, 0.02), "chip.underreporting") != []
    assert (
        found(demo_policy, _peers(200, 0.02, model="B200-SXM-192GB"), "chip.underreporting") == []
    )
    # An unknown model gets the largest capacity in the table.
    assert found(demo_policy, _peers(200, 0.02, model="X1"), "chip.underreporting") == []


# --- chip.above_peak -----------------------------------------------------------------------


def test_compute_above_peak_is_caught(demo_policy: Policy) -> None:
    [f] = found(demo_policy, snap([h("a")], [rep("a", util=1.3)]), "chip.above_peak")
    assert f.details["max_utilization"] == 1.3


def test_energy_above_peak_is_caught(demo_policy: Policy) -> None:
    [f] = found(demo_policy, snap([h("a")], [rep("a", energy=900 * SECONDS)]), "chip.above_peak")
    assert f.details["max_energy_over_peak"] == pytest.approx(900 / 700, abs=1e-3)


def test_full_load_at_peak_is_fine(demo_policy: Policy) -> None:
    report = rep("a", util=1.0, energy=700 * SECONDS * 1.04)
    assert found(demo_policy, snap([h("a")], [report]), "chip.above_peak") == []


# --- location.rtt_mismatch -----------------------------------------------------------------


def _rtt(chip_id: str, landmark: int, ms: float, n: int = 0) -> RttMeasurementFact:
    return RttMeasurementFact(
        landmark, chip_id, f"nonce{n}", ms, T0 + n * timedelta(minutes=1), next(_log)
    )


def test_chip_too_close_to_a_far_landmark(demo_policy: Policy) -> None:
    # Declared in Abilene, but Helsinki answers in 3 ms: within 300 km of Helsinki.
    s = snap([h("a")], [rep("a")], rtts=[_rtt("a", 11, 3.0), _rtt("a", 10, 140.0)])
    [f] = found(demo_policy, s, "location.rtt_mismatch")
    assert f.details["contradicting_landmarks"][0]["verdict"] == "too_fast"
    assert f.details["consistent_facility_ids"] == [2]


def test_chip_too_slow_for_a_nearby_landmark(demo_policy: Policy) -> None:
    ms = [_rtt("a", 10, 95.0 + i, i) for i in range(3)]
    [f] = found(demo_policy, snap([h("a")], [rep("a")], rtts=ms), "location.rtt_mismatch")
    assert f.details["contradicting_landmarks"][0]["verdict"] == "too_slow"
    assert len(f.evidence) == 3


def test_rtts_at_the_declared_site_are_fine(demo_policy: Policy) -> None:
    # Dallas-Abilene ~290 km: 2.9 ms is the bound (with slack 50 km: 2.4 ms still fine).
    ms = [
        _rtt("a", 10, 2.5),
        _rtt("a", 11, 160.0, 1),
        _rtt("a", 10, 30.0, 2),
        _rtt("a", 10, 31.0, 3),
    ]
    assert found(demo_policy, snap([h("a")], [rep("a")], rtts=ms), "location.rtt_mismatch") == []


def test_a_chip_moved_after_a_home_measurement_is_too_slow_in_its_own_window(
    demo_policy: Policy,
) -> None:
    # Window 0: three fast round trips from home. Window 2: relayed from far away, three slow
    # ones. The fastest ever seen (2.5 ms) must not excuse window 2 (issue 14).
    later = T0 + 2 * WINDOW
    ms = [_rtt("a", 10, 2.5 + i, i) for i in range(3)] + [
        dataclasses.replace(
            _rtt("a", 10, 95.0 + i, 10 + i), measured_at=later + timedelta(minutes=i)
        )
        for i in range(3)
    ]
    reports = [rep("a"), rep("a", start=T0 + WINDOW, seq=2), rep("a", start=later, seq=3)]
    [f] = found(demo_policy, snap([h("a")], reports, rtts=ms), "location.rtt_mismatch")
    [slow] = f.details["contradicting_landmarks"]
    assert (slow["verdict"], slow["slow_windows"], slow["fastest_rtt_ms"]) == ("too_slow", 1, 95.0)
    assert len(f.evidence) == 3
    assert f.window_start == later


def test_slow_round_trips_spread_over_windows_need_enough_in_one(demo_policy: Policy) -> None:
    # Three slow round trips, one per window: each window has too few to judge "too slow".
    ms = [
        dataclasses.replace(
            _rtt("a", 10, 95.0, i), measured_at=T0 + i * WINDOW + timedelta(minutes=1)
        )
        for i in range(3)
    ]
    reports = [rep("a", start=T0 + i * WINDOW, seq=i + 1) for i in range(3)]
    assert found(demo_policy, snap([h("a")], reports, rtts=ms), "location.rtt_mismatch") == []


def test_installation_history_decides_the_declared_site(demo_policy: Policy) -> None:
    stays = [
        InstallationFact("a", 1, T0 - timedelta(days=10), T0 - timedelta(days=1)),
        InstallationFact("a", 2, T0 - timedelta(days=1)),
    ]
    s = snap([h("a", 2)], [rep("a")], rtts=[_rtt("a", 11, 3.0)], installations=stays)
    assert found(demo_policy, s, "location.rtt_mismatch") == []


# --- report.wrong_facility -----------------------------------------------------------------


def test_report_claiming_another_facility(demo_policy: Policy) -> None:
    [f] = found(demo_policy, snap([h("a")], [rep("a", facility=2)]), "report.wrong_facility")
    assert (f.subject_id, f.facility_id, f.details["declared_facility_ids"]) == ("a", 2, [1])


def test_report_from_the_declared_facility_is_fine(demo_policy: Policy) -> None:
    assert found(demo_policy, snap([h("a")], [rep("a", facility=1)]), "report.wrong_facility") == []


# --- chip.forbidden_country ----------------------------------------------------------------


def test_chip_declared_in_a_forbidden_country(demo_policy: Policy) -> None:
    fleet = [h("a", 2, allowed_countries=frozenset({"US", "IE"}))]
    [f] = found(demo_policy, snap(fleet, [rep("a")]), "chip.forbidden_country")
    assert (f.country, f.details["allowed_countries"]) == ("FI", ["IE", "US"])


def test_chip_reporting_from_a_forbidden_country(demo_policy: Policy) -> None:
    fleet = [h("a", 1, allowed_countries=frozenset({"US"}))]
    [f] = found(demo_policy, snap(fleet, [rep("a", facility=2)]), "chip.forbidden_country")
    assert f.details["places"][0]["how"] == "reported"


def test_chip_in_an_allowed_country_is_fine(demo_policy: Policy) -> None:
    fleet = [h("a", 3, allowed_countries=frozenset({"US", "IE"})), h("b", 2)]
    assert found(demo_policy, snap(fleet, [rep("a"), rep("b")]), "chip.forbidden_country") == []


# --- identity.clone and report.replay ------------------------------------------------------


def _sub(outcome: str, digest: str, received: timedelta, **kw: object) -> SubmissionFact:
    return SubmissionFact(
        "a",
        1,
        digest,
        T0,
        T0 + WINDOW,
        T0 + WINDOW + received,
        outcome,
        **kw,  # type: ignore[arg-type]
    )


def test_same_seq_with_different_content_is_a_clone(demo_policy: Policy) -> None:
    original = rep("a", digest="d1", facility=1)
    other = _sub("sequence_reused", "d2", timedelta(seconds=30), facility_id=3)
    [f] = found(demo_policy, snap([h("a")], [original], submissions=[other]), "identity.clone")
    assert f.details["claimed_facility_ids"] == [1, 3]
    assert f.evidence == (original.log_index,)


def test_overlapping_windows_with_different_seqs_are_a_clone(demo_policy: Policy) -> None:
    reports = [rep("a", digest="d1", seq=1), rep("a", digest="d2", seq=2)]
    assert len(found(demo_policy, snap([h("a")], reports), "identity.clone")) == 1


def test_retry_of_the_same_report_is_not_a_clone_or_replay(demo_policy: Policy) -> None:
    original = rep("a", digest="d1", source="op:1")
    retry = _sub("replayed_report", "d1", timedelta(minutes=2), source="op:1")
    findings = run(snap([h("a")], [original], submissions=[retry]), demo_policy, AS_OF)
    assert {"identity.clone", "report.replay"}.isdisjoint(rules(findings))


def test_late_copy_is_a_replay(demo_policy: Policy) -> None:
    original = rep("a", digest="d1", source="op:1")
    late = _sub("replayed_report", "d1", timedelta(days=2), source="op:1")
    [f] = found(demo_policy, snap([h("a")], [original], submissions=[late]), "report.replay")
    assert f.details["replays"][0]["why"] == "late"


def test_copy_from_another_sender_is_a_replay(demo_policy: Policy) -> None:
    original = rep("a", digest="d1", source="op:1")
    copy = _sub("replayed_report", "d1", timedelta(minutes=1), source="op:2")
    [f] = found(demo_policy, snap([h("a")], [original], submissions=[copy]), "report.replay")
    assert f.details["replays"][0]["why"] == "other_source"


def test_replay_delay_is_measured_from_the_receipt_the_evidence_states(
    demo_policy: Policy,
) -> None:
    # The log states an accepted report's receipt only in the evidence that names it as the
    # original; the registry's own receipt time (not logged) must not change the finding, or a
    # partner replaying the log derives another one (issue 10: the two-signature transfer).
    from dataclasses import replace

    original = rep("a", digest="d1", source="op:1")
    unlogged = replace(original, received_at=T0 + WINDOW + timedelta(days=3))
    named = _sub(
        "replayed_report",
        "d1",
        timedelta(days=2),
        source="op:2",
        original_received_at=T0 + WINDOW + timedelta(days=2) - timedelta(minutes=1),
    )
    [f] = found(demo_policy, snap([h("a")], [unlogged], submissions=[named]), "report.replay")
    assert f.details["replays"][0]["delay_s"] == 60.0
    # A copy that names no original (delivered before the original was accepted): judged from
    # the original's window end, whatever the registry's table says.
    early = _sub("forbidden", "d1", timedelta(minutes=45), source="op:2")
    [g] = found(demo_policy, snap([h("a")], [unlogged], submissions=[early]), "report.replay")
    assert g.details["replays"][0]["delay_s"] == 2700.0


# --- power.ghost_chips and chip.underreporting (meter) --------------------------------------


def _metered(extra_chips: float, idle: int = 0) -> Snapshot:
    fleet = [h(f"g{i}") for i in range(20)]
    reports = [
        rep(c.chip_id, util=0.01 if i < idle else 0.8, energy=(70 if i < idle else 600) * SECONDS)
        for i, c in enumerate(fleet)
    ]
    chip_j = sum(r.energy_j for r in reports)
    site = FACILITIES[1]
    # True draw: chips x 1.15 host overhead x PUE, plus hidden chips at 650 W with the same factors.
    metered = (chip_j + extra_chips * 650 * SECONDS) * 1.15 * site.pue
    reading = MeterReadingFact(7, 1, T0, T0 + WINDOW, metered, next(_log))
    return snap(fleet, reports, meter_readings=[reading])


def test_ghost_chips_are_caught(demo_policy: Policy) -> None:
    [f] = found(demo_policy, _metered(16), "power.ghost_chips")
    assert f.subject_id == "1"
    assert 5 < f.details["max_chip_equivalents"] < 16


def test_few_unexplained_watts_are_within_tolerance(demo_policy: Policy) -> None:
    assert found(demo_policy, _metered(2), "power.ghost_chips") == []


def test_idle_claims_contradicted_by_the_meter(demo_policy: Policy) -> None:
    # Eight chips claim idle, but the meter shows about eight working chips' worth more.
    s = _metered(0, idle=8)
    reading = s.meter_readings[0]
    more = dataclasses.replace(reading, energy_j=reading.energy_j + 8 * 530 * SECONDS * 1.15 * 1.3)
    s = dataclasses.replace(s, meter_readings=[more])
    [f] = found(demo_policy, s, "chip.underreporting")
    assert f.details["channel"] == "meter"
    assert f.details["idle_chip_count"] == 8


def test_honest_idle_chips_under_an_honest_meter_are_fine(demo_policy: Policy) -> None:
    assert found(demo_policy, _metered(0, idle=8), "chip.underreporting") == []


# Host power model: 64 chips on 8 hosts at 10% utilization. True hosts: 1,200 W idle + 8 x 60 W
# per slot + 1,500 W x mean utilization (real hosts: a large constant that dominates when idle).
TRUE_HOSTS = HostPowerFact(gpus_per_host=8, idle_w=1200.0, per_gpu_slot_w=60.0, busy_w=1500.0)


def _hosted(declared: HostPowerFact | None, ghosts: int = 0) -> Snapshot:
    fleet = [h(f"q{i:02d}") for i in range(64)]
    reports = [rep(c.chip_id, util=0.1, energy=130 * SECONDS) for c in fleet]
    site = dataclasses.replace(FACILITIES[1], host_power=declared)
    chip_j = sum(r.energy_j for r in reports)
    host_j = TRUE_HOSTS.watts(64, 6.4) * SECONDS
    metered = (chip_j + host_j + ghosts * 650 * SECONDS * 1.15) * site.pue
    reading = MeterReadingFact(7, 1, T0, T0 + WINDOW, metered, next(_log))
    return snap(fleet, reports, meter_readings=[reading], facilities={**FACILITIES, 1: site})


def test_undeclared_host_power_cries_wolf_at_low_utilization(demo_policy: Policy) -> None:
    # The fixed 25% overhead explains 2 kW of the 14.6 kW these hosts draw (issue 14).
    assert found(demo_policy, _hosted(None), "power.ghost_chips") != []


def test_declared_host_power_explains_an_honest_facility(demo_policy: Policy) -> None:
    assert found(demo_policy, _hosted(TRUE_HOSTS), "power.ghost_chips") == []
    # Declared 8% low: within the model's 10% uncertainty.
    low = dataclasses.replace(TRUE_HOSTS, idle_w=1200.0 * 0.92, busy_w=1500 * 0.92)
    assert found(demo_policy, _hosted(low), "power.ghost_chips") == []


def test_ghost_chips_behind_a_declared_host_model_are_caught(demo_policy: Policy) -> None:
    [f] = found(demo_policy, _hosted(TRUE_HOSTS, ghosts=12), "power.ghost_chips")
    assert f.details["host_model"]["idle_w"] == 1200.0


def test_host_power_declared_too_low_is_caught(demo_policy: Policy) -> None:
    half = dataclasses.replace(TRUE_HOSTS, idle_w=600.0, busy_w=750.0)
    assert found(demo_policy, _hosted(half), "power.ghost_chips") != []


def test_inflated_host_declaration_cannot_hide_ghost_chips(demo_policy: Policy) -> None:
    # 80 ghost chips (60 kW) hidden in a declared 5 kW idle per host (40 kW for 8 hosts): the
    # declaration counts for at most 600 W per declared GPU (38.4 kW, 24 kW above the truth),
    # which leaves about 36 kW unexplained. (The cap's price: below it, an inflated
    # declaration hides up to 600 W minus the true host power per declared GPU.)
    inflated = dataclasses.replace(TRUE_HOSTS, idle_w=5000.0)
    [f] = found(demo_policy, _hosted(inflated, ghosts=80), "power.ghost_chips")
    assert f.details["host_w_max"] == 600.0 * 64


# --- cluster.budget_exceeded and cluster.threshold_unnotified -------------------------------

# 64 H100 at 90% for one window: 64 * 989e12 * 0.9 * 900 = 5.13e19 FLOP.
PER_WINDOW = 64 * H100 * 0.9 * SECONDS


def _training(windows: int, **kw: object) -> Snapshot:
    ids = h100_ids(64, "train")
    reports = [
        rep(c, start=T0 + k * WINDOW, seq=k + 1, util=0.9, energy=600 * SECONDS)
        for k in range(windows)
        for c in ids
    ]
    cluster = dataclasses.replace(declared(1, ids, end=T0 + timedelta(days=30)), **kw)  # type: ignore[arg-type]
    return snap([h(c) for c in ids], reports, clusters=[cluster])


def test_budget_exceeded(demo_policy: Policy) -> None:
    s = _training(4, compute_budget_flop=2.5 * PER_WINDOW)
    [f] = found(demo_policy, s, "cluster.budget_exceeded")
    assert f.window_start == T0 + 2 * WINDOW  # the third window crossed it


def test_within_budget_is_fine(demo_policy: Policy) -> None:
    assert (
        found(
            demo_policy,
            _training(4, compute_budget_flop=4.05 * PER_WINDOW),
            "cluster.budget_exceeded",
        )
        == []
    )


THRESHOLD_WINDOWS = int(2e21 // PER_WINDOW) + 2
# The window in which the training run's cumulative compute passes 2e21 FLOP ends here.
CROSSED = T0 + (int(2e21 // PER_WINDOW) + 1) * WINDOW
DAY = timedelta(days=1)


def _with_grace(policy: Policy, grace_s: float) -> Policy:
    rule = policy.rules[THRESHOLD_RULE_ID]
    params = {**rule.params, "notification_grace_s": grace_s}
    rules = {**policy.rules, THRESHOLD_RULE_ID: dataclasses.replace(rule, params=params)}
    return dataclasses.replace(policy, rules=rules)


def _unnotified(policy: Policy, as_of: datetime, *notes: ClusterNotificationFact) -> list[Finding]:
    s = _training(THRESHOLD_WINDOWS, notifications=notes)
    return [f for f in run(s, policy, as_of) if f.rule_id == THRESHOLD_RULE_ID]


def test_threshold_crossed_without_notification(demo_policy: Policy) -> None:
    [f] = _unnotified(demo_policy, CROSSED)  # the demo policy's grace is 0
    assert f.details["threshold_flop"] == 2e21
    assert f.details["crossing_window"][1] == rfc3339(CROSSED)


def test_notified_threshold_is_fine(demo_policy: Policy) -> None:
    note = ClusterNotificationFact(2e21, T0 + timedelta(hours=1), next(_log))
    assert _unnotified(demo_policy, CROSSED + DAY, note) == []


def test_threshold_unnotified_waits_for_the_grace_to_end(demo_policy: Policy) -> None:
    """Issue 9: a crossing at 22:34 was flagged at 22:35 although the grace was a day."""
    policy = _with_grace(demo_policy, 86400)
    assert _unnotified(policy, CROSSED + timedelta(minutes=1)) == []
    assert _unnotified(policy, CROSSED + DAY - timedelta(seconds=1)) == []
    [f] = _unnotified(policy, CROSSED + DAY)
    assert f.details["deadline"] == rfc3339(CROSSED + DAY)
    # A notice received within the grace keeps it quiet for good.
    timely = ClusterNotificationFact(2e21, CROSSED + timedelta(hours=5), next(_log))
    assert _unnotified(policy, CROSSED + 3 * DAY, timely) == []


def test_threshold_notice_after_the_grace_is_late_and_shows_both_times(
    demo_policy: Policy,
) -> None:
    policy = _with_grace(demo_policy, 86400)
    # Received two days after the crossing although the operator states it was sent in time.
    stated = CROSSED + timedelta(hours=1)
    late = ClusterNotificationFact(2e21, CROSSED + 2 * DAY, next(_log), stated)
    [f] = _unnotified(policy, CROSSED + 3 * DAY, late)
    assert f.details["notifications"] == [
        {
            "threshold_flop": 2e21,
            "notified_at": rfc3339(stated),
            "received_at": rfc3339(CROSSED + 2 * DAY),
        }
    ]


# --- chip.unaccounted ----------------------------------------------------------------------


def test_chip_silent_for_days_is_unaccounted(demo_policy: Policy) -> None:
    s = snap([h("a")], [rep("a", start=T0 - timedelta(hours=7))])
    [f] = found(demo_policy, s, "chip.unaccounted")
    assert f.kind == "chip_unaccounted"
    assert found(demo_policy, s, "chip.silent")


def test_chip_silent_for_hours_is_only_silent(demo_policy: Policy) -> None:
    s = snap([h("a")], [rep("a", start=T0 - timedelta(hours=5))])
    assert found(demo_policy, s, "chip.unaccounted") == []
    assert found(demo_policy, s, "chip.silent")
