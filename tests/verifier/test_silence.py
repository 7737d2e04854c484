"""Silent-chip rule: default policy grace 2 hours, demo 45 minutes."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from tests.verifier.factories import INSTALLED, T0, WINDOW, chip, chips, report
from verifier.errors import FactError
from verifier.facts import Snapshot
from verifier.findings import Severity
from verifier.policy import Policy
from verifier.silence import find_silent_chips

AS_OF = T0 + timedelta(hours=6)


def test_silent_chip_is_flagged_and_recent_one_is_not(default_policy: Policy) -> None:
    quiet_end = AS_OF - timedelta(hours=3)
    quiet = report("quiet", start=quiet_end - WINDOW, seq=41, log_index=5001)
    older = report("quiet", start=quiet_end - 2 * WINDOW, seq=40, log_index=5000)
    recent = report("recent", start=AS_OF - timedelta(hours=1) - WINDOW, seq=9, log_index=5002)
    snapshot = Snapshot(
        chips(chip("quiet", facility=4, country="NL"), chip("recent")), [quiet, recent, older], []
    )

    findings = find_silent_chips(snapshot, default_policy, AS_OF)

    assert len(findings) == 1
    f = findings[0]
    assert (f.rule_id, f.kind, f.subject_type, f.subject_id) == (
        "chip.silent",
        "chip_silent",
        "chip",
        "quiet",
    )
    assert f.severity is Severity.HIGH
    assert (f.facility_id, f.country) == (4, "NL")
    assert (f.window_start, f.window_end) == (quiet_end, AS_OF)
    assert f.evidence == (5001,)
    assert f.details["last_seen"] == "2026-03-02T15:00:00Z"
    assert f.details["last_seq"] == 41
    assert f.details["silent_for_seconds"] == 3 * 3600
    assert f.details["never_reported"] is False
    assert f.details["grace_period_seconds"] == 7200
    assert "3h 0m" in f.summary
    assert "2h 0m grace" in f.summary


def test_silence_of_exactly_the_grace_period_is_not_flagged(default_policy: Policy) -> None:
    edge = report("c", start=AS_OF - timedelta(hours=2) - WINDOW)
    assert find_silent_chips(Snapshot(chips(chip("c")), [edge], []), default_policy, AS_OF) == []
    late = report("c", start=AS_OF - timedelta(hours=2, seconds=1) - WINDOW)
    assert (
        len(find_silent_chips(Snapshot(chips(chip("c")), [late], []), default_policy, AS_OF)) == 1
    )


def test_never_reported_chip_counts_from_installation(demo_policy: Policy) -> None:
    old = chip("old", installed=AS_OF - timedelta(hours=5))
    new = chip("new", installed=AS_OF - timedelta(minutes=30))
    findings = find_silent_chips(Snapshot(chips(old, new), [], []), demo_policy, AS_OF)
    assert [f.subject_id for f in findings] == ["old"]
    f = findings[0]
    assert f.details["never_reported"] is True
    assert f.details["last_seq"] is None
    assert f.details["silent_for_seconds"] == 5 * 3600
    assert f.evidence == ()
    assert "never reported" in f.summary


def test_uninstalled_and_future_installations_are_not_expected_to_report(
    default_policy: Policy,
) -> None:
    fleet = chips(
        chip("stock", installed=None, facility=None, country=None),
        chip("future", installed=AS_OF + timedelta(days=1)),
    )
    assert find_silent_chips(Snapshot(fleet, [], []), default_policy, AS_OF) == []


def test_reinstallation_restarts_the_clock(default_policy: Policy) -> None:
    moved = chip("moved", installed=AS_OF - timedelta(hours=1))
    old_report = report("moved", start=AS_OF - timedelta(hours=10))
    assert find_silent_chips(Snapshot(chips(moved), [old_report], []), default_policy, AS_OF) == []


def test_fingerprint_is_stable_while_silent_and_new_after_a_new_report(
    default_policy: Policy,
) -> None:
    first = report("c", start=T0, seq=1)
    snapshot = Snapshot(chips(chip("c")), [first], [])
    now = find_silent_chips(snapshot, default_policy, AS_OF)
    later = find_silent_chips(snapshot, default_policy, AS_OF + timedelta(hours=5))
    assert now[0].fingerprint == later[0].fingerprint
    assert now[0].details["silent_for_seconds"] != later[0].details["silent_for_seconds"]

    resumed = Snapshot(chips(chip("c")), [first, report("c", start=T0 + WINDOW, seq=2)], [])
    again = find_silent_chips(resumed, default_policy, AS_OF + timedelta(hours=5))
    assert again[0].fingerprint != now[0].fingerprint


def test_last_report_does_not_depend_on_order(default_policy: Policy) -> None:
    reports = [report("c", start=T0 + k * WINDOW, seq=k, log_index=100 + k) for k in range(5)]
    fleet = chips(chip("c"))
    forward = find_silent_chips(Snapshot(fleet, reports, []), default_policy, AS_OF)
    backward = find_silent_chips(Snapshot(fleet, reports[::-1], []), default_policy, AS_OF)
    assert forward == backward
    assert forward[0].evidence == (104,)


def test_naive_as_of_is_rejected(default_policy: Policy) -> None:
    with pytest.raises(FactError, match="as_of must be timezone-aware"):
        find_silent_chips(Snapshot({}, [], []), default_policy, datetime(2026, 3, 2, 12, 0))


def test_installed_chip_sorted_output(default_policy: Policy) -> None:
    fleet = chips(*(chip(c, installed=INSTALLED) for c in ("z", "a", "m")))
    findings = find_silent_chips(Snapshot(fleet, [], []), default_policy, AS_OF)
    assert [f.subject_id for f in findings] == ["a", "m", "z"]


def test_a_retired_chip_is_judged_as_of_its_retirement(default_policy: Policy) -> None:
    """Decommissioned or revoked: silent only if it was already silent then (near misses)."""
    last = report("c", start=AS_OF - timedelta(hours=4) - WINDOW, seq=3, log_index=7)
    last_end = last.window_end
    # Retired an hour after its last report: never silent for long enough, however late as_of.
    early = replace(chip("c"), retired_at=last_end + timedelta(hours=1))
    assert find_silent_chips(Snapshot(chips(early), [last], []), default_policy, AS_OF) == []
    # Retired exactly at the end of the grace period: still not silent (strict rule).
    edge = replace(chip("c"), retired_at=last_end + timedelta(hours=2))
    assert find_silent_chips(Snapshot(chips(edge), [last], []), default_policy, AS_OF) == []
    # Retired after it had been silent past the grace period: leaving service hides nothing.
    late = replace(chip("c"), retired_at=last_end + timedelta(hours=3))
    (f,) = find_silent_chips(Snapshot(chips(late), [last], []), default_policy, AS_OF)
    assert (f.window_start, f.window_end) == (last_end, last_end + timedelta(hours=3))
    assert f.details["silent_for_seconds"] == 3 * 3600
    # The same fingerprint as the finding raised while it was in service.
    (before,) = find_silent_chips(
        Snapshot(chips(chip("c")), [last], []), default_policy, last_end + timedelta(hours=3)
    )
    assert before.fingerprint == f.fingerprint
    with pytest.raises(FactError):
        replace(chip("c"), retired_at=datetime(2026, 3, 2, 12, 0))  # naive
