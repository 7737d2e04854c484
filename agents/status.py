"""What a running agent last did, kept in its state directory for ``chipreg agent status``.

The agent rewrites ``status.json`` after every window and every flush (atomically, not
fsynced: it is a report for humans, the spool and the chain state are the durable truth).
:func:`read_status` combines it with what is on disk now: spool depth, rejected reports and the
chain head of every chip.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from agents.chain import ChainState
from agents.errors import SpoolError
from agents.spool import Spool, write_atomic
from attestation.timefmt import format_time

__all__ = [
    "STATUS_FILE",
    "AgentStatus",
    "WindowStats",
    "read_status",
    "record_flush",
    "record_window",
]

STATUS_FILE = "status.json"


@dataclass(frozen=True)
class WindowStats:
    """One closed window: reports signed, posted, acknowledged, rejected, left in the spool."""

    window_start: str
    window_end: str
    signed: int
    posted: int
    accepted: int
    rejected: int
    spooled: int


@dataclass(frozen=True)
class AgentStatus:
    """The agent's state as ``chipreg agent status`` shows it."""

    spool_depth: int
    rejected_reports: int
    last_success: str | None
    last_error: str | None
    last_window: WindowStats | None
    chains: dict[str, dict[str, object]]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _now() -> str:
    return format_time(datetime.now(UTC).replace(microsecond=0))


def _load(path: Path) -> dict[str, object]:
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SpoolError(f"cannot read agent status {path}: {exc}") from exc
    return doc if isinstance(doc, dict) else {}


def _save(path: Path, doc: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc, sort_keys=True).encode(), durable=False)


def record_flush(path: Path, *, error: str | None, window: WindowStats | None = None) -> None:
    """Note a flush's outcome (``error`` None: nothing left unsent) and the window, if any."""
    doc = _load(path)
    if error is None:
        doc["last_success"] = _now()
        doc["last_error"] = None
    else:
        doc["last_error"] = f"{_now()} {error}"
    if window is not None:
        doc["last_window"] = asdict(window)
    _save(path, doc)


def record_window(path: Path, window: WindowStats | None) -> None:
    """Note a window that was only spooled (offline, or stopped before its flush)."""
    if window is None:
        return
    doc = _load(path)
    doc["last_window"] = asdict(window)
    _save(path, doc)


def read_status(state_dir: Path, spool_dir: Path | None = None) -> AgentStatus:
    """The status of the agent whose state lives in ``state_dir`` (spool: ``spool_dir``)."""
    doc = _load(state_dir / STATUS_FILE)
    spool = Spool(spool_dir or state_dir / "spool")
    chain = ChainState.load(state_dir / "chain.json")
    window = doc.get("last_window")
    last_success, last_error = doc.get("last_success"), doc.get("last_error")
    return AgentStatus(
        spool_depth=len(spool.pending()),
        rejected_reports=len(spool.rejected()),
        last_success=last_success if isinstance(last_success, str) else None,
        last_error=last_error if isinstance(last_error, str) else None,
        last_window=WindowStats(**window) if isinstance(window, dict) else None,
        chains={
            chip_id: {
                "seq": head.seq,
                "window_end": format_time(head.window_end),
                "digest": head.digest,
            }
            for chip_id, head in sorted(chain.chips().items())
        },
    )
