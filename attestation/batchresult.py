"""The registry's answer to a batch of usage reports (docs/PROTOCOL.md 4.1), defined once.

The registry writes it (``registry/api/routes/reports.py``, whose fast serializer a test holds
byte-identical to :meth:`BatchResult.to_dict`), its OpenAPI document declares it
(``registry/api/schemas/reports.py``), and the host agent reads it (``agents/client.py``): all
three use these classes, so the fields cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from attestation.chain import RejectionCode
from attestation.errors import FormatError

__all__ = [
    "ACCEPTED_FIELDS",
    "ACKNOWLEDGED_CODES",
    "REJECTED_FIELDS",
    "RETRY_LATER_CODES",
    "BatchResult",
    "ReportResult",
]

#: Per-report rejection codes that mean "the registry already holds this exact report".
ACKNOWLEDGED_CODES: frozenset[str] = frozenset({RejectionCode.REPLAYED_REPORT})
#: Per-report rejection codes that mean "not yet": the window ends after the registry's clock
#: (plus its tolerated skew), so the host clock runs ahead. The report stays spooled and is sent
#: again later; the registry's chain head did not move, so nothing after it is lost. Every other
#: rejection code (``unknown_facility``, ``window_before_installation``, ``forbidden``, ...) is
#: final: the report is moved aside (docs/PROTOCOL.md 4.2.1).
RETRY_LATER_CODES: frozenset[str] = frozenset({RejectionCode.WINDOW_IN_FUTURE})

#: The fields of an accepted result, in the order the registry writes them.
ACCEPTED_FIELDS = ("index", "status", "chip_id", "seq", "digest", "log_index")
#: The fields of a rejected result, in the order the registry writes them (``chip_id`` and
#: ``seq`` only when the report got far enough to name them).
REJECTED_FIELDS = ("index", "status", "http_status", "code", "detail", "chip_id", "seq")
_INTS = frozenset({"index", "seq", "log_index", "http_status"})


@dataclass(frozen=True)
class ReportResult:
    """The registry's verdict on one report of a batch."""

    index: int
    status: Literal["accepted", "rejected"]
    chip_id: str | None = None
    seq: int | None = None
    digest: str | None = None
    log_index: int | None = None
    http_status: int | None = None
    code: str | None = None
    detail: str | None = None

    @property
    def acknowledged(self) -> bool:
        """Durably stored by the registry: accepted now, or the same report accepted before."""
        return self.status == "accepted" or self.code in ACKNOWLEDGED_CODES

    @property
    def retry_later(self) -> bool:
        """Refused for now only (see :data:`RETRY_LATER_CODES`): keep it and send it again."""
        return self.status == "rejected" and self.code in RETRY_LATER_CODES

    def to_dict(self) -> dict[str, Any]:
        """The wire form: the fields of its status, in order, absent ones left out."""
        fields = ACCEPTED_FIELDS if self.status == "accepted" else REJECTED_FIELDS
        out = {name: getattr(self, name) for name in fields}
        return {name: value for name, value in out.items() if value is not None}

    @classmethod
    def from_dict(cls, obj: object) -> ReportResult:
        """Parse the wire form; :class:`FormatError` for anything else.

        Unknown fields are ignored (a later registry may add some); known ones must have their
        type, and an accepted result its chip id, seq, digest and log index.
        """
        if not isinstance(obj, dict):
            raise FormatError(f"a report result is an object, got {type(obj).__name__}")
        status = obj.get("status")
        if status not in ("accepted", "rejected"):
            raise FormatError(f"report result status {status!r} is neither accepted nor rejected")
        values: dict[str, Any] = {}
        for name in REJECTED_FIELDS + ACCEPTED_FIELDS:
            value = obj.get(name)
            if name == "status" or value is None:
                continue
            if name in _INTS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise FormatError(f"report result field {name!r} has the wrong type: {value!r}")
            values[name] = value
        required = ACCEPTED_FIELDS if status == "accepted" else REJECTED_FIELDS[:5]
        missing = [name for name in required if name != "status" and name not in values]
        if missing:
            raise FormatError(f"{status} report result lacks {', '.join(missing)}")
        return cls(status=status, **values)


@dataclass(frozen=True)
class BatchResult:
    """The registry's answer to one batch post: counts and one result per report, in order."""

    accepted: int
    rejected: int
    results: tuple[ReportResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, obj: object) -> BatchResult:
        """Parse the wire form; :class:`FormatError` for anything else, counts that do not add
        up included."""
        if not isinstance(obj, dict) or not isinstance(obj.get("results"), list):
            raise FormatError("a batch result is an object with a results list")
        counts = []
        for name in ("accepted", "rejected"):
            count = obj.get(name)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise FormatError(f"batch result {name!r} is not a count: {count!r}")
            counts.append(count)
        accepted, rejected = counts
        results = tuple(ReportResult.from_dict(r) for r in obj["results"])
        if sum(r.status == "accepted" for r in results) != accepted or (
            accepted + rejected != len(results)
        ):
            raise FormatError("batch result counts do not match its results")
        return cls(accepted=accepted, rejected=rejected, results=results)
