"""GPU re-attestation rules: a hardware-attested chip must keep proving that the GPU it
enrolled with is behind it.

* ``gpu.device_changed``: a re-attestation answered with valid evidence from another GPU than
  the one the chip enrolled with (the chip key moved, or a relay answers for it). One finding
  per such answer, keyed on its time.
* ``gpu.attestation_lapsed``: an installed hardware-attested chip whose last evidence from its
  enrolled GPU is older than ``max_interval_s`` at ``as_of`` (it stopped answering the
  registry's challenges, or was never asked: the policy says how often it must be). Keyed on
  that last good attestation, so re-runs while it stays lapsed give the same fingerprint.

Chips that enrolled without GPU evidence are not judged here. Facts come from the
``gpu_attestation`` log records, so a partner re-derives the same findings.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from verifier._common import make_finding
from verifier.facts import GpuAttestationFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.params import GpuAttestationLapsedParams, GpuDeviceChangedParams
from verifier.policy import Policy
from verifier.rules import Rule, RuleContext

__all__ = [
    "DEVICE_CHANGED_KIND",
    "DEVICE_CHANGED_RULE_ID",
    "GPU_ATTESTATION",
    "LAPSED_KIND",
    "LAPSED_RULE_ID",
    "find_gpu_attestation_findings",
]

LAPSED_RULE_ID = GpuAttestationLapsedParams.rule_id
LAPSED_KIND = "gpu_attestation_lapsed"
DEVICE_CHANGED_RULE_ID = GpuDeviceChangedParams.rule_id
DEVICE_CHANGED_KIND = "gpu_device_changed"


def find_gpu_attestation_findings(
    snapshot: Snapshot, policy: Policy, as_of: datetime
) -> list[Finding]:
    """Both GPU rules on their own, sorted by chip id then time."""
    return _find_gpu(RuleContext(snapshot, policy, as_of))


def _find_gpu(ctx: RuleContext) -> list[Finding]:
    """Both GPU rules, sorted by chip id then time."""
    lapsed_rule = ctx.settings(GpuAttestationLapsedParams)
    changed_rule = ctx.settings(GpuDeviceChangedParams)
    if lapsed_rule is None and changed_rule is None:
        return []
    snapshot, policy, as_of = ctx.snapshot, ctx.policy, ctx.as_of
    by_chip: dict[str, list[GpuAttestationFact]] = defaultdict(list)
    for fact in snapshot.gpu_attestations:
        if fact.verified_at <= as_of:
            by_chip[fact.chip_id].append(fact)
    findings: list[Finding] = []
    for chip_id in sorted(by_chip):
        facts = sorted(by_chip[chip_id], key=lambda f: (f.verified_at, f.log_index))
        enrolled = next((f for f in facts if f.purpose == "enrollment"), None)
        chip = snapshot.chips.get(chip_id)
        if enrolled is None or chip is None:
            continue
        good = [f for f in facts if f.hardware_id == enrolled.hardware_id]
        if changed_rule is not None:
            for f in facts:
                if f.purpose == "reattestation" and f.hardware_id != enrolled.hardware_id:
                    findings.append(
                        make_finding(
                            changed_rule,
                            policy,
                            kind=DEVICE_CHANGED_KIND,
                            subject_type="chip",
                            subject_id=chip_id,
                            facility_id=chip.facility_id,
                            country=chip.country,
                            window_start=f.verified_at,
                            window_end=f.verified_at,
                            summary=(
                                f"Chip {chip_id} answered a GPU challenge on "
                                f"{rfc3339(f.verified_at)} with GPU {f.hardware_id[:16]}, not "
                                f"the GPU {enrolled.hardware_id[:16]} it enrolled with."
                            ),
                            details={
                                "chip_id": chip_id,
                                "enrolled_hardware_id": enrolled.hardware_id,
                                "answered_hardware_id": f.hardware_id,
                                "verified_at": rfc3339(f.verified_at),
                            },
                            evidence=(enrolled.log_index, f.log_index),
                        )
                    )
        if lapsed_rule is not None and chip.installed_at is not None:
            interval = timedelta(seconds=lapsed_rule.params.max_interval_s)
            last = good[-1]
            # A chip installed after its last proof is judged from its installation.
            since = max(last.verified_at, chip.installed_at)
            if as_of - since > interval:
                findings.append(
                    make_finding(
                        lapsed_rule,
                        policy,
                        kind=LAPSED_KIND,
                        subject_type="chip",
                        subject_id=chip_id,
                        facility_id=chip.facility_id,
                        country=chip.country,
                        window_start=last.verified_at,
                        window_end=as_of,
                        summary=(
                            f"Chip {chip_id} has not proven its GPU since "
                            f"{rfc3339(last.verified_at)}: beyond the "
                            f"{int(interval.total_seconds())} s the policy allows."
                        ),
                        details={
                            "chip_id": chip_id,
                            "hardware_id": enrolled.hardware_id,
                            "last_attested_at": rfc3339(last.verified_at),
                            "as_of": rfc3339(as_of),
                            "max_interval_seconds": int(interval.total_seconds()),
                            "lapsed_for_seconds": int((as_of - since).total_seconds()),
                        },
                        evidence=(last.log_index,),
                    )
                )
    return findings


GPU_ATTESTATION = Rule(
    rule_ids=(DEVICE_CHANGED_RULE_ID, LAPSED_RULE_ID),
    kinds=(DEVICE_CHANGED_KIND, LAPSED_KIND),
    find=_find_gpu,
)
