"""C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint): signed tree heads."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from attestation.errors import FormatError, KeyMismatchError
from attestation.keys import b64decode_strict
from attestation.merkle import HASH_SIZE
from attestation.note import NoteSigner, NoteVerifier, open_note

__all__ = ["Checkpoint", "sign_checkpoint", "verify_checkpoint"]

# ASCII decimal, no leading zeros except the empty tree's "0".
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: origin, tree size, RFC 6962 root hash and opaque extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise FormatError("checkpoint origin must be a non-empty single line")
        if type(self.size) is not int or self.size < 0:
            raise FormatError("checkpoint size must be a non-negative integer")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise FormatError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext:
                raise FormatError("checkpoint extension lines must be non-empty single lines")

    def to_text(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` followed by extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode("ascii")]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text (signatures already removed); :class:`FormatError`."""
        if not text.endswith("\n"):
            raise FormatError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise FormatError("checkpoint text needs origin, size and root hash lines")
        origin, size, root_b64, *extensions = lines
        if _SIZE_RE.fullmatch(size) is None:
            raise FormatError(f"checkpoint size {size!r} is not a canonical decimal")
        return cls(origin, int(size), _root(root_b64), tuple(extensions))


def _root(b64: str) -> bytes:
    root = b64decode_strict(b64, "checkpoint root hash")
    if len(root) != HASH_SIZE:
        raise FormatError(f"checkpoint root hash must be {HASH_SIZE} bytes")
    return root


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """Sign a checkpoint as a note. The signer's key name must be the origin."""
    if signer.name != cp.origin:
        raise KeyMismatchError(f"signer {signer.name!r} is not the log {cp.origin!r}")
    return signer.sign(cp.to_text())


def verify_checkpoint(note: str | bytes, verifier: NoteVerifier) -> Checkpoint:
    """Verify a signed checkpoint under the log's key and parse it.

    Raises :class:`SignatureError` unless ``verifier`` signed it, :class:`KeyMismatchError` if
    its origin is not the verifier's name, :class:`FormatError` if malformed. Other signatures
    (e.g. witness cosignatures) are ignored.
    """
    text, _ = open_note(note, [verifier])
    cp = Checkpoint.from_text(text)
    if cp.origin != verifier.name:
        raise KeyMismatchError(f"checkpoint origin {cp.origin!r} is not {verifier.name!r}")
    return cp
