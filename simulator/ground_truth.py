"""Ground truth of a simulated world: what was planted, which rule must catch it, from when."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Label"]


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for one planted violation.

    ``rule_id`` is the rule that must catch it; ``also`` rules whose findings on the same
    subjects are legitimate consequences of it (not false alarms). ``start_window`` is the index
    of the first window in which the violation happens. Subjects: chip ids, facility ids,
    declared cluster ids.
    """

    kind: str
    rule_id: str
    start_window: int
    chips: frozenset[str] = frozenset()
    facilities: frozenset[int] = frozenset()
    clusters: frozenset[int] = frozenset()
    also: frozenset[str] = frozenset()
    detail: str = ""
