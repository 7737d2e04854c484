"""C2SP tlog-witness add-checkpoint (c2sp.org/tlog-witness): request format and the decision.

The decision is pure: given the request, the logs the witness trusts and its record of the
latest checkpoint it cosigned per log, either a cosignature line and the new record, or a
:class:`WitnessRefusal` carrying the exact HTTP status the spec prescribes. The witness's
HTTP shell only has to persist the new record atomically before answering.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from attestation import merkle
from attestation.checkpoint import Checkpoint
from attestation.cosignature import CosignatureSigner
from attestation.errors import AttestationError, FormatError, ProofError, SignatureError
from attestation.keys import b64decode_strict
from attestation.note import NoteVerifier, open_note

__all__ = [
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "CosignedHead",
    "WitnessRefusal",
    "add_checkpoint",
    "format_add_checkpoint",
    "parse_add_checkpoint",
]

MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class WitnessRefusal(AttestationError):
    """A refused add-checkpoint: ``status`` is the HTTP status, ``body`` the response text."""

    code = "witness_refused"

    def __init__(
        self, status: int, reason: str, *, body: str | None = None, content_type: str | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body if body is not None else reason + "\n"
        self.content_type = content_type or "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """A parsed add-checkpoint request body."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str  # the signed note, verbatim


@dataclass(frozen=True, slots=True)
class CosignedHead:
    """What a witness remembers per log: the latest checkpoint it cosigned, with signatures."""

    origin: str
    size: int
    root_hash: bytes
    note: str


def _decimal(s: str) -> int:
    if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0"):
        raise FormatError(f"{s!r} is not a canonical decimal")
    return int(s)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], checkpoint: str) -> bytes:
    """The request body: ``old N``, proof lines, an empty line, then the checkpoint."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode("ascii") for h in proof]
    return ("\n".join(lines) + "\n\n" + checkpoint).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse a request body; :class:`WitnessRefusal` 400 if malformed."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "request body is not UTF-8") from None
    head, sep, checkpoint = text.partition("\n\n")
    if not sep:
        raise WitnessRefusal(400, "request has no empty line before the checkpoint")
    lines = head.split("\n")
    if not lines[0].startswith("old "):
        raise WitnessRefusal(400, "request does not start with an old size line")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    try:
        old = _decimal(lines[0][4:])
        proof = tuple(b64decode_strict(line, "consistency proof line") for line in lines[1:])
    except FormatError as exc:
        raise WitnessRefusal(400, str(exc)) from None
    if any(len(h) != merkle.HASH_SIZE for h in proof):
        raise WitnessRefusal(400, "consistency proof lines must be 32-byte hashes")
    return AddCheckpoint(old, proof, checkpoint)


def add_checkpoint(
    request: AddCheckpoint,
    logs: Mapping[str, NoteVerifier],
    heads: Mapping[str, CosignedHead],
    signer: CosignatureSigner,
    timestamp: int,
) -> tuple[CosignedHead, str]:
    """Decide an add-checkpoint; return the new record and the cosignature line.

    Status codes follow the spec: 400 malformed or old size above the checkpoint size,
    404 unknown origin, 403 no valid signature by the log, 409 (with the witness's size as
    ``text/x.tlog.size``) when the old size is not the latest cosigned size, 422 when the
    proof does not verify or the tree is not consistent with what was cosigned (a fork).
    """
    origin = request.checkpoint.split("\n", 1)[0]
    log = logs.get(origin)
    if log is None:
        raise WitnessRefusal(404, f"unknown log origin {origin!r}")
    try:
        text, _ = open_note(request.checkpoint, [log])
        cp = Checkpoint.from_text(text)
    except SignatureError as exc:
        raise WitnessRefusal(403, f"checkpoint is not signed by the log: {exc}") from None
    except FormatError as exc:
        raise WitnessRefusal(400, f"malformed checkpoint: {exc}") from None
    if cp.origin != origin:
        raise WitnessRefusal(400, "checkpoint origin line is malformed")
    if request.old_size > cp.size:
        raise WitnessRefusal(400, f"old size {request.old_size} is above {cp.size}")
    head = heads.get(origin)
    known = 0 if head is None else head.size
    if request.old_size != known:
        raise WitnessRefusal(
            409,
            f"old size {request.old_size} is not the latest cosigned size {known}",
            body=f"{known}\n",
            content_type=SIZE_CONTENT_TYPE,
        )
    if cp.size == 0 and cp.root_hash != merkle.EMPTY_ROOT:
        raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty root")
    if request.old_size == 0:
        if request.proof:
            raise WitnessRefusal(422, "old size 0 needs an empty consistency proof")
    else:
        assert head is not None
        try:
            merkle.verify_consistency(
                size1=head.size,
                size2=cp.size,
                root1=head.root_hash,
                root2=cp.root_hash,
                proof=request.proof,
            )
        except ProofError as exc:
            raise WitnessRefusal(
                422,
                f"refused: checkpoint of size {cp.size} is not consistent with the cosigned "
                f"checkpoint of size {head.size} (fork or bad proof: {exc})",
            ) from None
    line = signer.cosign(text, timestamp)
    return CosignedHead(origin, cp.size, cp.root_hash, request.checkpoint), line
