"""The engine: all rules together, deterministic output, and fleet-scale sanity."""

from __future__ import annotations

import dataclasses
import json
import random
from datetime import timedelta

import pytest

from tests.verifier.factories import (
    ABOVE,
    T0,
    WINDOW,
    chip,
    chips,
    declared,
    h100_ids,
    report,
    ring_reports,
)
from verifier.engine import run
from verifier.errors import FactError
from verifier.facts import ReportFact, Snapshot
from verifier.findings import Finding
from verifier.policy import Policy

AS_OF = T0 + timedelta(hours=3)


@pytest.fixture
def legacy_policy(demo_policy: Policy) -> Policy:
    """The demo policy with only the two foundation rules (these tests predate the others)."""
    return dataclasses.replace(demo_policy, rules={})


@pytest.fixture
def legacy_default(default_policy: Policy) -> Policy:
    """The default policy with only the two foundation rules."""
    return dataclasses.replace(default_policy, rules={})


def _scenario() -> Snapshot:
    """Two windows of an undeclared 21-chip cluster, a declared one, a silent chip, noise."""
    rogue = h100_ids(21, "rogue")
    legit = h100_ids(30, "legit")
    loose = h100_ids(20, "loose")
    fleet = chips(
        *(chip(c, facility=2, country="DE") for c in rogue),
        *(chip(c, facility=1, country="US") for c in legit),
        *(chip(c, facility=3, country="FR") for c in loose),
        chip("dark", facility=3, country="FR"),
        chip("never", facility=3, country="FR", installed=T0 - timedelta(hours=4)),
    )
    reports: list[ReportFact] = []
    for k in range(2):
        start = AS_OF - (2 - k) * WINDOW
        reports += ring_reports(rogue, start=start, seq=k + 1)
        reports += ring_reports(legit, start=start, seq=k + 1)
        reports += ring_reports(loose, start=start, seq=k + 1)  # below the compute threshold
    reports.append(report("dark", {"legit-00000": ABOVE // 100}, start=T0 - timedelta(hours=2)))
    return Snapshot(fleet, reports, [declared(1, legit)])


def _as_json(findings: list[Finding]) -> str:
    return json.dumps([f.to_dict() for f in findings], sort_keys=True)


def test_run_returns_all_rules_sorted(legacy_policy: Policy) -> None:
    findings = run(_scenario(), legacy_policy, AS_OF)
    kinds = [(f.kind, f.subject_id) for f in findings]
    assert kinds[:2] == [("chip_silent", "dark"), ("chip_silent", "never")]
    assert [k for k, _ in kinds[2:]] == ["undeclared_cluster"]
    cluster = findings[-1]
    assert cluster.details["chip_ids"] == h100_ids(21, "rogue")
    assert cluster.details["windows_observed"] == 2
    assert (cluster.facility_id, cluster.country) == (2, "DE")
    # Every finding is JSON as it stands.
    json.dumps([f.to_dict() for f in findings])


def test_shuffled_input_gives_identical_output(legacy_policy: Policy) -> None:
    snapshot = _scenario()
    expected = _as_json(run(snapshot, legacy_policy, AS_OF))
    rng = random.Random(14110)
    for _ in range(5):
        reports = [
            dataclasses.replace(r, links=tuple(rng.sample(r.links, len(r.links))))
            for r in snapshot.reports
        ]
        rng.shuffle(reports)
        chip_items = list(snapshot.chips.items())
        rng.shuffle(chip_items)
        clusters = list(snapshot.clusters)
        rng.shuffle(clusters)
        shuffled = Snapshot(dict(chip_items), reports, clusters)
        assert _as_json(run(shuffled, legacy_policy, AS_OF)) == expected


def test_fingerprints_are_stable_across_runs(legacy_policy: Policy) -> None:
    first = run(_scenario(), legacy_policy, AS_OF)
    second = run(_scenario(), legacy_policy, AS_OF + timedelta(minutes=10))
    assert [f.fingerprint for f in first] == [f.fingerprint for f in second]
    assert len({f.fingerprint for f in first}) == len(first)


def test_disabled_rule_does_not_run(legacy_policy: Policy) -> None:
    quiet = dataclasses.replace(
        legacy_policy, silence=dataclasses.replace(legacy_policy.silence, enabled=False)
    )
    assert {f.kind for f in run(_scenario(), quiet, AS_OF)} == {"undeclared_cluster"}


def test_naive_as_of_is_rejected(legacy_policy: Policy) -> None:
    with pytest.raises(FactError, match="timezone-aware"):
        run(_scenario(), legacy_policy, AS_OF.replace(tzinfo=None))


def test_naive_fact_is_rejected() -> None:
    with pytest.raises(FactError, match="window_start must be timezone-aware"):
        report("c", start=T0.replace(tzinfo=None))


def test_twenty_thousand_chip_fleet(legacy_policy: Policy, legacy_default: Policy) -> None:
    """Sanity at scale (no timing assertion): one 10,000-chip ring among 500 small rings."""
    big = h100_ids(10_000, "big")
    small = [h100_ids(20, f"pod{p:03d}") for p in range(500)]
    fleet = chips(*(chip(c, facility=1 + i // 1000) for i, c in enumerate(big)))
    fleet.update(chips(*(chip(c, facility=20) for pod in small for c in pod)))
    reports = ring_reports(big)
    for pod in small:
        reports += ring_reports(pod)
    snapshot = Snapshot(fleet, reports, [])
    assert len(fleet) == 20_000

    findings = run(snapshot, legacy_policy, T0 + WINDOW)
    assert len(findings) == 1
    assert findings[0].details["chip_count"] == 10_000
    assert findings[0].details["equivalent_h100"] == 10_000.0
    assert findings[0].facility_id == 1  # ten facilities of 1,000 chips: the lowest id wins
    assert len(findings[0].evidence) == 10_000

    # 10,000 H100 is about 1e19 OP/s: a tenth of the treaty-scale threshold.
    assert run(snapshot, legacy_default, T0 + WINDOW) == []


def test_fingerprints_name_the_policy_but_not_its_version(legacy_policy: Policy) -> None:
    # The same conditions judged under another policy are other findings (a registry following
    # both stores both); under a new version of the same policy they are the same findings.
    renamed = dataclasses.replace(legacy_policy, policy_id="strict")
    bumped = dataclasses.replace(legacy_policy, version="2099.1")
    base = run(_scenario(), legacy_policy, AS_OF)
    assert base
    other = run(_scenario(), renamed, AS_OF)
    assert [(f.rule_id, f.subject_id) for f in other] == [(f.rule_id, f.subject_id) for f in base]
    assert not {f.fingerprint for f in other} & {f.fingerprint for f in base}
    assert [f.fingerprint for f in run(_scenario(), bumped, AS_OF)] == [f.fingerprint for f in base]
