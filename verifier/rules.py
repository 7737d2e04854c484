"""The one interface every rule has: a :class:`Rule` value whose ``find`` reads a
:class:`RuleContext` and returns findings.

The context holds everything a rule may read, each built at most once per run and shared:
the snapshot, the policy, ``as_of``, the snapshot's groupings (:class:`SnapshotIndex`) and the
per-window traffic analysis (built on first use, so a run whose enabled rules never ask for it
never pays for it). A rule reads its typed settings with ``ctx.settings(ItsParams)``: ``None``
when the policy lacks the rule or disables it, and then the rule finds nothing.

The engine (:mod:`verifier.engine`) is the list of rules, run in order over one context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from verifier._index import SnapshotIndex
from verifier._traffic import WindowTraffic, analyse_windows
from verifier.errors import FactError
from verifier.facts import Snapshot
from verifier.findings import Finding
from verifier.params import RuleParams
from verifier.policy import Policy, RuleSettings

__all__ = ["Rule", "RuleContext"]

P = TypeVar("P", bound=RuleParams)


class RuleContext:
    """The inputs of one run, shared by every rule of it.

    Raises:
        FactError: ``as_of`` is naive.
    """

    __slots__ = ("_traffic", "as_of", "index", "policy", "snapshot")

    def __init__(self, snapshot: Snapshot, policy: Policy, as_of: datetime) -> None:
        if as_of.utcoffset() is None:
            raise FactError(f"as_of must be timezone-aware, got naive {as_of.isoformat()}")
        self.snapshot = snapshot
        self.policy = policy
        self.as_of = as_of
        self.index = SnapshotIndex(snapshot)
        self._traffic: list[WindowTraffic] | None = None

    def settings(self, params_type: type[P]) -> RuleSettings[P] | None:
        """The policy's settings of the rule with these parameters, if it is enabled."""
        return self.policy.settings(params_type)

    @property
    def traffic(self) -> Sequence[WindowTraffic]:
        """Every report window's interconnect claims, read once (windows in order) with the
        thresholds of the enabled link rules (:func:`verifier._traffic.analyse_windows`)."""
        if self._traffic is None:
            self._traffic = analyse_windows(self.index, self.policy)
        return self._traffic

    @property
    def traffic_analysed(self) -> bool:
        """Whether some rule of this run asked for :attr:`traffic`."""
        return self._traffic is not None


@dataclass(frozen=True, slots=True)
class Rule:
    """A detection rule.

    ``rule_ids``: the policy rules whose settings it reads and whose findings it emits (one,
    or two when both come from one pass over the facts: ``power.ghost_chips`` with the meter
    side of ``chip.underreporting``). ``kinds``: the finding kinds it emits. ``find``: the
    findings for one context; nothing when its rules are disabled.
    """

    rule_ids: tuple[str, ...]
    kinds: tuple[str, ...]
    find: Callable[[RuleContext], Iterable[Finding]]
