"""Where chips are: landmark round trips, facility claims in reports, transfer conditions.

* ``location.rtt_mismatch``: light in fibre covers about 200 km per ms, so a round trip of
  ``t`` ms bounds the chip's distance from the landmark to ``km_per_ms_rtt * t`` km. A declared
  facility farther than that (plus ``slack_km``) cannot be where the chip is ("too fast"). A
  chip answering a nearby landmark consistently much slower than the declared site explains
  is "too slow": it is probably relayed from elsewhere. "Consistently" is judged per report
  window of the chip, on that window's own measurements (the *fastest* of at least
  ``min_slow_measurements`` round trips in the window still above
  ``distance / km_per_ms_rtt * max_path_inflation + max_excess_rtt_ms``), so a fast round trip
  measured at home before the chip was moved does not excuse later windows. Measurements outside
  every report window of the chip are judged together. Facilities consistent with every
  measurement are listed.
* ``report.wrong_facility``: accepted reports naming a facility other than the one the chip was
  declared at for that window.
* ``chip.forbidden_country``: a chip declared (or claiming to report) in a country its transfer
  conditions do not allow.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import compress
from operator import attrgetter

from verifier._common import (
    declared_facility,
    great_circle_km,
    make_finding,
)
from verifier._index import SnapshotIndex
from verifier.facts import ReportFact, RttMeasurementFact, Snapshot
from verifier.findings import Finding, rfc3339
from verifier.params import ForbiddenCountryParams, RttMismatchParams, WrongFacilityParams
from verifier.rules import Rule, RuleContext

__all__ = ["FORBIDDEN_COUNTRY", "RTT_MISMATCH", "WRONG_FACILITY"]

RTT_RULE_ID = RttMismatchParams.rule_id
WRONG_FACILITY_RULE_ID = WrongFacilityParams.rule_id
FORBIDDEN_RULE_ID = ForbiddenCountryParams.rule_id
_FAR = datetime.max.replace(tzinfo=UTC)
_allowed = attrgetter("allowed_countries")


def _find_rtt_mismatches(ctx: RuleContext) -> list[Finding]:
    """One finding per (chip, declared facility) that some landmark's round trips contradict."""
    rule = ctx.settings(RttMismatchParams)
    snapshot, policy, index = ctx.snapshot, ctx.policy, ctx.index
    if rule is None or not snapshot.rtts:
        return []
    km_per_ms = rule.params.km_per_ms_rtt
    slack = rule.params.slack_km
    inflation = rule.params.max_path_inflation
    excess = rule.params.max_excess_rtt_ms
    min_slow = rule.params.min_slow_measurements
    # (chip, declared facility) -> landmark -> measurements
    grouped: dict[tuple[str, int], dict[int, list[RttMeasurementFact]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for m in snapshot.rtts:
        if m.landmark_id not in snapshot.landmarks:
            continue
        facility = declared_facility(
            snapshot.chips.get(m.chip_id), index.stays_of(m.chip_id), m.measured_at
        )
        if facility is None or facility not in snapshot.facilities:
            continue
        grouped[(m.chip_id, facility)][m.landmark_id].append(m)

    # The report windows of the measured chips, to judge "too slow" window by window.
    windows: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    measured = {chip_id for chip_id, _ in grouped}
    for r in snapshot.reports:
        if r.chip_id in measured:
            windows[r.chip_id].append((r.window_start, r.window_end))
    for chip_windows in windows.values():
        chip_windows.sort()

    findings: list[Finding] = []
    for (chip_id, facility_id), by_landmark in sorted(grouped.items()):
        site = snapshot.facilities[facility_id]
        contradictions: list[dict[str, object]] = []
        evidence: list[int | None] = []
        first: datetime | None = None
        last: datetime | None = None
        bounds: list[tuple[float, float, float]] = []  # (lat, lon, max km)
        for landmark_id in sorted(by_landmark):
            ms = sorted(by_landmark[landmark_id], key=lambda m: (m.rtt_ms, m.measured_at, m.nonce))
            mark = snapshot.landmarks[landmark_id]
            distance = great_circle_km(mark.latitude, mark.longitude, site.latitude, site.longitude)
            fastest = ms[0]
            reach = fastest.rtt_ms * km_per_ms + slack
            bounds.append((mark.latitude, mark.longitude, reach))
            expected_max = distance / km_per_ms * inflation + excess
            verdict = None
            slow_windows = 0
            if distance > reach:
                verdict = "too_fast"
                cited = [fastest]
            else:
                per_window: dict[int, list[RttMeasurementFact]] = defaultdict(list)
                for m in ms:  # fastest first, so each window's list starts with its fastest
                    per_window[_window_of(windows.get(chip_id, ()), m.measured_at)].append(m)
                slow = [
                    window_ms
                    for _, window_ms in sorted(per_window.items())
                    if len(window_ms) >= min_slow and window_ms[0].rtt_ms > expected_max
                ]
                if slow:
                    verdict = "too_slow"
                    slow_windows = len(slow)
                    cited = sorted(
                        (m for window_ms in slow for m in window_ms),
                        key=lambda m: (m.measured_at, m.nonce),
                    )
                    fastest = min(cited, key=lambda m: (m.rtt_ms, m.measured_at, m.nonce))
            if verdict is None:
                continue
            for m in cited:
                evidence.append(m.log_index)
                first = m.measured_at if first is None or m.measured_at < first else first
                last = m.measured_at if last is None or m.measured_at > last else last
            contradictions.append(
                {
                    "landmark_id": landmark_id,
                    "verdict": verdict,
                    "measurements": len(ms) if verdict == "too_fast" else len(cited),
                    "slow_windows": slow_windows,
                    "fastest_rtt_ms": round(fastest.rtt_ms, 3),
                    "max_distance_km": round(reach, 1),
                    "declared_site_distance_km": round(distance, 1),
                    "max_expected_rtt_ms": round(expected_max, 3),
                }
            )
        if not contradictions or first is None or last is None:
            continue
        consistent = sorted(
            fid
            for fid, fac in snapshot.facilities.items()
            if all(
                great_circle_km(lat, lon, fac.latitude, fac.longitude) <= reach
                for lat, lon, reach in bounds
            )
        )
        chip = snapshot.chips.get(chip_id)
        names = ", ".join(f"landmark {c['landmark_id']} ({c['verdict']})" for c in contradictions)
        findings.append(
            make_finding(
                rule,
                policy,
                kind="location_mismatch",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=facility_id,
                country=site.country,
                window_start=first,
                window_end=last,
                summary=(
                    f"Chip {chip_id} is declared at facility {facility_id} ({site.country}) but "
                    f"round trips from {names} cannot come from there; facilities consistent "
                    f"with all measurements: {consistent or 'none'}."
                ),
                details={
                    "chip_id": chip_id,
                    "model": None if chip is None else chip.model,
                    "declared_facility_id": facility_id,
                    "contradicting_landmarks": contradictions,
                    "landmarks_measured": len(by_landmark),
                    "consistent_facility_ids": consistent,
                    "km_per_ms_rtt": km_per_ms,
                    "slack_km": slack,
                },
                evidence=evidence,
            )
        )
    return findings


def _window_of(windows: Sequence[tuple[datetime, datetime]], instant: datetime) -> int:
    """Index of the report window ``[start, end)`` holding ``instant``; -1 if none does (all
    such measurements are judged together)."""
    i = bisect_right(windows, (instant, _FAR)) - 1
    if i >= 0 and windows[i][0] <= instant < windows[i][1]:
        return i
    return -1


def _find_wrong_facility_reports(ctx: RuleContext) -> list[Finding]:
    """One finding per (chip, claimed facility) of reports naming a facility the chip was not
    declared at during the report's window."""
    rule = ctx.settings(WrongFacilityParams)
    if rule is None:
        return []
    snapshot, policy, index = ctx.snapshot, ctx.policy, ctx.index
    min_reports = rule.params.min_reports
    single, several = index.stay_maps()
    single_get = single.get
    chips_get = snapshot.chips.get
    wrong: dict[tuple[str, int], list[tuple[ReportFact, int | None]]] = defaultdict(list)
    for r in snapshot.reports:
        claimed = r.facility_id
        if claimed is None:
            continue
        chip_id = r.chip_id
        stay = single_get(chip_id)
        if stay is not None:  # one declared installation: the common case, inlined
            instant = r.window_start
            if stay.start <= instant and (stay.end is None or instant < stay.end):
                declared: int | None = stay.facility_id
            else:
                declared = None
        else:
            declared = declared_facility(chips_get(chip_id), several.get(chip_id), r.window_start)
        if claimed != declared:
            wrong[(chip_id, claimed)].append((r, declared))
    findings: list[Finding] = []
    for (chip_id, claimed), hits in sorted(wrong.items()):
        if len(hits) < min_reports:
            continue
        hits.sort(key=lambda h: (h[0].window_start, h[0].seq))
        declared_ids = sorted({d for _, d in hits if d is not None})
        site = snapshot.facilities.get(claimed)
        findings.append(
            make_finding(
                rule,
                policy,
                kind="wrong_facility",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=claimed,
                country=None if site is None else site.country,
                window_start=hits[0][0].window_start,
                window_end=max(h[0].window_end for h in hits),
                summary=(
                    f"Chip {chip_id} sent {len(hits)} report(s) claiming facility {claimed}, "
                    f"where it is not declared (declared: {declared_ids or 'nowhere'})."
                ),
                details={
                    "chip_id": chip_id,
                    "claimed_facility_id": claimed,
                    "declared_facility_ids": declared_ids,
                    "reports": len(hits),
                    "first_window": rfc3339(hits[0][0].window_start),
                    "seqs": [h[0].seq for h in hits[:20]],
                },
                evidence=[h[0].log_index for h in hits],
            )
        )
    return findings


def _forbidden_suspects(snapshot: Snapshot, index: SnapshotIndex) -> set[str]:
    """Chips with transfer conditions that were declared at, or claim to report from, a
    facility in a country they may not be in (a cheap test per chip and per report: the
    facilities forbidden to each distinct allowed-country set are computed once)."""
    facilities = snapshot.facilities
    single, several = index.stay_maps()
    chips = snapshot.chips
    # Usually an allowed-country set covers every facility's country: its chips can only be
    # outside when they have no declared installation (judged by their own country). Only
    # chips with a narrower set are looked at one by one, with their reports.
    allowed_sets = set(map(_allowed, chips.values()))
    allowed_sets.discard(None)
    countries = {site.country for site in facilities.values()}
    narrow = {allowed for allowed in allowed_sets if not countries <= allowed}
    unplaced = chips.keys() - single.keys() - several.keys()
    suspects = {
        chip_id
        for chip_id in unplaced
        if (chip := chips[chip_id]).allowed_countries is not None
        and chip.country is not None
        and chip.country not in chip.allowed_countries
    }
    if not narrow:
        return suspects
    forbidden_sites: dict[frozenset[str], frozenset[int]] = {}
    watch: dict[str, frozenset[int]] = {}
    looked_at = map(narrow.__contains__, map(_allowed, chips.values()))
    for chip_id, chip in compress(chips.items(), looked_at):
        allowed = chip.allowed_countries
        if allowed is None:
            continue
        bad = forbidden_sites.get(allowed)
        if bad is None:
            bad = frozenset(f for f, site in facilities.items() if site.country not in allowed)
            forbidden_sites[allowed] = bad
        one = single.get(chip_id)
        chip_stays = several.get(chip_id) if one is None else (one,)
        if chip_stays:
            if bad and any(stay.facility_id in bad for stay in chip_stays):
                suspects.add(chip_id)
                continue
        elif chip.country is not None and chip.country not in allowed:
            suspects.add(chip_id)
            continue
        if bad:
            watch[chip_id] = bad
    if watch:
        watch_get = watch.get
        for r in snapshot.reports:
            claimed = r.facility_id
            if claimed is None:
                continue
            bad = watch_get(r.chip_id)
            if bad is not None and (claimed or -1) in bad:
                suspects.add(r.chip_id)
    return suspects


def _find_forbidden_countries(ctx: RuleContext) -> list[Finding]:
    """One finding per chip with transfer conditions that is declared, or claims to report,
    from a facility in a country outside its allowed countries."""
    rule = ctx.settings(ForbiddenCountryParams)
    if rule is None:
        return []
    snapshot, policy, index = ctx.snapshot, ctx.policy, ctx.index
    min_reports = rule.params.min_reports
    suspects = _forbidden_suspects(snapshot, index)
    if not suspects:
        return []
    claims: dict[str, list[ReportFact]] = defaultdict(list)
    for report in snapshot.reports:
        if report.facility_id is not None and report.chip_id in suspects:
            claims[report.chip_id].append(report)
    findings: list[Finding] = []
    for chip_id in sorted(suspects):
        chip = snapshot.chips[chip_id]
        allowed = chip.allowed_countries or frozenset()
        # (country, facility) -> (since, evidence, how)
        places: dict[tuple[str, int], tuple[datetime | None, list[int | None], str]] = {}
        chip_stays = index.stays_of(chip_id) or []
        for stay in chip_stays:
            site = snapshot.facilities.get(stay.facility_id)
            if site is not None and site.country not in allowed:
                places[(site.country, stay.facility_id)] = (
                    stay.start,
                    [stay.log_index],
                    "declared",
                )
        if not chip_stays and chip.country is not None and chip.country not in allowed:
            places[(chip.country, chip.facility_id or 0)] = (chip.installed_at, [], "declared")
        reported: dict[tuple[str, int], list[ReportFact]] = defaultdict(list)
        for r in claims.get(chip_id, ()):
            site = snapshot.facilities.get(r.facility_id or -1)
            if site is not None and site.country not in allowed:
                reported[(site.country, site.facility_id)].append(r)
        for key, rs in reported.items():
            if len(rs) < min_reports or key in places:
                continue
            rs.sort(key=lambda r: r.window_start)
            places[key] = (rs[0].window_start, [r.log_index for r in rs], "reported")
        if not places:
            continue
        ordered = sorted(places.items(), key=lambda kv: (kv[1][0] is None, kv[1][0] or _FAR, kv[0]))
        (country, facility_id), (since, _, how) = ordered[0]
        all_evidence = [e for _, ev, _ in places.values() for e in ev]
        findings.append(
            make_finding(
                rule,
                policy,
                kind="forbidden_country",
                subject_type="chip",
                subject_id=chip_id,
                facility_id=facility_id or None,
                country=country,
                window_start=since,
                window_end=None,
                summary=(
                    f"Chip {chip_id} ({chip.model}) is {how} in {country} (facility "
                    f"{facility_id}), outside the countries its transfer conditions allow: "
                    f"{', '.join(sorted(allowed)) or 'none'}."
                ),
                details={
                    "chip_id": chip_id,
                    "allowed_countries": sorted(allowed),
                    "places": [
                        {
                            "country": c,
                            "facility_id": f,
                            "how": h,
                            "since": None if s is None else rfc3339(s),
                        }
                        for (c, f), (s, _, h) in sorted(places.items())
                    ],
                },
                evidence=all_evidence,
            )
        )
    return findings


RTT_MISMATCH = Rule(
    rule_ids=(RTT_RULE_ID,), kinds=("location_mismatch",), find=_find_rtt_mismatches
)
WRONG_FACILITY = Rule(
    rule_ids=(WRONG_FACILITY_RULE_ID,),
    kinds=("wrong_facility",),
    find=_find_wrong_facility_reports,
)
FORBIDDEN_COUNTRY = Rule(
    rule_ids=(FORBIDDEN_RULE_ID,), kinds=("forbidden_country",), find=_find_forbidden_countries
)
