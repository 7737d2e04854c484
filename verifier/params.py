"""Typed parameters of every rule: one small frozen dataclass per rule, parsed once.

Each class lists the keys its rule's policy table may hold besides the common ones
(``version``, ``severity``, ``citation``, ``enabled``), with their types and ranges. The policy
parser (:func:`verifier.policy.parse_policy`) builds them with :meth:`RuleParams.parse` when the
policy is loaded, so a rule reads ``params.link_threshold_bits_per_s`` (a float, present, in
range) and never looks a parameter up by name. A missing, unknown, mistyped or out-of-range
parameter is a :class:`~verifier.errors.PolicyError` naming the field.

A field's Python type chooses how its TOML value is read: ``float`` a number, ``int`` an integer,
``tuple[float, ...]`` a non-empty array of numbers (kept sorted), :class:`ModelTable` a
non-empty table of numbers by chip-model prefix (entries > 0). Its range is the field's metadata
(:data:`POSITIVE`, :data:`NON_NEGATIVE`, :data:`FRACTION`, :data:`COUNT`, :func:`at_least`).

To add a rule: add its class here (with ``rule_id``) and to :data:`PARAMS`, then see
"Adding a rule" in docs/VERIFIER.md.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

from verifier.errors import PolicyError

__all__ = [
    "PARAMS",
    "AbovePeakParams",
    "BudgetExceededParams",
    "CloneParams",
    "ForbiddenCountryParams",
    "GhostChipsParams",
    "GpuAttestationLapsedParams",
    "GpuDeviceChangedParams",
    "ModelTable",
    "OneSidedLinkParams",
    "ReplayParams",
    "RttMismatchParams",
    "RuleParams",
    "SilentParams",
    "SplitClusterParams",
    "ThresholdUnnotifiedParams",
    "UnaccountedParams",
    "UndeclaredClusterParams",
    "UnderreportingParams",
    "WrongFacilityParams",
]


@dataclass(frozen=True, slots=True)
class _Range:
    low: float
    strict: bool = False
    high: float | None = None

    def check(self, value: int | float, name: str, *, integer: bool = False) -> None:
        below = value <= self.low if self.strict else value < self.low
        above = self.high is not None and value > self.high
        if math.isfinite(value) and not below and not above:
            return
        if self.high is not None:
            wanted = f"in [{self.low:g}, {self.high:g}]"
        else:
            wanted = f"{'>' if self.strict else '>='} {self.low:g}"
        kind = "an integer" if integer else "a finite number"
        raise PolicyError(f"{name} must be {kind} {wanted}, got {value!r}")


_RANGE = "range"


def _bounds(low: float, *, strict: bool = False, high: float | None = None) -> Mapping[str, _Range]:
    return {_RANGE: _Range(low, strict, high)}


POSITIVE = _bounds(0.0, strict=True)
"""Field metadata: a number > 0 (thresholds, rates, intervals)."""
NON_NEGATIVE = _bounds(0.0)
"""Field metadata: a number >= 0 (tolerances, slack, grace periods that may be zero)."""
FRACTION = _bounds(0.0, high=1.0)
"""Field metadata: a number in [0, 1] (a share of a window or of a chip's time)."""
COUNT = _bounds(1)
"""Field metadata: an integer >= 1."""


def at_least(low: float) -> Mapping[str, _Range]:
    """Field metadata: a number >= ``low``."""
    return _bounds(low)


@dataclass(frozen=True, slots=True)
class ModelTable:
    """Numbers keyed by chip-model prefix, e.g. ``{ "H100" = 8.0e12, "B200" = 15.2e12 }``."""

    entries: Mapping[str, float]

    def lookup(self, model: str) -> float | None:
        """The entry whose key is the longest prefix of ``model`` (so ``"H100"`` covers
        ``"H100-SXM5-80GB"``), or ``None`` when no key matches."""
        best = max((k for k in self.entries if model.startswith(k)), key=len, default=None)
        return None if best is None else self.entries[best]


def _number(value: object, name: str) -> int | float:
    # bool is an int subclass; `true` is never a threshold.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{name} must be a number, got {type(value).__name__}")
    return value


def _integer(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PolicyError(f"{name} must be an integer, got {type(value).__name__}")
    return value


_POSITIVE = POSITIVE[_RANGE]
"""The range of every entry of a list or table parameter."""


def _number_list(value: object, name: str) -> tuple[float, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise PolicyError(f"{name} must be a non-empty array of numbers")
    numbers = [_number(v, name) for v in value]
    for v in numbers:
        _POSITIVE.check(v, name)
    return tuple(sorted(map(float, numbers)))


def _model_table(value: object, name: str) -> ModelTable:
    if isinstance(value, ModelTable):
        value = value.entries
    if not isinstance(value, Mapping) or not value:
        raise PolicyError(f"{name} must be a non-empty table of numbers")
    entries: dict[str, float] = {}
    for key in sorted(value):
        entry = _number(value[key], f"{name}.{key}")
        _POSITIVE.check(entry, f"{name}.{key}")
        entries[str(key)] = float(entry)
    return ModelTable(entries)


class RuleParams:
    """Base of the per-rule parameter classes (frozen dataclasses with a ``rule_id``).

    Besides attribute access, a parameter object reads as a mapping of its policy keys
    (``keys()``, ``params["key"]``) for generic tools: ``{**params, "key": value}`` gives the
    document a variant is parsed from (:class:`verifier.policy.RuleSettings` accepts one).
    """

    __slots__ = ()
    rule_id: ClassVar[str]

    @classmethod
    def parse(cls, table: Mapping[str, object], where: str) -> typing.Self:
        """Read this rule's parameters from ``table`` (its policy table, or any mapping of
        the same keys); keys that are not parameters are ignored (the caller checks for
        unknown keys). ``where`` prefixes error messages (``rules."chip.silent"``)."""
        hints = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for f in fields(cls):  # type: ignore[arg-type]  # subclasses are dataclasses
            name = f"{where}.{f.name}"
            if f.name not in table:
                raise PolicyError(f"{name} is missing")
            raw = table[f.name]
            kind = hints[f.name]
            bounds: _Range | None = f.metadata.get(_RANGE)
            value: object
            if kind is float or kind is int:
                scalar = _number(raw, name) if kind is float else _integer(raw, name)
                if bounds is not None:
                    # The value as written ("got 0", not "got 0.0").
                    bounds.check(scalar, name, integer=kind is int)
                value = float(scalar) if kind is float else scalar
            elif kind == tuple[float, ...]:
                value = _number_list(raw, name)
            elif kind is ModelTable:
                value = _model_table(raw, name)
            else:  # pragma: no cover - a programming error in a params class
                raise TypeError(f"{cls.__name__}.{f.name}: unsupported type {kind!r}")
            values[f.name] = value
        return cls(**values)

    @classmethod
    def keys_allowed(cls) -> frozenset[str]:
        """The parameter keys of this rule's policy table."""
        return frozenset(f.name for f in fields(cls))  # type: ignore[arg-type]

    def keys(self) -> Iterator[str]:
        """The policy keys, in declaration order."""
        return (f.name for f in fields(self))  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> object:
        if key not in type(self).keys_allowed():
            raise KeyError(key)
        value = getattr(self, key)
        return value.entries if isinstance(value, ModelTable) else value


# --- the foundation rules (every policy has them) -------------------------------------------


@dataclass(frozen=True, slots=True)
class UndeclaredClusterParams(RuleParams):
    """``cluster.undeclared``: chips transitively linked above a bandwidth, above a compute."""

    rule_id: ClassVar[str] = "cluster.undeclared"
    link_threshold_bits_per_s: float = field(metadata=POSITIVE)
    compute_threshold_ops_per_s: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class SilentParams(RuleParams):
    """``chip.silent``: an installed chip that has not reported for longer than the grace."""

    rule_id: ClassVar[str] = "chip.silent"
    grace_period_s: float = field(metadata=POSITIVE)


# --- the playbook (each optional in a policy document) ---------------------------------------


@dataclass(frozen=True, slots=True)
class UnaccountedParams(RuleParams):
    rule_id: ClassVar[str] = "chip.unaccounted"
    grace_period_s: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class SplitClusterParams(RuleParams):
    rule_id: ClassVar[str] = "cluster.split"
    link_threshold_bits_per_s: float = field(metadata=POSITIVE)
    inter_site_link_threshold_bits_per_s: float = field(metadata=POSITIVE)
    site_compute_threshold_ops_per_s: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class RttMismatchParams(RuleParams):
    rule_id: ClassVar[str] = "location.rtt_mismatch"
    km_per_ms_rtt: float = field(metadata=POSITIVE)
    slack_km: float = field(metadata=NON_NEGATIVE)
    max_path_inflation: float = field(metadata=at_least(1.0))
    max_excess_rtt_ms: float = field(metadata=NON_NEGATIVE)
    min_slow_measurements: int = field(metadata=COUNT)


@dataclass(frozen=True, slots=True)
class WrongFacilityParams(RuleParams):
    rule_id: ClassVar[str] = "report.wrong_facility"
    min_reports: int = field(metadata=COUNT)


@dataclass(frozen=True, slots=True)
class ForbiddenCountryParams(RuleParams):
    rule_id: ClassVar[str] = "chip.forbidden_country"
    min_reports: int = field(metadata=COUNT)


@dataclass(frozen=True, slots=True)
class CloneParams(RuleParams):
    rule_id: ClassVar[str] = "identity.clone"
    min_conflicts: int = field(metadata=COUNT)


@dataclass(frozen=True, slots=True)
class ReplayParams(RuleParams):
    rule_id: ClassVar[str] = "report.replay"
    max_retry_delay_s: float = field(metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class GhostChipsParams(RuleParams):
    rule_id: ClassVar[str] = "power.ghost_chips"
    host_overhead_fraction: float = field(metadata=NON_NEGATIVE)
    tolerance_fraction: float = field(metadata=NON_NEGATIVE)
    min_chip_equivalents: float = field(metadata=NON_NEGATIVE)
    reference_chip_power_w: float = field(metadata=POSITIVE)
    host_model_uncertainty_fraction: float = field(metadata=NON_NEGATIVE)
    max_host_w_per_gpu: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class UnderreportingParams(RuleParams):
    rule_id: ClassVar[str] = "chip.underreporting"
    idle_utilization: float = field(metadata=FRACTION)
    peer_traffic_bits_per_s: float = field(metadata=NON_NEGATIVE)
    host_overhead_fraction: float = field(metadata=NON_NEGATIVE)
    """Accepted for the policy format; the meter side uses ``power.ghost_chips``' own."""
    busy_time_floor: float = field(metadata=FRACTION)
    unknown_model_link_bits_per_s: float = field(metadata=POSITIVE)
    link_capacity_bits_per_s: ModelTable = field()  # entries > 0

    def carried_bits_per_s(self, model: str | None, utilization: float) -> float:
        """The most traffic (bits/s, both directions, all peers, averaged over the window) a
        chip of ``model`` can exchange when a kernel ran for ``utilization`` of the window: its
        link capacity for the busy time, never less than ``busy_time_floor`` of it (transfers
        without a kernel), never less than the absolute ``peer_traffic_bits_per_s`` floor."""
        capacity = None if model is None else self.link_capacity_bits_per_s.lookup(model)
        if capacity is None:
            capacity = self.unknown_model_link_bits_per_s
        busy = min(1.0, max(utilization, self.busy_time_floor))
        return max(self.peer_traffic_bits_per_s, capacity * busy)


@dataclass(frozen=True, slots=True)
class AbovePeakParams(RuleParams):
    rule_id: ClassVar[str] = "chip.above_peak"
    tolerance_fraction: float = field(metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class OneSidedLinkParams(RuleParams):
    rule_id: ClassVar[str] = "link.one_sided"
    min_bits_per_s: float = field(metadata=NON_NEGATIVE)
    mismatch_fraction: float = field(metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class BudgetExceededParams(RuleParams):
    rule_id: ClassVar[str] = "cluster.budget_exceeded"
    tolerance_fraction: float = field(metadata=NON_NEGATIVE)


@dataclass(frozen=True, slots=True)
class ThresholdUnnotifiedParams(RuleParams):
    rule_id: ClassVar[str] = "cluster.threshold_unnotified"
    notification_grace_s: float = field(metadata=NON_NEGATIVE)
    thresholds_flop: tuple[float, ...] = field()  # entries > 0


@dataclass(frozen=True, slots=True)
class GpuAttestationLapsedParams(RuleParams):
    """How often a hardware-attested chip must prove again, over a fresh registry nonce, that
    its enrolled GPU is still behind it (issue 13)."""

    rule_id: ClassVar[str] = "gpu.attestation_lapsed"
    max_interval_s: float = field(metadata=POSITIVE)


@dataclass(frozen=True, slots=True)
class GpuDeviceChangedParams(RuleParams):
    rule_id: ClassVar[str] = "gpu.device_changed"


PARAMS: Mapping[str, type[RuleParams]] = {
    cls.rule_id: cls
    for cls in (
        UndeclaredClusterParams,
        SilentParams,
        UnaccountedParams,
        SplitClusterParams,
        RttMismatchParams,
        WrongFacilityParams,
        ForbiddenCountryParams,
        CloneParams,
        ReplayParams,
        GhostChipsParams,
        UnderreportingParams,
        AbovePeakParams,
        OneSidedLinkParams,
        BudgetExceededParams,
        ThresholdUnnotifiedParams,
        GpuAttestationLapsedParams,
        GpuDeviceChangedParams,
    )
}
"""Rule id -> its parameter class: every rule a policy document may configure."""
