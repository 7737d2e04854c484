"""GPU re-attestation rules: each planted violation next to its near miss."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.verifier.factories import T0, chip, chips
from verifier.engine import run
from verifier.facts import GpuAttestationFact, Snapshot
from verifier.gpu import (
    DEVICE_CHANGED_KIND,
    LAPSED_KIND,
    find_gpu_attestation_findings,
)
from verifier.policy import Policy

GPU_A = "a" * 64
GPU_B = "b" * 64
SIX_H = timedelta(hours=6)  # the demo policy's max_interval_s


def _att(purpose: str, hw: str, at_h: float, index: int, chip_id: str = "c1") -> GpuAttestationFact:
    return GpuAttestationFact(chip_id, purpose, hw, T0 + timedelta(hours=at_h), index)


def _snap(*facts: GpuAttestationFact) -> Snapshot:
    return Snapshot(
        chips=chips(chip("c1", installed=T0 - timedelta(days=1)), chip("c2")),
        reports=[],
        clusters=[],
        gpu_attestations=facts,
    )


def test_lapsed_after_the_interval_and_not_before(demo_policy: Policy) -> None:
    snap = _snap(_att("enrollment", GPU_A, 0, 10), _att("reattestation", GPU_A, 4, 20))
    last = T0 + timedelta(hours=4)
    assert find_gpu_attestation_findings(snap, demo_policy, last + SIX_H) == []  # near miss
    (f,) = find_gpu_attestation_findings(snap, demo_policy, last + SIX_H + timedelta(seconds=1))
    assert f.kind == LAPSED_KIND and f.subject_id == "c1" and f.evidence == (20,)
    # Stable while it stays lapsed: same fingerprint a day later.
    (g,) = find_gpu_attestation_findings(snap, demo_policy, last + timedelta(days=1))
    assert g.fingerprint == f.fingerprint


def test_answers_from_another_gpu_do_not_reset_the_clock(demo_policy: Policy) -> None:
    snap = _snap(_att("enrollment", GPU_A, 0, 10), _att("reattestation", GPU_B, 5, 20))
    found = find_gpu_attestation_findings(snap, demo_policy, T0 + timedelta(hours=7))
    assert [f.kind for f in found] == [DEVICE_CHANGED_KIND, LAPSED_KIND]
    changed = found[0]
    assert changed.severity.value == "critical"
    assert changed.evidence == (10, 20)
    assert changed.details["answered_hardware_id"] == GPU_B


def test_same_gpu_answering_is_no_finding(demo_policy: Policy) -> None:
    snap = _snap(
        _att("enrollment", GPU_A, 0, 10),
        _att("reattestation", GPU_A, 5, 20),
        _att("reattestation", GPU_A, 10, 30),
    )
    assert find_gpu_attestation_findings(snap, demo_policy, T0 + timedelta(hours=12)) == []


def test_chips_without_gpu_enrollment_or_not_installed_are_not_judged(
    demo_policy: Policy,
) -> None:
    # Only re-attestation facts (no enrollment): not a hardware-attested chip.
    snap = _snap(_att("reattestation", GPU_B, 0, 20))
    assert find_gpu_attestation_findings(snap, demo_policy, T0 + timedelta(days=3)) == []
    not_installed = Snapshot(
        chips=chips(chip("c1", facility=None, country=None, installed=None)),
        reports=[],
        clusters=[],
        gpu_attestations=(_att("enrollment", GPU_A, 0, 10),),
    )
    assert find_gpu_attestation_findings(not_installed, demo_policy, T0 + timedelta(days=3)) == []


def test_facts_after_as_of_are_not_used(demo_policy: Policy) -> None:
    snap = _snap(_att("enrollment", GPU_A, 0, 10), _att("reattestation", GPU_B, 20, 20))
    found = find_gpu_attestation_findings(snap, demo_policy, T0 + timedelta(hours=5))
    assert found == []


def test_engine_runs_the_gpu_rules(default_policy: Policy) -> None:
    snap = _snap(_att("enrollment", GPU_A, 0, 10), _att("reattestation", GPU_B, 1, 20))
    kinds = {f.kind for f in run(snap, default_policy, T0 + timedelta(hours=2))}
    assert DEVICE_CHANGED_KIND in kinds
    assert LAPSED_KIND not in kinds  # default policy allows 7 days


def test_naive_as_of_is_refused(demo_policy: Policy) -> None:
    from verifier.errors import FactError

    with pytest.raises(FactError):
        find_gpu_attestation_findings(_snap(), demo_policy, T0.replace(tzinfo=None))
