"""Declarations: facilities, chip enrollment, installations (custody) and declared clusters.

Everything accepted here is appended to the transparency log in the same transaction:
facilities and enrollments as registry records, installations and clusters as the operator-
signed DSSE declaration envelopes (verified against the operator's registered key).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from attestation.certs import verify_chip_certificate
from attestation.dsse import Envelope, verify_envelope
from attestation.errors import CertificateError, FormatError, SignatureError
from attestation.keys import PublicKey
from attestation.logentries import CLUSTER, ENROLLMENT, FACILITY, INSTALLATION, timestamp
from registry.auth import Principal, Role
from registry.db.models import Chip, DeclaredCluster, Facility, Installation
from registry.errors import AlreadyExists, Conflict, Forbidden, InvalidRequest, NotFound
from registry.repositories.accounts import AccountRepository
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.services.log import LogAppender

__all__ = ["EnrollmentService"]


class EnrollmentService:
    def __init__(self, session: Session, clock: Callable[[], datetime]) -> None:
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
        self.facilities.add(facility)
        self.log.append_record(
            FACILITY,
            {
                "facility_id": facility.id,
                "operator_id": operator_id,
                "name": name,
                "country": country,
                "latitude": latitude,
                "longitude": longitude,
                "declared_power_kw": declared_power_kw,
                "pue": pue,
                "non_it_load_kw": non_it_load_kw,
                "declared_at": timestamp(facility.created_at),
            },
            facility.created_at,
        )
        return facility

    def facility(self, facility_id: int) -> Facility:
        facility = self.facilities.get(facility_id)
        if facility is None:
            raise NotFound(f"no facility {facility_id}", code="unknown_facility")
        return facility

    # -- chips -------------------------------------------------------------------------
    def enroll_chip(
        self,
        caller: Principal,
        *,
        vendor_id: int,
        certificate_pem: str,
        peak_tflops_bf16: float,
        tdp_watts: float,
    ) -> Chip:
        caller.require_vendor(vendor_id)
        vendor = self.accounts.vendor(vendor_id)
        if vendor is None:
            raise NotFound(f"no vendor {vendor_id}", code="unknown_vendor")
        now = self.clock()
        try:
            endorsement = verify_chip_certificate(
                certificate_pem.encode(), vendor.root_certificate_pem.encode(), at=now
            )
        except CertificateError as exc:
            raise InvalidRequest(str(exc), code="bad_certificate") from exc
        if self.chips.get(endorsement.chip_id) is not None:
            raise AlreadyExists(f"chip {endorsement.chip_id!r} is already enrolled")
        if self.chips.by_key_id(endorsement.public_key.key_id) is not None:
            # One key, two identities is what a cloned chip looks like: refuse it at the door.
            raise AlreadyExists(
                "another chip is enrolled with this public key", code="duplicate_key"
            )
        chip = Chip(
            chip_id=endorsement.chip_id,
            vendor_id=vendor_id,
            model=endorsement.model,
            public_key=endorsement.public_key.raw,
            key_id=endorsement.public_key.key_id,
            certificate_pem=certificate_pem,
            certificate_fingerprint=endorsement.fingerprint,
            peak_tflops_bf16=peak_tflops_bf16,
            tdp_watts=tdp_watts,
            enrolled_at=now,
            last_seq=0,
            last_digest="0" * 64,
        )
        self.chips.add(chip)
        self.log.append_record(
            ENROLLMENT,
            {
                "chip_id": chip.chip_id,
                "vendor_id": vendor_id,
                "vendor_root_fingerprint": vendor.fingerprint,
                "model": chip.model,
                "public_key": endorsement.public_key.to_b64(),
                "key_id": chip.key_id,
                "certificate_pem": certificate_pem,
                "certificate_fingerprint": endorsement.fingerprint,
                "peak_tflops_bf16": peak_tflops_bf16,
                "tdp_watts": tdp_watts,
                "enrolled_at": timestamp(now),
            },
            now,
        )
        return chip

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
        self.chip(chip_id)
        current = self.facilities.current_installation(chip_id)
        if current is not None:
            if current.facility_id == facility_id:
                raise Conflict(
                    f"chip {chip_id!r} is already installed here", code="already_installed"
                )
            if (
                current.facility.operator_id != facility.operator_id
                and caller.role is not Role.ADMIN
            ):
                # A change of custodian is a transfer, which the exporting side must declare.
                raise Forbidden(
                    f"chip {chip_id!r} is in the custody of another operator",
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
