"""Per-chip hash-chain state: the last sequence number, report digest and window end.

Persisted atomically as one JSON file. The agent's order is: build report, sign, spool it
(durable), then advance this state. A crash between the spool write and the state write leaves
the spool ahead of the state; :meth:`ChainState.load` reconciles by advancing the state from the
spooled report, so the agent never signs a second, different report with a used sequence number.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agents.errors import SpoolError
from agents.spool import Spool, write_atomic
from attestation.dsse import Envelope
from attestation.errors import AttestationError
from attestation.report import GENESIS_DIGEST, open_report, report_digest
from attestation.timefmt import format_time, parse_time

__all__ = ["ChainHead", "ChainState"]

_log = logging.getLogger(__name__)
_STATE_VERSION = 1


@dataclass(frozen=True)
class ChainHead:
    """The last report a chip signed: its seq, its digest and the end of its window."""

    seq: int
    digest: str
    window_end: datetime


class ChainState:
    """Chain heads of all chips of one agent, kept in ``path``."""

    def __init__(
        self,
        path: Path,
        heads: Mapping[str, ChainHead] | None = None,
        *,
        durable: bool = True,
    ) -> None:
        self.path = Path(path)
        # Only the simulator turns fsync off, for speed on throwaway directories.
        self.durable = durable
        self._heads: dict[str, ChainHead] = dict(heads or {})

    @classmethod
    def load(cls, path: Path, spool: Spool | None = None, *, durable: bool = True) -> ChainState:
        """Read the state file (missing means a fresh agent) and reconcile it with ``spool``."""
        path = Path(path)
        heads: dict[str, ChainHead] = {}
        if path.exists():
            try:
                doc = json.loads(path.read_bytes())
                if doc.get("version") != _STATE_VERSION:
                    raise SpoolError(f"unsupported chain state version in {path}")
                for chip_id, h in doc["chips"].items():
                    heads[chip_id] = ChainHead(
                        seq=int(h["seq"]),
                        digest=str(h["digest"]),
                        window_end=parse_time(h["window_end"]),
                    )
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise SpoolError(f"cannot read chain state {path}: {exc}") from exc
            except AttestationError as exc:
                raise SpoolError(f"bad time in chain state {path}: {exc}") from exc
        state = cls(path, heads, durable=durable)
        if spool is not None:
            state.reconcile(spool)
        return state

    def head(self, chip_id: str) -> ChainHead | None:
        """The chip's last signed report, or None before its first report."""
        return self._heads.get(chip_id)

    def next_link(self, chip_id: str) -> tuple[int, str]:
        """``(seq, prev_digest)`` for the chip's next report."""
        head = self._heads.get(chip_id)
        if head is None:
            return 1, GENESIS_DIGEST
        return head.seq + 1, head.digest

    def chips(self) -> dict[str, ChainHead]:
        """A copy of all chain heads."""
        return dict(self._heads)

    def advance(self, updates: Iterable[tuple[str, ChainHead]]) -> None:
        """Move chain heads forward and persist the whole state once.

        Refuses to move a head backwards: that would re-issue a used sequence number.
        """
        changed = False
        for chip_id, new in updates:
            old = self._heads.get(chip_id)
            if old is not None and new.seq <= old.seq:
                raise SpoolError(
                    f"chain for {chip_id} would move back from seq {old.seq} to {new.seq}"
                )
            self._heads[chip_id] = new
            changed = True
        if changed:
            self.save()

    def save(self) -> None:
        """Write the state file atomically."""
        doc = {
            "version": _STATE_VERSION,
            "chips": {
                chip_id: {
                    "seq": h.seq,
                    "digest": h.digest,
                    "window_end": format_time(h.window_end),
                }
                for chip_id, h in sorted(self._heads.items())
            },
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(doc, sort_keys=True).encode(), durable=self.durable)

    def reconcile(self, spool: Spool) -> list[str]:
        """Advance heads that the spool is ahead of (crash after spooling); return those chips."""
        updates: list[tuple[str, ChainHead]] = []
        for chip_id, item in sorted(spool.latest_by_chip().items()):
            head = self._heads.get(chip_id)
            if head is not None and head.seq >= item.seq:
                continue
            try:
                report, payload = open_report(Envelope.from_json(item.read()))
            except AttestationError as exc:
                raise SpoolError(f"spooled report {item.path} does not parse: {exc}") from exc
            if report.chip_id != chip_id or report.seq != item.seq:
                raise SpoolError(f"spooled report {item.path} does not match its file name")
            _log.warning(
                "chain state for %s was behind the spool (seq %s < %s); advancing after crash",
                chip_id,
                head.seq if head else 0,
                report.seq,
            )
            updates.append(
                (
                    chip_id,
                    ChainHead(report.seq, report_digest(payload), report.window_end),
                )
            )
        self.advance(updates)
        return [chip_id for chip_id, _ in updates]
