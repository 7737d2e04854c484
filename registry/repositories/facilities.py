"""Facilities, installations (chain of custody) and declared clusters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db.models import ClusterMember, DeclaredCluster, Facility, Installation

__all__ = ["FacilityRepository"]


class FacilityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, obj: Facility | Installation | DeclaredCluster) -> None:
        self.session.add(obj)
        self.session.flush()

    def get(self, facility_id: int) -> Facility | None:
        return self.session.get(Facility, facility_id)

    def by_name(self, operator_id: int, name: str) -> Facility | None:
        return self.session.scalar(
            select(Facility).where(Facility.operator_id == operator_id, Facility.name == name)
        )

    def search(
        self, *, country: str | None = None, operator_id: int | None = None
    ) -> list[Facility]:
        stmt = select(Facility).order_by(Facility.id)
        if country is not None:
            stmt = stmt.where(Facility.country == country)
        if operator_id is not None:
            stmt = stmt.where(Facility.operator_id == operator_id)
        return list(self.session.scalars(stmt))

    def current_installation(self, chip_id: str) -> Installation | None:
        return self.session.scalar(
            select(Installation).where(
                Installation.chip_id == chip_id, Installation.removed_at.is_(None)
            )
        )

    def current_installations(self, chip_ids: Iterable[str]) -> dict[str, Installation]:
        ids = list(chip_ids)
        if not ids:
            return {}
        rows = self.session.scalars(
            select(Installation).where(
                Installation.chip_id.in_(ids), Installation.removed_at.is_(None)
            )
        )
        return {row.chip_id: row for row in rows}

    def installation_at(
        self, chip_id: str, facility_id: int, installed_at: datetime
    ) -> Installation | None:
        """The chip's installation at this facility beginning at exactly this instant."""
        return self.session.scalar(
            select(Installation).where(
                Installation.chip_id == chip_id,
                Installation.facility_id == facility_id,
                Installation.installed_at == installed_at,
            )
        )

    def installations_at(self, facility_id: int) -> list[Installation]:
        return list(
            self.session.scalars(
                select(Installation)
                .where(Installation.facility_id == facility_id, Installation.removed_at.is_(None))
                .order_by(Installation.chip_id)
            )
        )

    def custody(self, chip_id: str) -> list[Installation]:
        return list(
            self.session.scalars(
                select(Installation)
                .where(Installation.chip_id == chip_id)
                .order_by(Installation.installed_at, Installation.id)
            )
        )

    def all_installations(self) -> list[Installation]:
        """Every installation, past and present, in custody order."""
        return list(
            self.session.scalars(
                select(Installation).order_by(Installation.installed_at, Installation.id)
            )
        )

    def all_current_installations(self) -> list[Installation]:
        return list(
            self.session.scalars(select(Installation).where(Installation.removed_at.is_(None)))
        )

    def clusters(self, *, active_after: datetime | None = None) -> list[DeclaredCluster]:
        stmt = select(DeclaredCluster).order_by(DeclaredCluster.id)
        if active_after is not None:
            stmt = stmt.where(DeclaredCluster.end > active_after)
        return list(self.session.scalars(stmt))

    def cluster(self, cluster_id: int) -> DeclaredCluster | None:
        return self.session.get(DeclaredCluster, cluster_id)

    def add_members(self, cluster: DeclaredCluster, chip_ids: Iterable[str]) -> None:
        cluster.members.extend(ClusterMember(chip_id=c) for c in chip_ids)
        self.session.flush()
