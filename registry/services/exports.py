"""Signed exports: the inventory (chips per facility and country, with custody) and the
findings, as CSV or JSON, each with a detached signature by the log's key naming the latest
published checkpoint (``audit.exports``; ``chipreg audit --export`` verifies them)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attestation.logentries import timestamp
from registry.auth import Principal, Role
from registry.errors import InvalidRequest, NotFound
from registry.repositories.findings import FindingRepository
from registry.repositories.inventory import InventoryRepository
from registry.services.findings import finding_document
from registry.services.log import LogSigner, TransparencyLog

__all__ = ["Export", "ExportService"]

ALL = 10**9
INVENTORY_COLUMNS = [
    "chip_id",
    "model",
    "vendor",
    "country",
    "facility_id",
    "facility_name",
    "operator_name",
    "installed_at",
    "installation_log_index",
]
FINDING_COLUMNS = [
    "id",
    "kind",
    "severity",
    "status",
    "rule_id",
    "rule_version",
    "policy_id",
    "policy_version",
    "subject_type",
    "subject_id",
    "facility_id",
    "country",
    "window_start",
    "window_end",
    "summary",
    "evidence",
    "citation",
    "fingerprint",
]


@dataclass(frozen=True)
class Export:
    kind: str
    fmt: str
    filename: str
    media_type: str
    content: bytes
    signature: bytes
    checkpoint_size: int


def _when(value: datetime | None) -> str | None:
    return None if value is None else timestamp(value)


class ExportService:
    def __init__(self, session: Session, signer: LogSigner, clock: Callable[[], datetime]):
        self.log = TransparencyLog(session, signer)
        self.inventory = InventoryRepository(session)
        self.findings = FindingRepository(session)
        self.clock = clock

    def export(self, caller: Principal, kind: str, fmt: str) -> Export:
        # audit.exports pulls in the auditor and the verifier: imported by the export itself,
        # not by every API process at start-up.
        from audit.exports import EXPORT_FORMATS, EXPORT_KINDS, sign_export

        caller.require(Role.ADMIN, Role.INSPECTOR, Role.PARTNER)
        if kind not in EXPORT_KINDS or fmt not in EXPORT_FORMATS:
            raise InvalidRequest(
                f"exports are {', '.join(EXPORT_KINDS)} as {', '.join(EXPORT_FORMATS)}",
                code="bad_export",
            )
        published = self.log.published()
        if published is None or published.size == 0:
            raise NotFound("no checkpoint is published yet", code="not_yet_published")
        now = self.clock()
        size = published.size
        rows = self._inventory(size) if kind == "inventory" else self._findings()
        if fmt == "json":
            doc = {
                "kind": kind,
                "created_at": timestamp(now),
                "checkpoint_size": size,
                "checkpoint_root": published.root_hash.hex(),
                "chips" if kind == "inventory" else "findings": rows,
            }
            if kind == "inventory":
                doc["summary"] = _summary(rows)
            content = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
        else:
            content = _csv(rows, INVENTORY_COLUMNS if kind == "inventory" else FINDING_COLUMNS)
        signature = sign_export(
            content=content,
            origin=self.log.signer.origin,
            kind=kind,
            fmt=fmt,
            checkpoint=published.cosigned_note,
            key=self.log.signer.signer.private_key,
            created_at=now,
        )
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        return Export(
            kind=kind,
            fmt=fmt,
            filename=f"chipreg-{kind}-{stamp}.{fmt}",
            media_type="text/csv" if fmt == "csv" else "application/json",
            content=content,
            signature=signature,
            checkpoint_size=size,
        )

    def _inventory(self, size: int) -> list[dict[str, Any]]:
        """Every chip with its current custody, as of the cut: an installation logged after
        the checkpoint is not in it yet."""
        chips, _ = self.inventory.chips(limit=ALL)
        names = self.inventory.operator_names(
            [r.installation.facility.operator_id for r in chips if r.installation]
        )
        out = []
        for r in chips:
            inst = r.installation
            if inst is not None and inst.log_index is not None and inst.log_index >= size:
                inst = None
            out.append(
                {
                    "chip_id": r.chip.chip_id,
                    "model": r.chip.model,
                    "vendor": r.chip.vendor.name,
                    "country": inst.facility.country if inst else None,
                    "facility_id": inst.facility_id if inst else None,
                    "facility_name": inst.facility.name if inst else None,
                    "operator_name": names.get(inst.facility.operator_id) if inst else None,
                    "installed_at": _when(inst.installed_at) if inst else None,
                    "installation_log_index": inst.log_index if inst else None,
                }
            )
        return out

    def _findings(self) -> list[dict[str, Any]]:
        return [finding_document(f) for f in self.findings.search(limit=ALL)]


def _summary(chips: list[dict[str, Any]]) -> dict[str, Any]:
    per_country: dict[str, int] = {}
    per_facility: dict[str, int] = {}
    for c in chips:
        if c["country"] is None:
            continue
        per_country[c["country"]] = per_country.get(c["country"], 0) + 1
        key = f"{c['facility_id']} {c['facility_name']}"
        per_facility[key] = per_facility.get(key, 0) + 1
    return {"chips": len(chips), "per_country": per_country, "per_facility": per_facility}


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        values = []
        for c in columns:
            v = row.get(c)
            if c == "evidence":
                v = " ".join(str(i) for i in v or ())
            values.append("" if v is None else v)
        writer.writerow(values)
    return out.getvalue().encode()
