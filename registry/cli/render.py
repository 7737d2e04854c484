"""Plain-text tables for terminals: no dependency, aligned columns, wrapped long cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["describe_finding", "table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, max_width: int = 60) -> str:
    cells = [[_clip(str(c), max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def describe_finding(kind: str, details: Mapping[str, object], summary: str) -> str:
    """One short cell saying what a finding is about, for the findings tables."""
    if kind == "undeclared_cluster":
        return (
            f"{details.get('chip_count')} chips, {_number(details.get('total_peak_ops')):.2e} "
            f"OP/s peak (~{details.get('equivalent_h100')} H100-eq) > threshold "
            f"{_number(details.get('compute_threshold_ops_per_s')):.0e}"
        )
    if kind == "chip_silent":
        return f"silent since {details.get('last_seen') or 'installation'}"
    return summary


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
