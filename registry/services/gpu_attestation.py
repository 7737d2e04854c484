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

from attestation.errors import FormatError, GpuEvidenceError
from attestation.gpu import (
    ENROLLMENT_BINDING,
    GpuEvidence,
    GpuEvidenceClaims,
    GpuRoot,
    bind_spdm_nonce,
    verify_gpu_evidence,
)
from attestation.keys import PublicKey
from attestation.logentries import GPU_ATTESTATION, timestamp
from registry.auth import Principal, Role
from registry.db.models import GpuChallenge
from registry.errors import AlreadyExists, Conflict, InvalidRequest, NotFound
from registry.repositories.gpu import GpuRepository
from registry.services.log import LogAppender

__all__ = ["PURPOSE_ENROLLMENT", "GpuAttestationService", "SubmittedEvidence"]

PURPOSE_ENROLLMENT = "enrollment"


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
        try:
            key = PublicKey.from_b64(chip_public_key)
        except FormatError as exc:
            raise InvalidRequest(str(exc), code="bad_public_key") from exc
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

    def verify_for_enrollment(
        self, evidence: SubmittedEvidence, chip_key: PublicKey
    ) -> tuple[GpuEvidenceClaims, GpuRoot, datetime]:
        """Consume the challenge and verify the evidence for enrolling ``chip_key``."""
        self._require_enabled()
        challenge = self.repo.challenge(evidence.nonce)
        if challenge is None or challenge.purpose != PURPOSE_ENROLLMENT:
            raise NotFound("the registry never issued this GPU nonce", code="unknown_nonce")
        if bytes(challenge.chip_public_key) != chip_key.raw:
            raise InvalidRequest(
                "the GPU nonce was issued for another chip key", code="nonce_mismatch"
            )
        now = self.clock()
        if now > challenge.expires_at:
            raise Conflict(
                f"the GPU nonce expired at {challenge.expires_at.isoformat()}", code="stale_nonce"
            )
        if not self.repo.mark_answered(evidence.nonce, now):
            raise Conflict("this GPU nonce was answered already", code="replayed_nonce")
        root = self._root_for(evidence)
        expected = bind_spdm_nonce(ENROLLMENT_BINDING, chip_key.raw, bytes.fromhex(evidence.nonce))
        try:
            claims = verify_gpu_evidence(
                evidence.report, evidence.certificates, root=root, expected_nonce=expected, at=now
            )
        except GpuEvidenceError as exc:
            raise InvalidRequest(str(exc), code=exc.code) from exc
        holder = self.repo.chip_by_hardware_id(claims.hardware_id)
        if holder is not None:
            # One GPU, two chip identities is what a cloned or relayed identity looks like.
            raise AlreadyExists(
                f"GPU {claims.hardware_id} already backs chip {holder.chip_id!r}",
                code="duplicate_hardware_identity",
            )
        return claims, root, now

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
        return self.log.append_record(
            GPU_ATTESTATION,
            {
                "chip_id": chip_id,
                "purpose": purpose,
                "chip_public_key": chip_key.to_b64(),
                "registry_nonce": evidence.nonce,
                "report": base64.b64encode(evidence.report).decode(),
                "certificates": [base64.b64encode(c).decode() for c in evidence.certificates],
                "root_certificate": base64.b64encode(root.der).decode(),
                "root_fingerprint": root.fingerprint,
                "hardware_id": claims.hardware_id,
                "device_serial": claims.device_serial,
                "driver_version": claims.driver_version,
                "vbios_version": claims.vbios_version,
                "verified_at": timestamp(verified_at),
            },
            verified_at,
        )


def evidence_of(evidence: GpuEvidence, nonce: str) -> SubmittedEvidence:
    """Evidence collected from a GPU, as submitted for ``nonce``."""
    return SubmittedEvidence(nonce=nonce, report=evidence.report, certificates=evidence.cert_chain)
