"""GPU device evidence at the registry: challenges, verification against the configured GPU
roots, the hardware identity of chips, and the log record of every verified piece of evidence.

The checks themselves are :func:`attestation.gpu.verify_gpu_evidence`; this service owns the
nonces (issued here, bound to the chip key, answered once) and turns evidence failures into
problem codes (the ``GpuEvidenceError`` codes, unchanged).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from sqlalchemy.orm import Session

from attestation.gpu import (
    ENROLLMENT_BINDING,
    REATTESTATION_BINDING,
    GpuEvidenceClaims,
    GpuRoot,
    bind_spdm_nonce,
    verify_gpu_evidence,
)
from attestation.keys import PublicKey
from attestation.records import GpuAttestationRecord
from registry.auth import Principal, Role
from registry.db.models import Chip, GpuAttestation, GpuChallenge
from registry.errors import AlreadyExists, Conflict, Forbidden, InvalidRequest, NotFound
from registry.repositories.chips import ChipRepository
from registry.repositories.facilities import FacilityRepository
from registry.repositories.gpu import GpuRepository
from registry.services.log import LogAppender

__all__ = [
    "PURPOSE_ENROLLMENT",
    "PURPOSE_REATTESTATION",
    "GpuAttestationService",
    "SubmittedEvidence",
]

PURPOSE_ENROLLMENT = "enrollment"
PURPOSE_REATTESTATION = "reattestation"
_BINDINGS = {PURPOSE_ENROLLMENT: ENROLLMENT_BINDING, PURPOSE_REATTESTATION: REATTESTATION_BINDING}


@dataclass(frozen=True)
class SubmittedEvidence:
    """GPU evidence as a client sends it: the registry nonce it answers, report and chain."""

    nonce: str  # hex, as issued
    report: bytes
    certificates: tuple[bytes, ...]  # DER, leaf first

    @classmethod
    def from_wire(
        cls, nonce: str, report_b64: str, certificates_b64: list[str]
    ) -> SubmittedEvidence:
        try:
            return cls(
                nonce=nonce,
                report=base64.b64decode(report_b64, validate=True),
                certificates=tuple(base64.b64decode(c, validate=True) for c in certificates_b64),
            )
        except ValueError as exc:
            raise InvalidRequest(
                f"GPU evidence is not base64: {exc}", code="gpu_evidence_malformed"
            ) from exc


class GpuAttestationService:
    def __init__(
        self,
        session: Session,
        clock: Callable[[], datetime],
        roots: tuple[GpuRoot, ...],
        *,
        challenge_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.repo = GpuRepository(session)
        self.chips = ChipRepository(session)
        self.facilities = FacilityRepository(session)
        self.log = LogAppender(session)
        self.clock = clock
        self.roots = roots
        self.challenge_ttl = challenge_ttl

    def _require_enabled(self) -> None:
        if not self.roots:
            raise Conflict(
                "this registry trusts no GPU root (CHIPREG_GPU_ROOT_FILES is empty)",
                code="gpu_attestation_disabled",
            )

    def issue_enrollment_challenge(
        self, caller: Principal, *, chip_public_key: str
    ) -> GpuChallenge:
        """A fresh nonce for a chip key about to enroll with GPU evidence."""
        caller.require(Role.ADMIN, Role.VENDOR)
        self._require_enabled()
        key = PublicKey.from_b64(chip_public_key)
        now = self.clock()
        challenge = GpuChallenge(
            nonce=secrets.token_hex(32),
            purpose=PURPOSE_ENROLLMENT,
            chip_public_key=key.raw,
            chip_id=None,
            issued_at=now,
            expires_at=now + self.challenge_ttl,
        )
        self.repo.add(challenge)
        return challenge

    def _root_for(self, evidence: SubmittedEvidence) -> GpuRoot:
        """The configured root the chain claims to end at (the verifier then proves it)."""
        try:
            top = x509.load_der_x509_certificate(evidence.certificates[-1])
        except (ValueError, IndexError) as exc:
            raise InvalidRequest(
                f"GPU certificate chain is unreadable: {exc}", code="gpu_evidence_malformed"
            ) from exc
        for root in self.roots:
            if top.issuer == root.certificate.subject:
                return root
        raise InvalidRequest(
            "the GPU certificate chain ends at no root this registry trusts",
            code="gpu_wrong_root",
        )

    def _consume_and_verify(
        self, evidence: SubmittedEvidence, purpose: str, chip_key: PublicKey, chip_id: str | None
    ) -> tuple[GpuEvidenceClaims, GpuRoot, datetime]:
        """Consume the challenge and verify the evidence for ``chip_key`` and ``purpose``."""
        self._require_enabled()
        challenge = self.repo.challenge(evidence.nonce)
        if challenge is None or challenge.purpose != purpose:
            raise NotFound("the registry never issued this GPU nonce", code="unknown_nonce")
        if bytes(challenge.chip_public_key) != chip_key.raw or challenge.chip_id != chip_id:
            raise InvalidRequest("the GPU nonce was issued for another chip", code="nonce_mismatch")
        now = self.clock()
        if now > challenge.expires_at:
            raise Conflict(
                f"the GPU nonce expired at {challenge.expires_at.isoformat()}", code="stale_nonce"
            )
        if not self.repo.mark_answered(evidence.nonce, now):
            raise Conflict("this GPU nonce was answered already", code="replayed_nonce")
        root = self._root_for(evidence)
        expected = bind_spdm_nonce(_BINDINGS[purpose], chip_key.raw, bytes.fromhex(evidence.nonce))
        claims = verify_gpu_evidence(
            evidence.report, evidence.certificates, root=root, expected_nonce=expected, at=now
        )
        return claims, root, now

    def verify_for_enrollment(
        self, evidence: SubmittedEvidence, chip_key: PublicKey
    ) -> tuple[GpuEvidenceClaims, GpuRoot, datetime]:
        """Consume the challenge and verify the evidence for enrolling ``chip_key``."""
        claims, root, now = self._consume_and_verify(evidence, PURPOSE_ENROLLMENT, chip_key, None)
        holder = self.repo.chip_by_hardware_id(claims.hardware_id)
        if holder is not None:
            # One GPU, two chip identities is what a cloned or relayed identity looks like.
            raise AlreadyExists(
                f"GPU {claims.hardware_id} already backs chip {holder.chip_id!r}",
                code="duplicate_hardware_identity",
            )
        return claims, root, now

    # -- re-attestation --------------------------------------------------------------------
    def _attested_chip(self, chip_id: str) -> Chip:
        chip = self.chips.get(chip_id)
        if chip is None:
            raise NotFound(f"chip {chip_id!r} is not enrolled", code="unknown_chip")
        if chip.hardware_id is None:
            raise Conflict(
                f"chip {chip_id!r} did not enroll with GPU evidence", code="not_hardware_attested"
            )
        return chip

    def issue_reattestation_challenge(self, caller: Principal, *, chip_id: str) -> GpuChallenge:
        """A fresh nonce the chip's agent must answer with evidence from the same GPU."""
        caller.require(Role.ADMIN, Role.INSPECTOR)
        self._require_enabled()
        chip = self._attested_chip(chip_id)
        now = self.clock()
        challenge = GpuChallenge(
            nonce=secrets.token_hex(32),
            purpose=PURPOSE_REATTESTATION,
            chip_public_key=bytes(chip.public_key),
            chip_id=chip_id,
            issued_at=now,
            expires_at=now + self.challenge_ttl,
        )
        self.repo.add(challenge)
        return challenge

    def _require_custodian(self, caller: Principal, chip_id: str) -> None:
        if caller.role is Role.ADMIN:
            return
        installation = self.facilities.current_installation(chip_id)
        if installation is None:
            raise Forbidden(f"chip {chip_id!r} is installed nowhere", code="chip_not_yours")
        caller.require_operator(installation.facility.operator_id)

    def open_challenges(self, caller: Principal, *, chip_id: str) -> list[GpuChallenge]:
        """The re-attestation challenges the chip's agent has still to answer."""
        caller.require(Role.ADMIN, Role.OPERATOR)  # before the lookup: a 404 tells too
        self._attested_chip(chip_id)
        self._require_custodian(caller, chip_id)
        return self.repo.open_challenges(chip_id, self.clock())

    def reattest(
        self, caller: Principal, *, chip_id: str, evidence: SubmittedEvidence
    ) -> tuple[int, GpuEvidenceClaims, bool]:
        """Verify and log the answer to a re-attestation challenge: (log index, claims, same
        GPU as at enrollment?). Valid evidence from another GPU is logged, not refused: the
        verifier's ``gpu.reattestation`` rule makes it a finding a partner can re-derive."""
        caller.require(Role.ADMIN, Role.OPERATOR)  # before the lookup: a 404 tells too
        chip = self._attested_chip(chip_id)
        self._require_custodian(caller, chip_id)
        key = PublicKey(bytes(chip.public_key))
        claims, root, now = self._consume_and_verify(evidence, PURPOSE_REATTESTATION, key, chip_id)
        index = self.log_evidence(
            chip_id=chip_id,
            purpose=PURPOSE_REATTESTATION,
            chip_key=key,
            evidence=evidence,
            claims=claims,
            root=root,
            verified_at=now,
        )
        return index, claims, claims.hardware_id == chip.hardware_id

    def log_evidence(
        self,
        *,
        chip_id: str,
        purpose: str,
        chip_key: PublicKey,
        evidence: SubmittedEvidence,
        claims: GpuEvidenceClaims,
        root: GpuRoot,
        verified_at: datetime,
    ) -> int:
        """Append the verified evidence, exactly as received, to the log; its index."""
        index = self.log.append_record(
            GpuAttestationRecord(
                chip_id=chip_id,
                purpose=purpose,
                chip_public_key=chip_key.to_b64(),
                registry_nonce=evidence.nonce,
                report=evidence.report,
                certificates=tuple(evidence.certificates),
                root_certificate=root.der,
                root_fingerprint=root.fingerprint,
                hardware_id=claims.hardware_id,
                device_serial=claims.device_serial,
                driver_version=claims.driver_version,
                vbios_version=claims.vbios_version,
                verified_at=verified_at,
            ),
            verified_at,
        )
        self.repo.add_attestation(
            GpuAttestation(
                chip_id=chip_id,
                purpose=purpose,
                hardware_id=claims.hardware_id,
                verified_at=verified_at,
                log_index=index,
            )
        )
        return index
