"""The scenario suite: every rule's planted violation caught, honest fleets without false alarm,
facts built from the real signed bytes, and the physics of the independent channels."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from attestation.dsse import Envelope, Signature
from attestation.report import report_digest
from simulator.artifacts import Delivery
from simulator.catalog import LANDMARKS, SITES
from simulator.ground_truth import Label
from simulator.physics import great_circle_km, light_rtt_ms, simulated_rtt_ms
from simulator.scenarios import (
    EPOCH,
    SCENARIOS,
    WINDOW,
    ScenarioParams,
    ScenarioResult,
    build_world,
    explains,
    run_scenario,
)
from simulator.snapshots import ingest, registered_from_world
from verifier import engine
from verifier.gpu import DEVICE_CHANGED_RULE_ID, LAPSED_RULE_ID
from verifier.params import RttMismatchParams
from verifier.policy import CLUSTER_RULE_ID, RULE_PARAMS, SILENCE_RULE_ID, load_builtin_policy

POLICY = load_builtin_policy("demo")
SMALL = ScenarioParams(chips=64, seed=3, windows=10)


@pytest.fixture(scope="module")
def everything() -> ScenarioResult:
    return run_scenario(SCENARIOS["everything"], SMALL, POLICY)


def test_every_rule_has_a_planted_violation_and_all_are_caught(everything: ScenarioResult) -> None:
    unaccounted = run_scenario(SCENARIOS["unaccounted"], SMALL, POLICY)
    results = [everything, unaccounted]
    rules = {p.label.rule_id for r in results for p in r.planted}
    # The GPU re-attestation rules judge hardware evidence the simulated fleet does not produce;
    # their planted violations run end to end over HTTP instead
    # (tests/agents/test_gpu_reattestation_agent.py, tests/verifier/test_gpu_rules.py).
    gpu_rules = {DEVICE_CHANGED_RULE_ID, LAPSED_RULE_ID}
    assert rules == {CLUSTER_RULE_ID, SILENCE_RULE_ID, *RULE_PARAMS} - gpu_rules
    for r in results:
        assert r.missed == [], [p.label for p in r.missed]
        assert r.false_alarms == (), [f.summary for _, f in r.false_alarms]
        assert r.ok and r.rejected_artifacts == 0
    for p in everything.planted:
        assert p.delay is not None and 0 <= p.delay <= 3, (p.label.kind, p.delay)
    # The unaccounted-for grace is 6 h in the demo policy: 24 windows of 15 minutes.
    (dark,) = unaccounted.planted
    assert dark.delay == 23


def test_honest_fleet_of_realistic_size_has_no_false_alarm() -> None:
    params = ScenarioParams(chips=1200, seed=11, windows=10)
    result = run_scenario(SCENARIOS["honest"], params, POLICY, every=3)
    assert result.chips >= 1200
    assert result.reports >= result.chips * (result.windows - 1)
    assert result.planted == ()
    assert result.false_alarms == ()
    assert result.false_alarms_per_10k_chip_days == 0.0
    assert result.findings_seen == 0


def test_same_seed_same_result_other_seed_other_fleet() -> None:
    one, two = (run_scenario(SCENARIOS["smuggled_chip"], SMALL, POLICY) for _ in range(2))
    assert [(p.label, p.found_window) for p in one.planted] == [
        (p.label, p.found_window) for p in two.planted
    ]
    assert one.reports == two.reports
    other = run_scenario(SCENARIOS["smuggled_chip"], ScenarioParams(64, 4, 10), POLICY)
    assert other.planted[0].label != one.planted[0].label and other.ok


def test_a_finding_about_other_subjects_is_not_explained() -> None:
    world = build_world(SMALL, POLICY, 4)
    log = ingest(registered_from_world(world), world.simulate())
    chip_id = next(iter(world.chips))
    # A chip whose reports stop at window 1 is silent by window 4; label another chip.
    as_of = EPOCH + 8 * WINDOW
    silent = engine.run(log.snapshot(as_of), POLICY, as_of)
    mine = [f for f in silent if f.subject_id == chip_id and f.rule_id == SILENCE_RULE_ID]
    assert mine
    other = Label("gone_dark", SILENCE_RULE_ID, 0, chips=frozenset({"H100-1"}))
    right = Label("gone_dark", SILENCE_RULE_ID, 0, chips=frozenset({chip_id}))
    wrong_rule = Label("gone_dark", "chip.unaccounted", 0, chips=frozenset({chip_id}))
    assert not explains(other, mine[0])
    assert not explains(wrong_rule, mine[0])
    assert explains(right, mine[0])


def test_snapshot_facts_come_from_verified_signed_bytes() -> None:
    world = build_world(SMALL, POLICY, 3)
    artifacts = world.simulate()
    registered = registered_from_world(world)
    first = artifacts.deliveries[0]
    envelope = Envelope.from_json(first.envelope)
    forged = Envelope(
        envelope.payload,
        envelope.payload_type,
        (Signature(envelope.signatures[0].keyid, bytes(64)),),
    )
    later = first.received_at + timedelta(minutes=20)
    extra = (
        Delivery(later, 10**9, first.envelope, "operator:9"),  # a byte-identical copy
        Delivery(later, 10**9 + 1, forged.to_json(), first.source),  # a bad signature
    )
    log = ingest(registered, replace(artifacts, deliveries=artifacts.deliveries + extra))
    assert log.rejected == 1
    snap = log.snapshot(EPOCH + 4 * WINDOW)
    by_key = {(r.chip_id, r.seq): r for r in snap.reports}
    fact = by_key[(world.chips[next(iter(world.chips))].chip_id, 1)]
    signed = {Envelope.from_json(d.envelope).payload for d in artifacts.deliveries}
    assert len(snap.reports) == len(signed)  # honest retries are kept as replayed copies
    (copy,) = [s for s in snap.submissions if s.source == "operator:9"]
    # Delivered through an account that never held the chip: refused, kept and logged.
    assert copy.outcome == "forbidden" and copy.log_index is not None
    original = by_key[(copy.chip_id, copy.seq)]
    assert original.digest == copy.digest == report_digest(envelope.payload)
    assert fact.log_index is not None and fact.facility_id == world.chips[fact.chip_id].facility_id
    # Only what had arrived counts: nothing is known before the first window closes.
    assert log.snapshot(EPOCH + WINDOW / 2).reports == []
    assert {m.facility_id for m in snap.meter_readings} == set(world.facilities)
    assert snap.rtts and all(m.landmark_id in snap.landmarks for m in snap.rtts)


def test_round_trips_are_never_faster_than_light_and_stay_within_policy_margins() -> None:
    rng = random.Random(5)
    rule = POLICY.settings(RttMismatchParams)
    assert rule is not None
    km_per_ms = rule.params.km_per_ms_rtt
    for site in SITES:
        for mark in LANDMARKS:
            d = great_circle_km(site.latitude, site.longitude, mark.latitude, mark.longitude)
            for _ in range(20):
                rtt = simulated_rtt_ms(d, rng)
                assert rtt >= light_rtt_ms(d)
                assert d <= rtt * km_per_ms  # the rule's bound holds for honest chips
                assert (
                    rtt
                    <= d / km_per_ms * rule.params.max_path_inflation
                    + rule.params.max_excess_rtt_ms
                )
    # Ashburn to Frankfurt is about 6,500 km: at least 65 ms there and back.
    d = great_circle_km(39.0438, -77.4874, 50.1109, 8.6821)
    assert 6400 < d < 6700 and light_rtt_ms(d) > 64
