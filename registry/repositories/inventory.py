"""Read-side queries behind the inventory API and the console: chips and clusters by filter
(with a total for pagination), per-window sums for charts, counts for the overview."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, exists, func, or_, select, text, union_all
from sqlalchemy.orm import Session

from attestation.logentries import USAGE_REPORT
from registry.db.models import (
    NOT_A_REPORT,
    Chip,
    ClusterMember,
    DeclaredCluster,
    Facility,
    Finding,
    Installation,
    Landmark,
    LandmarkMeasurement,
    LogEntry,
    Meter,
    MeterReading,
    Operator,
    Report,
    Vendor,
)

__all__ = ["ChipRow", "InventoryRepository", "WindowSum"]


@dataclass(frozen=True, slots=True)
class ChipRow:
    """A chip with where it is now (``installation`` is None when installed nowhere)."""

    chip: Chip
    installation: Installation | None


@dataclass(frozen=True, slots=True)
class WindowSum:
    window_start: datetime
    window_end: datetime
    total: float
    count: int


_CURRENT = and_(Installation.chip_id == Chip.chip_id, Installation.removed_at.is_(None))

# The columns of ``GET /v1/chips``'s items, labelled with the names it gives them.
_LIST_COLUMNS = (
    Chip.chip_id,
    Chip.vendor_id,
    Chip.model,
    Chip.key_id,
    Chip.peak_tflops_bf16,
    Chip.tdp_watts,
    Chip.enrolled_at,
    Chip.last_seq,
    Chip.last_window_end,
    Chip.decommissioned_at,
    Chip.decommission_reason,
    Chip.revoked_at,
    Chip.revocation_reason,
    Chip.hardware_id,
    Chip.hardware_attested_at,
    Vendor.name.label("vendor"),
    Installation.facility_id,
    Facility.name.label("facility_name"),
    Facility.country,
    Facility.operator_id,
    Operator.name.label("operator_name"),
    Installation.installed_at,
)

# Up to this many facilities match a filter, a page is merged from each one's index.
_MERGED_FACILITIES = 64


def _chip_filters(
    *,
    country: str | None,
    facility_id: int | None,
    operator_id: int | None,
    vendor_id: int | None,
    model: str | None,
    installed: bool | None,
) -> tuple[list[ColumnElement[bool]], list[ColumnElement[bool]], list[ColumnElement[bool]]]:
    """The chip list's filters: on the chip, on its facility, on its custody."""
    chip_filters: list[ColumnElement[bool]] = []
    if vendor_id is not None:
        chip_filters.append(Chip.vendor_id == vendor_id)
    if model is not None:
        chip_filters.append(Chip.model == model)
    site_filters: list[ColumnElement[bool]] = []
    if country is not None:
        site_filters.append(Facility.country == country)
    if operator_id is not None:
        site_filters.append(Facility.operator_id == operator_id)
    custody_filters: list[ColumnElement[bool]] = []
    if facility_id is not None:
        custody_filters.append(Installation.facility_id == facility_id)
    if installed is True:
        custody_filters.append(Installation.id.is_not(None))
    elif installed is False:
        custody_filters.append(Installation.id.is_(None))
    return chip_filters, site_filters, custody_filters


class InventoryRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _total(self, stmt: Select[*tuple[Any, ...]]) -> int:
        return int(self.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)

    def chips(
        self,
        *,
        country: str | None = None,
        facility_id: int | None = None,
        operator_id: int | None = None,
        vendor_id: int | None = None,
        model: str | None = None,
        installed: bool | None = None,
        after: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[ChipRow], int]:
        """One page of the chips matching the filters, in chip id order, from the first id
        above ``after`` (keyset paging: a seek in the primary key, not a walk over ``offset``
        rows), and the number of every match (``after`` does not change it). ORM objects, for
        the console and the exports; :meth:`chip_list` is the API's lean form of the same."""
        chip_filters, site_filters, custody_filters = _chip_filters(
            country=country,
            facility_id=facility_id,
            operator_id=operator_id,
            vendor_id=vendor_id,
            model=model,
            installed=installed,
        )
        stmt = (
            select(Chip, Installation)
            .outerjoin(Installation, _CURRENT)
            .outerjoin(Facility, Facility.id == Installation.facility_id)
            .where(*chip_filters, *site_filters, *custody_filters)
        )
        total = self._chip_count(chip_filters, site_filters, custody_filters, installed)
        # With a facility, the rows are that facility's current installations, which the index
        # ix_installations_facility_current holds in chip id order: ordering by the
        # installation's chip id (equal to the chip's) reads the page from the index instead
        # of sorting every chip there (40,000 on a campus) for each page.
        order = Installation.chip_id if facility_id is not None else Chip.chip_id
        if after is not None:
            stmt = stmt.where(order > after)
        rows = self.session.execute(stmt.order_by(order).limit(limit).offset(offset))
        return [ChipRow(chip, inst) for chip, inst in rows], total

    def chip_list(
        self,
        *,
        country: str | None = None,
        facility_id: int | None = None,
        operator_id: int | None = None,
        vendor_id: int | None = None,
        model: str | None = None,
        installed: bool | None = None,
        after: str | None = None,
        limit: int = 100,
        offset: int = 0,
        total: int | None = None,
    ) -> tuple[list[Row[Any]], int]:
        """:meth:`chips` as plain rows of the listed columns (labelled as ``GET /v1/chips``
        names them), in two steps: the page's chip ids from an index alone
        (:meth:`_chip_page_ids`), then those chips' columns by primary key. No ORM objects,
        no certificate read: at 100,000 chips the cost is the page, not the fleet. ``total``,
        when the caller has it (the read totals), is not counted again."""
        chip_filters, site_filters, custody_filters = _chip_filters(
            country=country,
            facility_id=facility_id,
            operator_id=operator_id,
            vendor_id=vendor_id,
            model=model,
            installed=installed,
        )
        if total is None:
            total = self._chip_count(chip_filters, site_filters, custody_filters, installed)
        ids = self._chip_page_ids(
            chip_filters,
            site_filters,
            facility_id=facility_id,
            installed=installed,
            after=after,
            limit=limit,
            offset=offset,
        )
        if not ids:
            return [], total
        stmt = (
            select(*_LIST_COLUMNS)
            .join(Vendor, Vendor.id == Chip.vendor_id)
            .outerjoin(Installation, _CURRENT)
            .outerjoin(Facility, Facility.id == Installation.facility_id)
            .outerjoin(Operator, Operator.id == Facility.operator_id)
            .where(Chip.chip_id.in_(ids))
        )
        by_id: dict[str, Any] = {row.chip_id: row for row in self.session.execute(stmt)}
        return [by_id[i] for i in ids if i in by_id], total

    def _chip_count(
        self,
        chip_filters: list[ColumnElement[bool]],
        site_filters: list[ColumnElement[bool]],
        custody_filters: list[ColumnElement[bool]],
        installed: bool | None,
    ) -> int:
        # The count joins only what its filters need: a chip has at most one current
        # installation, so an outer join nothing filters on changes no count, and counting
        # 100,000 chips alone is several times cheaper than through two joins.
        count = select(func.count()).select_from(Chip).where(*chip_filters)
        if installed is False:
            count = count.outerjoin(Installation, _CURRENT).where(*custody_filters)
            if site_filters:
                count = count.outerjoin(Facility, Facility.id == Installation.facility_id)
                count = count.where(*site_filters)
        elif site_filters or custody_filters:
            # Inner joins: every filter here needs an installation, and the planner may then
            # start from the facility's installations instead of every chip; with no filter on
            # the chip itself, the installations alone (every installation names an enrolled
            # chip) are counted from their index.
            if chip_filters:
                count = count.join(Installation, _CURRENT)
            else:
                count = select(func.count()).select_from(Installation)
                count = count.where(Installation.removed_at.is_(None))
            count = count.where(*custody_filters)
            if site_filters:
                count = count.join(Facility, Facility.id == Installation.facility_id)
                count = count.where(*site_filters)
        return int(self.session.scalar(count) or 0)

    def _chip_page_ids(
        self,
        chip_filters: list[ColumnElement[bool]],
        site_filters: list[ColumnElement[bool]],
        *,
        facility_id: int | None,
        installed: bool | None,
        after: str | None,
        limit: int,
        offset: int,
    ) -> list[str]:
        """The ids of one page of matching chips, in chip id order, read from an index
        without the chips' rows where no filter is on the chip itself: the chips' primary key,
        the current installations by chip (``status=installed``), or, with a facility, a
        country or an operator, each matching facility's current installations in chip id
        order (ix_installations_facility_current), merged. ``offset`` still walks the
        skipped entries, but only an index's, not the rows and joins of each."""
        if facility_id is None and not site_filters:
            if installed is True:
                # Every current installation names an enrolled chip.
                stmt = select(Installation.chip_id.label("chip_id")).where(
                    Installation.removed_at.is_(None)
                )
                if chip_filters:
                    stmt = stmt.join(Chip, Chip.chip_id == Installation.chip_id)
                key: Any = Installation.chip_id
            else:
                stmt = select(Chip.chip_id)
                if installed is False:
                    stmt = stmt.where(~exists().where(_CURRENT))
                key = Chip.chip_id
            stmt = stmt.where(*chip_filters)
            if after is not None:
                stmt = stmt.where(key > after)
            return list(self.session.scalars(stmt.order_by(key).limit(limit).offset(offset)))
        if installed is False:
            return []  # a facility, country or operator is only ever matched by custody
        facilities = select(Facility.id).where(*site_filters)
        if facility_id is not None:
            facilities = facilities.where(Facility.id == facility_id)
        matched = list(self.session.scalars(facilities.order_by(Facility.id)))
        if not matched:
            return []

        def at(facility: int) -> Select[str]:
            stmt = select(Installation.chip_id).where(
                Installation.facility_id == facility, Installation.removed_at.is_(None)
            )
            if chip_filters:
                stmt = stmt.join(Chip, Chip.chip_id == Installation.chip_id)
                stmt = stmt.where(*chip_filters)
            if after is not None:
                stmt = stmt.where(Installation.chip_id > after)
            # removed_at is NULL in every row: ordering by it first changes nothing, but lets
            # PostgreSQL see the facility index's order (it treats only ``=``, not ``IS NULL``,
            # as fixing a column) instead of walking every installation in chip id order.
            return stmt.order_by(Installation.removed_at, Installation.chip_id)

        if len(matched) == 1:
            stmt = at(matched[0]).limit(limit).offset(offset)
            return list(self.session.scalars(stmt))
        if len(matched) <= _MERGED_FACILITIES:
            # Each facility's first offset + limit chips from its index, merged: a sort of
            # (offset + limit) x facilities ids instead of every chip in the country.
            parts = [at(f).limit(offset + limit).subquery() for f in matched]
            merged = union_all(*(select(p.c.chip_id) for p in parts)).subquery()
            stmt = select(merged.c.chip_id).order_by(merged.c.chip_id)
            return list(self.session.scalars(stmt.limit(limit).offset(offset)))
        # Many facilities: walk the current installations in chip id order instead.
        stmt = (
            select(Installation.chip_id)
            .join(Facility, Facility.id == Installation.facility_id)
            .where(Installation.removed_at.is_(None), Facility.id.in_(matched))
        )
        if chip_filters:
            stmt = stmt.join(Chip, Chip.chip_id == Installation.chip_id).where(*chip_filters)
        if after is not None:
            stmt = stmt.where(Installation.chip_id > after)
        stmt = stmt.order_by(Installation.chip_id).limit(limit).offset(offset)
        return list(self.session.scalars(stmt))

    def clusters(
        self,
        *,
        operator_id: int | None = None,
        facility_id: int | None = None,
        country: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> tuple[list[tuple[DeclaredCluster, Facility]], int]:
        """Declared clusters with the facility each is at."""
        stmt = select(DeclaredCluster, Facility).join(
            Facility, Facility.id == DeclaredCluster.facility_id
        )
        if operator_id is not None:
            stmt = stmt.where(DeclaredCluster.operator_id == operator_id)
        if facility_id is not None:
            stmt = stmt.where(DeclaredCluster.facility_id == facility_id)
        if country is not None:
            stmt = stmt.where(Facility.country == country)
        total = self._total(stmt.with_only_columns(DeclaredCluster.id))
        rows = self.session.execute(stmt.order_by(DeclaredCluster.id).limit(limit).offset(offset))
        return [(c, f) for c, f in rows], total

    def operator_names(self, ids: Sequence[int]) -> dict[int, str]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = self.session.execute(
            select(Operator.id, Operator.name).where(Operator.id.in_(wanted))
        )
        return {i: n for i, n in rows}

    def chip_series(
        self, chip_id: str, *, start: datetime | None, end: datetime | None, limit: int
    ) -> list[Report]:
        """The chip's reports in window order (the newest ``limit`` of the period)."""
        stmt = select(Report).where(Report.chip_id == chip_id)
        if start is not None:
            stmt = stmt.where(Report.window_end > start)
        if end is not None:
            stmt = stmt.where(Report.window_start < end)
        rows = list(self.session.scalars(stmt.order_by(Report.seq.desc()).limit(limit)))
        return rows[::-1]

    def facility_chip_energy(
        self, facility_id: int, *, start: datetime | None, end: datetime | None
    ) -> list[WindowSum]:
        """Reported energy per window of the chips declared at the facility during the window
        (custody-aware: an installation counts for windows inside its installed period)."""
        stmt = (
            select(
                Report.window_start,
                Report.window_end,
                func.sum(Report.energy_j),
                func.count(),  # not count(id): the index ix_reports_chip_window has the rest
            )
            .join(Installation, Installation.chip_id == Report.chip_id)
            .where(
                Installation.facility_id == facility_id,
                Installation.installed_at <= Report.window_start,
                or_(
                    Installation.removed_at.is_(None),
                    Installation.removed_at >= Report.window_end,
                ),
            )
            .group_by(Report.window_start, Report.window_end)
            .order_by(Report.window_start)
        )
        if start is not None:
            stmt = stmt.where(Report.window_end > start)
        if end is not None:
            stmt = stmt.where(Report.window_start < end)
        return [WindowSum(a, b, float(s or 0), int(n)) for a, b, s, n in self.session.execute(stmt)]

    def facility_metered(
        self, facility_id: int, *, start: datetime | None, end: datetime | None
    ) -> list[WindowSum]:
        stmt = (
            select(
                MeterReading.window_start,
                MeterReading.window_end,
                func.sum(MeterReading.energy_j),
                func.count(MeterReading.id),
            )
            .where(MeterReading.facility_id == facility_id)
            .group_by(MeterReading.window_start, MeterReading.window_end)
            .order_by(MeterReading.window_start)
        )
        if start is not None:
            stmt = stmt.where(MeterReading.window_end > start)
        if end is not None:
            stmt = stmt.where(MeterReading.window_start < end)
        return [WindowSum(a, b, float(s or 0), int(n)) for a, b, s, n in self.session.execute(stmt)]

    def reports_per_window(self, *, operator_id: int | None, limit: int) -> list[WindowSum]:
        """Accepted reports per window (the newest ``limit`` windows), fleet-wide or for the
        chips delivered by one operator, from the rows: what the overview reads while the
        read totals' tail is long (no roll-up step ran for a while, or ever)."""
        mine: list[ColumnElement[bool]] = []
        if operator_id is not None:
            mine.append(Report.source_operator_id == operator_id)
        # Only the newest ``limit`` window starts are summed, not the whole history: found by
        # one index seek each (the newest below the previous one), then the sums read only those
        # windows' rows (the covering index ix_reports_window_energy holds all three columns).
        cutoff: datetime | None = None
        for _ in range(limit):
            below = [] if cutoff is None else [Report.window_start < cutoff]
            newest = self.session.scalar(
                select(Report.window_start)
                .where(*mine, *below)
                .order_by(Report.window_start.desc())
                .limit(1)
            )
            if newest is None:
                break
            cutoff = newest
        if cutoff is None:
            return []
        stmt = (
            select(Report.window_start, Report.window_end, func.sum(Report.energy_j), func.count())
            .where(*mine, Report.window_start >= cutoff)
            .group_by(Report.window_start, Report.window_end)
        )
        rows = self.session.execute(stmt.order_by(Report.window_start.desc()).limit(limit))
        return [WindowSum(a, b, float(s or 0), int(n)) for a, b, s, n in rows][::-1]

    def counts(
        self, *, operator_id: int | None, chips_installed: int | None = None
    ) -> dict[str, int]:
        """Chips (enrolled; of one operator: installed at its facilities), chips installed,
        facilities and countries (of one operator, or all). ``chips_installed``, when the
        caller has it (the read totals), is not counted again from the installations."""
        facilities = select(Facility.id, Facility.country)
        chips = select(Installation.chip_id).where(Installation.removed_at.is_(None))
        if operator_id is not None:
            facilities = facilities.where(Facility.operator_id == operator_id)
            chips = chips.join(Facility, Facility.id == Installation.facility_id).where(
                Facility.operator_id == operator_id
            )
        if chips_installed is None:
            chips_installed = self._total(chips)
        enrolled = self._total(select(Chip.chip_id)) if operator_id is None else chips_installed
        return {
            "chips": enrolled,
            "chips_installed": chips_installed,
            "facilities": self._total(facilities),
            "countries": self._total(facilities.with_only_columns(Facility.country).distinct()),
        }

    def open_findings(self, *, operator_id: int | None) -> list[tuple[str, str, int]]:
        """(severity, kind, count) of findings not yet resolved."""
        stmt = (
            select(Finding.severity, Finding.kind, func.count())
            .where(Finding.status != "resolved")
            .group_by(Finding.severity, Finding.kind)
            .order_by(Finding.severity, Finding.kind)
        )
        if operator_id is not None:
            stmt = stmt.join(Facility, Facility.id == Finding.facility_id).where(
                Facility.operator_id == operator_id
            )
        return [(s, k, int(n)) for s, k, n in self.session.execute(stmt)]

    def entry(self, index: int) -> LogEntry | None:
        return self.session.get(LogEntry, index)

    def entry_by_leaf_hash(self, leaf_hash: bytes) -> LogEntry | None:
        return self.session.scalar(
            select(LogEntry).where(LogEntry.leaf_hash == leaf_hash).order_by(LogEntry.index)
        )

    def members(self, cluster_id: int) -> list[str]:
        return list(
            self.session.scalars(
                select(ClusterMember.chip_id)
                .where(ClusterMember.cluster_id == cluster_id)
                .order_by(ClusterMember.chip_id)
            )
        )

    def entries_at(self, indexes: Sequence[int]) -> list[LogEntry]:
        """The log entries at these indexes (those that exist), in index order."""
        wanted = sorted(set(indexes))
        if not wanted:
            return []
        return list(
            self.session.scalars(
                select(LogEntry).where(LogEntry.index.in_(wanted)).order_by(LogEntry.index)
            )
        )

    def key_holders_of(
        self, key_ids: Sequence[str]
    ) -> dict[str, list[tuple[str, str, str, bytes]]]:
        """:meth:`key_holders` for many key ids at once: three queries, not three per key."""
        wanted = sorted(set(key_ids))
        found: dict[str, list[tuple[str, str, str, bytes]]] = {k: [] for k in wanted}
        if not wanted:
            return found
        for chip in self.session.scalars(select(Chip).where(Chip.key_id.in_(wanted))):
            found[chip.key_id].append(("chip", chip.chip_id, chip.model, bytes(chip.public_key)))
        for lm in self.session.scalars(select(Landmark).where(Landmark.key_id.in_(wanted))):
            found[lm.key_id].append(("landmark", str(lm.id), lm.name, bytes(lm.public_key)))
        for meter in self.session.scalars(select(Meter).where(Meter.key_id.in_(wanted))):
            found[meter.key_id].append(
                ("meter", str(meter.id), meter.name, bytes(meter.public_key))
            )
        return found

    def key_holders(self, key_id: str) -> list[tuple[str, str, str, bytes]]:
        """(type, id, name, raw public key) of registered chips, landmarks and meters whose
        key has this key id."""
        found: list[tuple[str, str, str, bytes]] = []
        chip = self.session.scalar(select(Chip).where(Chip.key_id == key_id))
        if chip is not None:
            found.append(("chip", chip.chip_id, chip.model, bytes(chip.public_key)))
        landmark = self.session.scalar(select(Landmark).where(Landmark.key_id == key_id))
        if landmark is not None:
            found.append(("landmark", str(landmark.id), landmark.name, bytes(landmark.public_key)))
        meter = self.session.scalar(select(Meter).where(Meter.key_id == key_id))
        if meter is not None:
            found.append(("meter", str(meter.id), meter.name, bytes(meter.public_key)))
        return found

    def operators(self) -> list[Operator]:
        return list(self.session.scalars(select(Operator).order_by(Operator.id)))

    def latest_entry_of_kind(self, kind: str) -> LogEntry | None:
        """The newest entry of a kind other than a usage report: a seek in the partial index
        ix_log_entries_kind_index (the query repeats its predicate so SQLite can use it;
        without it PostgreSQL scanned the whole log for a rare kind)."""
        if kind == USAGE_REPORT:
            msg = "the newest usage report is the log's newest report entry, not a kind lookup"
            raise ValueError(msg)
        return self.session.scalar(
            select(LogEntry)
            .where(LogEntry.kind == kind, text(NOT_A_REPORT))
            .order_by(LogEntry.index.desc())
            .limit(1)
        )

    def facility_ids(
        self,
        *,
        operator_id: int | None,
        country: str | None = None,
        facility_id: int | None = None,
    ) -> list[int]:
        """The ids of the facilities (of one operator, in one country, that one, or all)."""
        stmt = select(Facility.id).order_by(Facility.id)
        if operator_id is not None:
            stmt = stmt.where(Facility.operator_id == operator_id)
        if country is not None:
            stmt = stmt.where(Facility.country == country)
        if facility_id is not None:
            stmt = stmt.where(Facility.id == facility_id)
        return list(self.session.scalars(stmt))

    def facilities(self, *, operator_id: int | None, country: str | None) -> list[Facility]:
        """Facilities (of one operator, in one country, or all) by country, then id."""
        stmt = select(Facility).order_by(Facility.country, Facility.id)
        if operator_id is not None:
            stmt = stmt.where(Facility.operator_id == operator_id)
        if country is not None:
            stmt = stmt.where(Facility.country == country)
        return list(self.session.scalars(stmt))

    def facility_aggregates(
        self, *, operator_id: int | None, country: str | None, facility_id: int | None = None
    ) -> list[tuple[Facility, int, float]]:
        """(facility, chips installed now, their total BF16 peak TFLOP/s) per facility."""
        stmt = (
            select(
                Facility,
                func.count(Installation.id),
                func.coalesce(func.sum(Chip.peak_tflops_bf16), 0.0),
            )
            .outerjoin(
                Installation,
                and_(Installation.facility_id == Facility.id, Installation.removed_at.is_(None)),
            )
            .outerjoin(Chip, Chip.chip_id == Installation.chip_id)
            .group_by(Facility.id)
            .order_by(Facility.country, Facility.id)
        )
        if operator_id is not None:
            stmt = stmt.where(Facility.operator_id == operator_id)
        if country is not None:
            stmt = stmt.where(Facility.country == country)
        if facility_id is not None:
            stmt = stmt.where(Facility.id == facility_id)
        return [(f, int(n), float(p)) for f, n, p in self.session.execute(stmt)]

    def cluster_compute(self, cluster_id: int) -> list[WindowSum]:
        """Per window, the members' reported compute: sum of utilisation x BF16 peak (TFLOP/s),
        with the number of member reports."""
        stmt = (
            select(
                Report.window_start,
                Report.window_end,
                func.sum(Report.utilization * Chip.peak_tflops_bf16),
                func.count(),
            )
            .join(ClusterMember, ClusterMember.chip_id == Report.chip_id)
            .join(Chip, Chip.chip_id == Report.chip_id)
            .where(ClusterMember.cluster_id == cluster_id)
            .group_by(Report.window_start, Report.window_end)
            .order_by(Report.window_start)
        )
        return [WindowSum(a, b, float(t or 0), int(n)) for a, b, t, n in self.session.execute(stmt)]

    def measurements(self, chip_id: str, limit: int) -> list[tuple[LandmarkMeasurement, Landmark]]:
        """The chip's newest landmark round trips, with their landmarks."""
        rows = self.session.execute(
            select(LandmarkMeasurement, Landmark)
            .join(Landmark, Landmark.id == LandmarkMeasurement.landmark_id)
            .where(LandmarkMeasurement.chip_id == chip_id)
            .order_by(LandmarkMeasurement.measured_at.desc())
            .limit(limit)
        )
        return [(m, lm) for m, lm in rows]

    def received_since(self, since: datetime, *, operator_id: int | None) -> int:
        """Reports accepted since ``since`` (delivered by one operator, or all)."""
        stmt = select(func.count()).select_from(Report).where(Report.received_at >= since)
        if operator_id is not None:
            stmt = stmt.where(Report.source_operator_id == operator_id)
        return int(self.session.scalar(stmt) or 0)
