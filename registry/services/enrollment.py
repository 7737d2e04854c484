"""Declarations: facilities, chip enrollment, installations (custody) and declared clusters.

Everything accepted here is appended to the transparency log in the same transaction:
facilities and enrollments as registry records, installations and clusters as the operator-
signed DSSE declaration envelopes (verified against the operator's registered key).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from attestation.certs import ChipEndorsement, verify_chip_certificate, verify_chip_certificates
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import CertificateError, FormatError, SignatureError
from attestation.keys import PublicKey
from attestation.logentries import CLUSTER, ENROLLMENT, INSTALLATION
from attestation.records import EnrollmentRecord, FacilityRecord, HostPower
from registry.auth import Principal, Role
from registry.db.models import Chip, DeclaredCluster, Facility, Installation, Vendor
from registry.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    RegistryError,
    from_core,
)
from registry.repositories.accounts import AccountRepository
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.services.chipstatus import refuse_retired
from registry.services.gpu_attestation import (
    PURPOSE_ENROLLMENT,
    GpuAttestationService,
    SubmittedEvidence,
)
from registry.services.log import LogAppender

__all__ = ["ChipEnrollment", "EnrollmentService"]

logger = logging.getLogger("chipreg.enrollment")


@dataclass(frozen=True)
class ChipEnrollment:
    """One chip of a bulk enrollment request."""

    certificate_pem: str
    peak_tflops_bf16: float
    tdp_watts: float


class EnrollmentService:
    def __init__(
        self,
        session: Session,
        clock: Callable[[], datetime],
        gpu: GpuAttestationService | None = None,
    ) -> None:
        # Without a GPU attestation service (no GPU roots configured) evidence is refused.
        self.gpu = gpu or GpuAttestationService(session, clock, ())
        self.accounts = AccountRepository(session)
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = LogAppender(session)
        self.clock = clock

    def _verify_declaration(self, envelope: Envelope, facility: Facility) -> None:
        """The declaration must be signed by the key of the operator owning ``facility``."""
        try:
            key = PublicKey.from_b64(facility.operator.public_key)
            verify_envelope(envelope, key)
        except (FormatError, SignatureError) as exc:
            # Kept by hand: whatever fails here (a stored key, a signature), the request's
            # answer is that the declaration is not its operator's, 422 bad_signature.
            raise InvalidRequest(
                f"declaration is not signed by operator {facility.operator_id}'s key: {exc}",
                code="bad_signature",
            ) from exc

    # -- facilities --------------------------------------------------------------------
    def create_facility(
        self,
        caller: Principal,
        *,
        operator_id: int,
        name: str,
        country: str,
        latitude: float,
        longitude: float,
        declared_power_kw: float,
        pue: float,
        non_it_load_kw: float = 0.0,
        host_power: dict[str, float] | None = None,
    ) -> Facility:
        caller.require_operator(operator_id)
        if self.accounts.operator(operator_id) is None:
            raise NotFound(f"no operator {operator_id}", code="unknown_operator")
        if self.facilities.by_name(operator_id, name) is not None:
            raise AlreadyExists(f"operator {operator_id} already has a facility {name!r}")
        facility = Facility(
            operator_id=operator_id,
            name=name,
            country=country,
            latitude=latitude,
            longitude=longitude,
            declared_power_kw=declared_power_kw,
            pue=pue,
            non_it_load_kw=non_it_load_kw,
            created_at=self.clock(),
        )
        if host_power is not None:
            facility.host_gpus_per_host = int(host_power["gpus_per_host"])
            facility.host_idle_w = float(host_power["idle_w"])
            facility.host_per_gpu_slot_w = float(host_power["per_gpu_slot_w"])
            facility.host_busy_w = float(host_power["busy_w"])
        self.facilities.add(facility)
        record = FacilityRecord(
            facility_id=facility.id,
            operator_id=operator_id,
            name=name,
            country=country,
            latitude=latitude,
            longitude=longitude,
            declared_power_kw=declared_power_kw,
            pue=pue,
            non_it_load_kw=non_it_load_kw,
            declared_at=facility.created_at,
            host_power=None
            if facility.host_power is None
            else HostPower.from_dict(facility.host_power),
        )
        facility.log_index = self.log.append_record(record, facility.created_at)
        return facility

    def facility(self, facility_id: int) -> Facility:
        facility = self.facilities.get(facility_id)
        if facility is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        return facility

    # -- chips -------------------------------------------------------------------------
    def _vendor_for_enrollment(self, caller: Principal, vendor_id: int) -> Vendor:
        caller.require_vendor(vendor_id)
        vendor = self.accounts.vendor(vendor_id)
        if vendor is None:
            raise NotFound(f"no vendor {vendor_id}", code="unknown_vendor")
        return vendor

    @staticmethod
    def _endorse(vendor: Vendor, certificate_pem: str, at: datetime) -> ChipEndorsement:
        return verify_chip_certificate(
            certificate_pem.encode(), vendor.root_certificate_pem.encode(), at=at
        )

    @staticmethod
    def _chip_row(
        vendor: Vendor, endorsement: ChipEndorsement, item: ChipEnrollment, at: datetime
    ) -> tuple[dict[str, Any], bytes]:
        """The chip's column values and its logged enrollment record."""
        row: dict[str, Any] = {
            "chip_id": endorsement.chip_id,
            "vendor_id": vendor.id,
            "model": endorsement.model,
            "public_key": endorsement.public_key.raw,
            "key_id": endorsement.public_key.key_id,
            "certificate_pem": item.certificate_pem,
            "certificate_fingerprint": endorsement.fingerprint,
            "peak_tflops_bf16": item.peak_tflops_bf16,
            "tdp_watts": item.tdp_watts,
            "enrolled_at": at,
            "last_seq": 0,
            "last_digest": "0" * 64,
        }
        record = EnrollmentRecord(
            chip_id=endorsement.chip_id,
            vendor_id=vendor.id,
            vendor_root_fingerprint=vendor.fingerprint,
            model=endorsement.model,
            public_key=endorsement.public_key.to_b64(),
            key_id=endorsement.public_key.key_id,
            certificate_pem=item.certificate_pem,
            certificate_fingerprint=endorsement.fingerprint,
            peak_tflops_bf16=item.peak_tflops_bf16,
            tdp_watts=item.tdp_watts,
            enrolled_at=at,
        ).to_json()
        return row, record

    def enroll_chip(
        self,
        caller: Principal,
        *,
        vendor_id: int,
        certificate_pem: str,
        peak_tflops_bf16: float,
        tdp_watts: float,
        gpu_evidence: SubmittedEvidence | None = None,
    ) -> Chip:
        """Enroll a vendor-endorsed chip key; with ``gpu_evidence``, hardware-attested."""
        vendor = self._vendor_for_enrollment(caller, vendor_id)
        now = self.clock()
        item = ChipEnrollment(certificate_pem, peak_tflops_bf16, tdp_watts)
        endorsement = self._endorse(vendor, certificate_pem, now)
        if self.chips.get(endorsement.chip_id) is not None:
            raise AlreadyExists(f"chip {endorsement.chip_id!r} is already enrolled")
        if self.chips.by_key_id(endorsement.public_key.key_id) is not None:
            # One key, two identities is what a cloned chip looks like: refuse it at the door.
            raise AlreadyExists(
                "another chip is enrolled with this public key", code="duplicate_key"
            )
        gpu = None
        if gpu_evidence is not None:
            gpu = self.gpu.verify_for_enrollment(gpu_evidence, endorsement.public_key)
        row, record = self._chip_row(vendor, endorsement, item, now)
        if gpu is not None:
            row["hardware_id"] = gpu[0].hardware_id
            row["hardware_attested_at"] = now
        chip = Chip(**row)
        self.chips.add(chip)
        chip.enrollment_log_index = self.log.append(ENROLLMENT, [record], now)
        if gpu_evidence is not None and gpu is not None:
            claims, root, verified_at = gpu
            self.gpu.log_evidence(
                chip_id=chip.chip_id,
                purpose=PURPOSE_ENROLLMENT,
                chip_key=endorsement.public_key,
                evidence=gpu_evidence,
                claims=claims,
                root=root,
                verified_at=verified_at,
            )
        return chip

    def enroll_chips(
        self, caller: Principal, *, vendor_id: int, items: Sequence[ChipEnrollment]
    ) -> tuple[list[str], int]:
        """Enroll many chips at once, all or nothing: (chip ids in request order, first log index).

        Every item is checked before anything is written, exactly as :meth:`enroll_chip` checks
        one (certificate against the vendor root, chip id and key not enrolled), plus no chip id
        or key twice in the batch. If any item fails, :class:`InvalidRequest` ``batch_rejected``
        lists every failing item (index, chip id when known, status, code, detail) and nothing
        is written. Otherwise chips go in with one multi-row insert and their enrollment records
        into the log in one append, in request order.
        """
        if not items:
            raise InvalidRequest("chips must not be empty", code="empty_batch")
        vendor = self._vendor_for_enrollment(caller, vendor_id)
        now = self.clock()
        # One error per item, the first found: certificate, then within the batch, then
        # against what is enrolled already.
        errors: dict[int, dict[str, Any]] = {}
        endorsed: list[tuple[int, ChipEndorsement]] = []
        # The vendor's root is parsed and self-verified once for the whole batch (a bad root
        # fails the whole request, 422 bad_certificate).
        results = verify_chip_certificates(
            [item.certificate_pem.encode() for item in items],
            vendor.root_certificate_pem.encode(),
            at=now,
        )
        for index, result in enumerate(results):
            if isinstance(result, CertificateError):
                errors[index] = _item_error(index, None, from_core(result))
            else:
                endorsed.append((index, result))
        seen_ids: dict[str, int] = {}
        seen_keys: dict[str, int] = {}
        for index, e in endorsed:
            key_id = e.public_key.key_id
            if e.chip_id in seen_ids:
                errors[index] = _item_error(
                    index,
                    e.chip_id,
                    AlreadyExists(
                        f"chip {e.chip_id!r} is also item {seen_ids[e.chip_id]}",
                        code="duplicate_in_batch",
                    ),
                )
            elif key_id in seen_keys:
                errors[index] = _item_error(
                    index,
                    e.chip_id,
                    AlreadyExists(
                        f"item {seen_keys[key_id]} has this public key too", code="duplicate_key"
                    ),
                )
            seen_ids.setdefault(e.chip_id, index)
            seen_keys.setdefault(key_id, index)
        enrolled_ids = self.chips.existing_ids([e.chip_id for _, e in endorsed])
        enrolled_keys = self.chips.existing_key_ids([e.public_key.key_id for _, e in endorsed])
        for index, e in endorsed:
            if index in errors:
                continue
            if e.chip_id in enrolled_ids:
                errors[index] = _item_error(
                    index, e.chip_id, AlreadyExists(f"chip {e.chip_id!r} is already enrolled")
                )
            elif e.public_key.key_id in enrolled_keys:
                errors[index] = _item_error(
                    index,
                    e.chip_id,
                    AlreadyExists(
                        "another chip is enrolled with this public key", code="duplicate_key"
                    ),
                )
        if errors:
            raise InvalidRequest(
                f"{len(errors)} of {len(items)} chips refused; nothing was enrolled",
                code="batch_rejected",
                errors=[errors[i] for i in sorted(errors)],
            )
        rows, records = [], []
        for index, e in endorsed:
            row, record = self._chip_row(vendor, e, items[index], now)
            rows.append(row)
            records.append(record)
        first = self.log.append(ENROLLMENT, records, now)
        for offset, row in enumerate(rows):
            row["enrollment_log_index"] = first + offset
        self.chips.insert_many(rows)
        logger.info(
            "enrolled %d chips of vendor %d at log indexes %d..%d",
            len(rows),
            vendor_id,
            first,
            first + len(rows) - 1,
        )
        return [row["chip_id"] for row in rows], first

    def chip(self, chip_id: str) -> Chip:
        chip = self.chips.get(chip_id)
        if chip is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        return chip

    # -- custody -----------------------------------------------------------------------
    def install(
        self,
        caller: Principal,
        *,
        envelope: Envelope,
        chip_id: str,
        facility_id: int,
        installed_at: datetime,
    ) -> Installation:
        """Install (or move, or transfer) a chip, as declared in the operator-signed envelope."""
        caller.require(Role.ADMIN, Role.OPERATOR)  # before any lookup: a 404 tells too
        facility = self.facility(facility_id)
        caller.require_operator(facility.operator_id)
        self._verify_declaration(envelope, facility)
        chip = self.chip(chip_id)
        refuse_retired(chip)
        current = self.facilities.current_installation(chip_id)
        if current is not None:
            if current.facility_id == facility_id:
                raise Conflict(
                    f"chip {chip_id!r} is already installed here", code="already_installed"
                )
            if current.facility.operator_id != facility.operator_id:
                # A change of custodian is a transfer, signed by both sides (POST /v1/transfers);
                # not even an admin passes custody on one operator's word.
                raise Forbidden(
                    f"chip {chip_id!r} is in the custody of another operator: custody passes "
                    "only by a transfer both operators sign (POST /v1/transfers)",
                    code="chip_in_other_custody",
                )
            if installed_at <= current.installed_at:
                raise InvalidRequest(
                    "installed_at must be after the current installation began",
                    code="installation_out_of_order",
                )
            current.removed_at = installed_at
        installation = Installation(
            chip_id=chip_id,
            facility_id=facility_id,
            installed_at=installed_at,
            declared_by_operator_id=facility.operator_id,
            created_at=self.clock(),
        )
        installation.log_index = self.log.append(
            INSTALLATION, [envelope.to_json()], installation.created_at
        )
        self.facilities.add(installation)
        self.chips.note_installation(chip, installed_at)
        return installation

    # -- declared clusters ---------------------------------------------------------------
    def declare_cluster(
        self,
        caller: Principal,
        *,
        envelope: Envelope,
        facility_id: int,
        name: str,
        purpose: str,
        chip_ids: Sequence[str],
        start: datetime,
        end: datetime,
    ) -> DeclaredCluster:
        caller.require(Role.ADMIN, Role.OPERATOR)  # before any lookup: a 404 tells too
        facility = self.facility(facility_id)
        caller.require_operator(facility.operator_id)
        self._verify_declaration(envelope, facility)
        if end <= start:
            raise InvalidRequest("end must be after start", code="bad_window")
        unique = sorted(set(chip_ids))
        if len(unique) != len(chip_ids):
            raise InvalidRequest("chip_ids contains duplicates", code="duplicate_chips")
        known = self.chips.many(unique)
        missing = [c for c in unique if c not in known]
        if missing:
            raise NotFound(f"chips not enrolled: {', '.join(missing[:10])}", code="unknown_chip")
        custody = self.facilities.current_installations(unique)
        foreign = [
            c
            for c in unique
            if c not in custody or custody[c].facility.operator_id != facility.operator_id
        ]
        if foreign:
            raise Forbidden(
                f"chips not installed at this operator's facilities: {', '.join(foreign[:10])}",
                code="chip_not_yours",
            )
        now = self.clock()
        # The cluster's id is the log index of its declaration: auditors derive it from the log.
        index = self.log.append(CLUSTER, [envelope.to_json()], now)
        cluster = DeclaredCluster(
            id=index,
            operator_id=facility.operator_id,
            facility_id=facility_id,
            name=name,
            purpose=purpose,
            start=start,
            end=end,
            created_at=now,
        )
        self.facilities.add(cluster)
        self.facilities.add_members(cluster, unique)
        return cluster


def _item_error(index: int, chip_id: str | None, exc: RegistryError) -> dict[str, Any]:
    return {
        "index": index,
        "chip_id": chip_id,
        "status": exc.status,
        "code": exc.code,
        "detail": exc.detail,
    }
