"""The inventory read side: chips and clusters by filter, per-chip time series, a facility's
power balance per window, and the overview counts. Access follows the query service's rules:
admins, inspectors and partners read everything; an operator reads what is at its own
facilities; a vendor reads its own chips."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from attestation.logentries import VERIFIER_RUN
from registry.auth import Principal, Role
from registry.db.models import Chip, DeclaredCluster, Facility, Finding, LogEntry, Report
from registry.errors import Forbidden, NotFound
from registry.repositories.inventory import ChipRow, InventoryRepository, WindowSum
from registry.repositories.log import LogRepository
from registry.services.queries import READ_ALL, QueryService
from registry.services.rollup import ReadTotals

__all__ = [
    "BalanceWindow",
    "ChipsPage",
    "ClustersPage",
    "CountryAggregate",
    "FacilityAggregate",
    "FacilityPage",
    "InventoryService",
    "LocationCheck",
    "Overview",
    "PowerBalance",
]


# The console's reading of a round trip; the verifier's location rule takes its own figure from
# the policy (``km_per_ms_rtt``) and adds slack before it flags anything.
KM_PER_MS_RTT = 100.0


@dataclass(frozen=True)
class ChipsPage:
    rows: list[ChipRow]
    total: int
    operator_names: dict[int, str]


@dataclass(frozen=True)
class FacilityPage:
    """A facility, its chips' number and total peak, and one page of its chips."""

    facility: Facility
    chip_count: int
    peak_tflops_bf16: float
    chips: list[Chip]
    next_after: str | None


@dataclass(frozen=True)
class ClustersPage:
    clusters: list[tuple[DeclaredCluster, Facility]]
    total: int
    operator_names: dict[int, str]


@dataclass(frozen=True)
class BalanceWindow:
    """One window of a facility's power balance, in joules over the window."""

    window_start: datetime
    window_end: datetime
    seconds: float
    reports: int
    reported_chip_energy_j: float
    non_it_load_j: float
    expected_j: float  # reported chip energy x PUE + declared non-IT load
    metered_j: float | None  # None: no meter reading for this window
    capacity_j: float  # declared IT power x PUE + non-IT load, over the window

    def kw(self, joules: float | None) -> float | None:
        return None if joules is None else joules / self.seconds / 1000


@dataclass(frozen=True)
class PowerBalance:
    facility: Facility
    windows: list[BalanceWindow]


@dataclass(frozen=True)
class FacilityAggregate:
    facility: Facility
    chips: int
    peak_tflops_bf16: float


@dataclass(frozen=True)
class CountryAggregate:
    country: str
    facilities: int
    chips: int
    peak_tflops_bf16: float


@dataclass(frozen=True)
class LocationCheck:
    """One landmark round trip of a chip against its declared site: at the speed light
    travels in fibre (about 100 km per millisecond of round trip), the RTT bounds how far from
    the landmark the chip can be."""

    landmark: str
    measured_at: datetime
    rtt_ms: float
    log_index: int
    reach_km: float  # the most the RTT allows
    declared_km: float | None  # landmark to the declared facility; None: installed nowhere

    @property
    def consistent(self) -> bool | None:
        return None if self.declared_km is None else self.declared_km <= self.reach_km


@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    open_findings: list[tuple[str, str, int]]
    log_size: int
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    cosignatures: int
    last_run: LogEntry | None
    reports_per_window: list[WindowSum]
    received_last_hour: int


class InventoryService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
        self.repo = InventoryRepository(session)
        self.log = LogRepository(session)
        self.queries = QueryService(session)
        self.totals = ReadTotals(session, clock)
        self.clock = clock

    def _scope(self, caller: Principal, operator_id: int | None) -> dict[str, Any]:
        """Filters the caller is confined to: its own operator or vendor."""
        if caller.role in READ_ALL:
            return {"operator_id": operator_id}
        if caller.role is Role.VENDOR:
            return {"operator_id": operator_id, "vendor_id": caller.vendor_id}
        caller.require(Role.OPERATOR)
        if operator_id is not None and operator_id != caller.operator_id:
            raise Forbidden(
                f"this token acts for operator {caller.operator_id}, not {operator_id}",
                code="not_your_operator",
            )
        return {"operator_id": caller.operator_id}

    def chips(
        self,
        caller: Principal,
        *,
        operator_id: int | None = None,
        status: str | None = None,
        **filters: Any,
    ) -> ChipsPage:
        installed = None if status is None else status == "installed"
        rows, total = self.repo.chips(
            **self._scope(caller, operator_id), installed=installed, **filters
        )
        ops = [r.installation.facility.operator_id for r in rows if r.installation]
        return ChipsPage(rows, total, self.repo.operator_names(ops))

    def chip_list(
        self,
        caller: Principal,
        *,
        operator_id: int | None = None,
        status: str | None = None,
        **filters: Any,
    ) -> tuple[list[Row[Any]], int]:
        """:meth:`chips` for the read API: rows of the listed columns (operator names
        included), not ORM objects."""
        installed = None if status is None else status == "installed"
        scope = self._scope(caller, operator_id)
        return self.repo.chip_list(
            **scope,
            installed=installed,
            total=self._installed_total(scope, installed, filters),
            **filters,
        )

    def _installed_total(
        self, scope: dict[str, Any], installed: bool | None, filters: dict[str, Any]
    ) -> int | None:
        """The number of chips a list filtered only by where they are installed (a facility,
        a country, an operator, ``status=installed``) counts: the running totals per facility
        while custody is unchanged since the last roll-up step, instead of counting the
        installations; None (count them) for any other filter, or when custody changed."""
        if scope.get("vendor_id") is not None or filters.get("model") is not None:
            return None
        site = {k: filters.get(k) for k in ("country", "facility_id")}
        if installed is False or (
            installed is None and scope["operator_id"] is None and not any(site.values())
        ):
            return None  # chips installed nowhere are in no facility's total
        ids = self.repo.facility_ids(operator_id=scope["operator_id"], **site)
        per_facility = self.totals.facility_chips(ids)
        if per_facility is None:
            return None
        return sum(n for n, _ in per_facility.values())

    def facility(
        self, caller: Principal, facility_id: int, *, after: str | None, limit: int
    ) -> FacilityPage:
        """The facility, the number and total peak of the chips installed there now (running
        totals, or the installations while custody changed since the last roll-up step), and
        one page of them in chip id order after ``after``."""
        facility = self.queries.readable_facility(caller, facility_id)
        rows, _ = self.repo.chips(facility_id=facility_id, after=after, limit=limit + 1)
        chips = [r.chip for r in rows[:limit]]
        totals = self.totals.facility_chips([facility_id])
        if totals is not None:
            count, peak = totals.get(facility_id, (0, 0.0))
        else:
            _, count, peak = self.repo.facility_aggregates(
                operator_id=None, country=None, facility_id=facility_id
            )[0]
        next_after = chips[-1].chip_id if len(rows) > limit else None
        return FacilityPage(facility, count, peak, chips, next_after)

    def clusters(
        self, caller: Principal, *, operator_id: int | None = None, **filters: Any
    ) -> ClustersPage:
        scope = self._scope(caller, operator_id)
        if caller.role is Role.VENDOR:
            raise Forbidden("vendors do not read cluster declarations", code="role_not_allowed")
        clusters, total = self.repo.clusters(**scope, **filters)
        return ClustersPage(
            clusters, total, self.repo.operator_names([c.operator_id for c, _ in clusters])
        )

    def cluster_compute(self, caller: Principal, cluster_id: int) -> list[tuple[WindowSum, float]]:
        """Per window, the members' compute (reported utilisation x peak, TFLOP/s) and the
        running total of dense operations (FLOP) since the first window."""
        self.cluster(caller, cluster_id)
        total, out = 0.0, []
        for w in self.repo.cluster_compute(cluster_id):
            total += w.total * 1e12 * (w.window_end - w.window_start).total_seconds()
            out.append((w, total))
        return out

    def cluster(self, caller: Principal, cluster_id: int) -> tuple[DeclaredCluster, str]:
        caller.require(*READ_ALL, Role.OPERATOR)  # before the lookup: a 404 tells too
        cluster = self.queries.facilities.cluster(cluster_id)
        if cluster is None:
            raise NotFound(f"no cluster {cluster_id}", code="unknown_cluster")
        if caller.role not in READ_ALL:
            caller.require_operator(cluster.operator_id)
        return cluster, self.repo.operator_names([cluster.operator_id])[cluster.operator_id]

    def aggregates(
        self, caller: Principal, *, country: str | None = None
    ) -> tuple[list[FacilityAggregate], list[CountryAggregate]]:
        """Chips and peak compute per facility and per country: what a partner limited to
        aggregates reads instead of per-chip detail."""
        if caller.role in READ_ALL:
            operator_id = None
        else:
            caller.require(Role.OPERATOR)
            operator_id = caller.operator_id
        facilities = self.repo.facilities(operator_id=operator_id, country=country)
        # The running totals (registry/services/rollup.py) while custody is unchanged since the
        # last roll-up step; otherwise counted from the installations.
        totals = self.totals.facility_chips([f.id for f in facilities])
        if totals is not None:
            per_facility = [FacilityAggregate(f, *totals.get(f.id, (0, 0.0))) for f in facilities]
        else:
            per_facility = [
                FacilityAggregate(f, n, peak)
                for f, n, peak in self.repo.facility_aggregates(
                    operator_id=operator_id, country=country
                )
            ]
        countries: dict[str, CountryAggregate] = {}
        for a in per_facility:
            c = countries.get(a.facility.country) or CountryAggregate(a.facility.country, 0, 0, 0.0)
            countries[a.facility.country] = CountryAggregate(
                c.country,
                c.facilities + 1,
                c.chips + a.chips,
                c.peak_tflops_bf16 + a.peak_tflops_bf16,
            )
        return per_facility, [countries[k] for k in sorted(countries)]

    def finding(self, caller: Principal, finding_id: int) -> Finding:
        """One finding, if the caller may read it (operators: about their own facilities)."""
        caller.require(*READ_ALL, Role.OPERATOR)  # before the lookup: a 404 tells too
        finding = self.queries.finding_repo.get(finding_id)
        if finding is None:
            raise NotFound(f"no finding {finding_id}", code="unknown_finding")
        if caller.role not in READ_ALL:
            facility = (
                self.queries.facilities.get(finding.facility_id) if finding.facility_id else None
            )
            if facility is None or facility.operator_id != caller.operator_id:
                raise Forbidden(
                    f"finding {finding_id} is not about one of your facilities",
                    code="not_your_operator",
                )
        return finding

    def locations(self, caller: Principal, chip_id: str, *, limit: int = 20) -> list[LocationCheck]:
        # Importing the verifier package builds its whole rule engine: not at API start-up.
        from verifier._common import great_circle_km

        _, current = self.queries.readable_chip(caller, chip_id)
        site = current.facility if current else None
        return [
            LocationCheck(
                landmark=lm.name,
                measured_at=m.measured_at,
                rtt_ms=m.rtt_ms,
                log_index=m.log_index,
                reach_km=m.rtt_ms * KM_PER_MS_RTT,
                declared_km=None
                if site is None
                else great_circle_km(lm.latitude, lm.longitude, site.latitude, site.longitude),
            )
            for m, lm in self.repo.measurements(chip_id, limit)
        ]

    def chip_series(
        self,
        caller: Principal,
        chip_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 96,
    ) -> tuple[Chip, list[Report]]:
        chip, _ = self.queries.readable_chip(caller, chip_id)
        return chip, self.repo.chip_series(chip_id, start=start, end=end, limit=limit)

    def power_balance(
        self,
        caller: Principal,
        facility_id: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> PowerBalance:
        facility = self.queries.readable_facility(caller, facility_id)
        rolled = self.totals.facility_windows(facility_id, start=start, end=end)
        if rolled is not None:
            energy = [
                WindowSum(w.window_start, w.window_end, w.energy_j, w.reports) for w in rolled
            ]
        else:  # custody changed since the last roll-up step: from the rows
            energy = self.repo.facility_chip_energy(facility_id, start=start, end=end)
        chips = {(w.window_start, w.window_end): w for w in energy}
        meters = {
            (w.window_start, w.window_end): w
            for w in self.repo.facility_metered(facility_id, start=start, end=end)
        }
        windows = []
        for key in sorted(chips.keys() | meters.keys()):
            seconds = (key[1] - key[0]).total_seconds()
            reported = chips[key].total if key in chips else 0.0
            non_it = facility.non_it_load_kw * 1000 * seconds
            windows.append(
                BalanceWindow(
                    window_start=key[0],
                    window_end=key[1],
                    seconds=seconds,
                    reports=chips[key].count if key in chips else 0,
                    reported_chip_energy_j=reported,
                    non_it_load_j=non_it,
                    expected_j=reported * facility.pue + non_it,
                    metered_j=meters[key].total if key in meters else None,
                    capacity_j=facility.declared_power_kw * 1000 * seconds * facility.pue + non_it,
                )
            )
        return PowerBalance(facility, windows)

    def _reports_per_window(self, operator_id: int | None, windows: int) -> list[WindowSum]:
        """The running totals plus their tail; from the rows (the newest windows only) while
        the tail is long: no roll-up step ran for a while, or ever."""
        if not self.totals.tail_is_short():
            return self.repo.reports_per_window(operator_id=operator_id, limit=windows)
        return [
            WindowSum(w.window_start, w.window_end, w.energy_j, w.reports)
            for w in self.totals.windows(operator_id=operator_id, newest=windows)
        ]

    def overview(self, caller: Principal, *, windows: int = 24) -> Overview:
        if caller.role in READ_ALL:
            operator_id = None
        else:
            caller.require(Role.OPERATOR)
            operator_id = caller.operator_id
        state = self.log.state()
        checkpoint = self.log.latest_checkpoint()
        cosignatures = 0
        if checkpoint is not None:
            cosignatures = len(self.log.cosignatures(checkpoint.size))
        # Chips installed: the running totals per facility while custody is unchanged since
        # the last roll-up step (not a count of every installation); else counted.
        per_facility = self.totals.facility_chips(self.repo.facility_ids(operator_id=operator_id))
        installed = None if per_facility is None else sum(n for n, _ in per_facility.values())
        return Overview(
            counts=self.repo.counts(operator_id=operator_id, chips_installed=installed),
            open_findings=self.repo.open_findings(operator_id=operator_id),
            log_size=0 if state is None else state.size,
            checkpoint_size=None if checkpoint is None else checkpoint.size,
            checkpoint_at=None if checkpoint is None else checkpoint.created_at,
            cosignatures=cosignatures,
            last_run=self.repo.latest_entry_of_kind(VERIFIER_RUN),
            reports_per_window=self._reports_per_window(operator_id, windows),
            received_last_hour=self.repo.received_since(
                self.clock() - timedelta(hours=1), operator_id=operator_id
            ),
        )
