"""Rebuild the verifier's input from the log alone, and re-run the verifier.

The registry runs the verifier over its database; each run is logged (kind ``verifier_run``)
with its ``as_of``, policy and the log size its reports were cut at. Here the same
:class:`verifier.facts.Snapshot` is rebuilt from the replayed log entries below that size and
:func:`verifier.engine.run` is called with the same built-in policy: the findings must be
identical, byte for byte in canonical JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from attestation.logentries import canonical_json
from audit.replay import Replay, VerifierRun
from verifier import engine
from verifier.errors import PolicyError
from verifier.facts import ChipFact, DeclaredClusterFact, LinkFact, ReportFact, Snapshot
from verifier.policy import load_builtin_policy

__all__ = ["FindingsCheck", "check_run", "snapshot_at"]


def snapshot_at(replay: Replay, run: VerifierRun) -> Snapshot:
    """The verifier's input as the registry saw it for ``run``: log entries below its size."""
    cut = run.log_size
    custody = {}
    for decl in replay.installations:  # in log order: the last one below the cut is current
        if decl.index < cut:
            custody[decl.chip_id] = decl
    chips = {}
    for chip in replay.chips.values():
        if chip.index >= cut:
            continue
        inst = custody.get(chip.chip_id)
        facility = replay.facilities.get(inst.facility_id) if inst else None
        chips[chip.chip_id] = ChipFact(
            chip_id=chip.chip_id,
            model=chip.model,
            peak_ops=chip.peak_tflops_bf16 * 1e12,
            facility_id=inst.facility_id if inst else None,
            country=facility.country if facility else None,
            installed_at=inst.installed_at if inst else None,
        )
    reports = [
        ReportFact(
            chip_id=r.report.chip_id,
            seq=r.report.seq,
            window_start=r.report.window_start,
            window_end=r.report.window_end,
            utilization=r.report.utilization,
            energy_j=r.report.energy_j,
            links=tuple(
                LinkFact(lt.peer, str(lt.link), lt.tx_bytes, lt.rx_bytes)
                for lt in r.report.interconnect
            ),
            log_index=r.index,
        )
        for r in replay.reports
        if r.index < cut and r.report.window_start < run.as_of
    ]
    clusters = [
        DeclaredClusterFact(
            cluster_id=c.index,
            name=c.name,
            chip_ids=c.chip_ids,
            start=c.start,
            end=c.end,
            facility_id=c.facility_id,
        )
        for c in replay.clusters
        if c.index < cut
    ]
    return Snapshot(chips=chips, reports=reports, clusters=clusters)


@dataclass(frozen=True)
class FindingsCheck:
    """The outcome of re-deriving one run: published vs re-derived fingerprints."""

    run: VerifierRun
    derived: int
    missing: tuple[str, ...]  # re-derived but not published (suppressed findings)
    extra: tuple[str, ...]  # published but not re-derived (invented findings)
    changed: tuple[str, ...]  # same fingerprint, different content
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not (self.missing or self.extra or self.changed)


def check_run(replay: Replay, run: VerifierRun) -> FindingsCheck:
    """Re-derive ``run``'s findings from the log and compare them with the published ones."""
    try:
        policy = load_builtin_policy(run.policy_id)
    except PolicyError as exc:
        return FindingsCheck(run, 0, (), (), (), f"policy {run.policy_id!r}: {exc}")
    if policy.version != run.policy_version:
        return FindingsCheck(
            run,
            0,
            (),
            (),
            (),
            f"policy {run.policy_id} is version {policy.version} here, the run used "
            f"{run.policy_version}",
        )
    derived = {
        f.fingerprint: canonical_json(f.to_dict())
        for f in engine.run(snapshot_at(replay, run), policy, run.as_of)
    }
    published = {}
    for f in run.findings:
        published[str(f.get("fingerprint"))] = canonical_json(f)
    missing = tuple(sorted(set(derived) - set(published)))
    extra = tuple(sorted(set(published) - set(derived)))
    changed = tuple(sorted(k for k in set(derived) & set(published) if derived[k] != published[k]))
    return FindingsCheck(run, len(derived), missing, extra, changed)
