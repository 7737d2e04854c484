"""Versioned, cited detection thresholds, parsed from TOML.

Thresholds are configuration, never constants in the rules: inspectors argue about definitions
(BF16 dense vs FP8 sparse changes a chip count fourfold), so every finding carries the policy id
and version and the citation of the threshold that produced it. Parsing is strict: a missing,
misspelt or mistyped field is a :class:`~verifier.errors.PolicyError` naming the field.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any

from verifier.errors import PolicyError
from verifier.findings import Severity

__all__ = [
    "CLUSTER_RULE_ID",
    "RULE_PARAMS",
    "RULE_TABLES",
    "SILENCE_RULE_ID",
    "ClusterRule",
    "Policy",
    "Rule",
    "SilenceRule",
    "builtin_policy_names",
    "load_builtin_policy",
    "parse_policy",
]

CLUSTER_RULE_ID = "cluster.undeclared"
SILENCE_RULE_ID = "chip.silent"

# Rules beyond the two original ones: rule id -> (required numeric parameters, list parameters).
# Each is optional in a policy document; a rule whose table is absent is not run.
RULE_PARAMS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "cluster.split": (
        frozenset(
            {
                "link_threshold_bits_per_s",
                "inter_site_link_threshold_bits_per_s",
                "site_compute_threshold_ops_per_s",
            }
        ),
        frozenset(),
    ),
    "chip.unaccounted": (frozenset({"grace_period_s"}), frozenset()),
    "location.rtt_mismatch": (
        frozenset(
            {
                "km_per_ms_rtt",
                "slack_km",
                "max_path_inflation",
                "max_excess_rtt_ms",
                "min_slow_measurements",
            }
        ),
        frozenset(),
    ),
    "report.wrong_facility": (frozenset({"min_reports"}), frozenset()),
    "chip.forbidden_country": (frozenset({"min_reports"}), frozenset()),
    "identity.clone": (frozenset({"min_conflicts"}), frozenset()),
    "report.replay": (frozenset({"max_retry_delay_s"}), frozenset()),
    "power.ghost_chips": (
        frozenset(
            {
                "host_overhead_fraction",
                "tolerance_fraction",
                "min_chip_equivalents",
                "reference_chip_power_w",
                "host_model_uncertainty_fraction",
                "max_host_w_per_gpu",
            }
        ),
        frozenset(),
    ),
    "chip.underreporting": (
        frozenset(
            {
                "idle_utilization",
                "peer_traffic_bits_per_s",
                "host_overhead_fraction",
                "busy_time_floor",
                "unknown_model_link_bits_per_s",
            }
        ),
        frozenset(),
    ),
    "chip.above_peak": (frozenset({"tolerance_fraction"}), frozenset()),
    "link.one_sided": (frozenset({"min_bits_per_s", "mismatch_fraction"}), frozenset()),
    "cluster.budget_exceeded": (frozenset({"tolerance_fraction"}), frozenset()),
    "cluster.threshold_unnotified": (
        frozenset({"notification_grace_s"}),
        frozenset({"thresholds_flop"}),
    ),
    # GPU hardware attestation (issue 13): how often a hardware-attested chip must prove again,
    # over a fresh registry nonce, that its enrolled GPU is still behind it.
    "gpu.attestation_lapsed": (frozenset({"max_interval_s"}), frozenset()),
    "gpu.device_changed": (frozenset(), frozenset()),
}

# Rules with per-key numeric tables (rule id -> table names), for settings that depend on the
# chip model, e.g. ``link_capacity_bits_per_s = { "H100" = 8.0e12, ... }``. Keys are matched as
# prefixes of a chip's model name (:meth:`Rule.lookup`).
RULE_TABLES: dict[str, frozenset[str]] = {
    "chip.underreporting": frozenset({"link_capacity_bits_per_s"}),
}

_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_COMMON_KEYS = frozenset({"version", "severity", "citation", "enabled"})
_CLUSTER_KEYS = _COMMON_KEYS | {"link_threshold_bits_per_s", "compute_threshold_ops_per_s"}
_SILENCE_KEYS = _COMMON_KEYS | {"grace_period_s"}


@dataclass(frozen=True, slots=True)
class ClusterRule:
    """Undeclared-cluster rule: chips transitively linked above a bandwidth, above a compute."""

    rule_id: str
    version: int
    severity: Severity
    citation: str
    enabled: bool
    link_threshold_bits_per_s: float
    compute_threshold_ops_per_s: float


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """Silent-chip rule: an installed chip that has not reported for longer than the grace."""

    rule_id: str
    version: int
    severity: Severity
    citation: str
    enabled: bool
    grace_period: timedelta


@dataclass(frozen=True, slots=True)
class Rule:
    """Settings of one of the rules in :data:`RULE_PARAMS`: common fields plus its parameters."""

    rule_id: str
    version: int
    severity: Severity
    citation: str
    enabled: bool
    params: Mapping[str, float]
    lists: Mapping[str, tuple[float, ...]]
    tables: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def number(self, key: str) -> float:
        """A numeric parameter (present: the parser checked every required one)."""
        return self.params[key]

    def lookup(self, table: str, name: str) -> float | None:
        """The entry of a per-model table whose key is the longest prefix of ``name`` (so
        ``"H100"`` covers ``"H100-SXM5-80GB"``), or ``None`` when no key matches."""
        entries = self.tables[table]
        best = max((k for k in entries if name.startswith(k)), key=len, default=None)
        return None if best is None else entries[best]


@dataclass(frozen=True, slots=True)
class Policy:
    """A named, versioned set of rule settings.

    ``rules`` holds the optional rules present in the document, by id; :meth:`rule` returns
    one only when it is present *and* enabled.
    """

    policy_id: str
    version: str
    description: str
    cluster: ClusterRule
    silence: SilenceRule
    rules: Mapping[str, Rule] = field(default_factory=dict)

    def rule(self, rule_id: str) -> Rule | None:
        """The settings of an optional rule if the policy has it enabled, else ``None``."""
        found = self.rules.get(rule_id)
        return found if found is not None and found.enabled else None


def _table(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    if key not in parent:
        raise PolicyError(f"missing table [{where}]")
    value = parent[key]
    if not isinstance(value, dict):
        raise PolicyError(f"[{where}] must be a table, got {type(value).__name__}")
    return value


def _string(table: dict[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    if key not in table:
        raise PolicyError(f"{where}.{key} is missing")
    value = table[key]
    if not isinstance(value, str):
        raise PolicyError(f"{where}.{key} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise PolicyError(f"{where}.{key} must not be empty")
    return value


def _positive_number(table: dict[str, Any], key: str, where: str) -> float:
    if key not in table:
        raise PolicyError(f"{where}.{key} is missing")
    value = table[key]
    # bool is an int subclass; `true` is never a threshold.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}.{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise PolicyError(f"{where}.{key} must be a finite number > 0, got {value!r}")
    return float(value)


def _non_negative_number(table: dict[str, Any], key: str, where: str) -> float:
    if key not in table:
        raise PolicyError(f"{where}.{key} is missing")
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PolicyError(f"{where}.{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise PolicyError(f"{where}.{key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _number_list(table: dict[str, Any], key: str, where: str) -> tuple[float, ...]:
    if key not in table:
        raise PolicyError(f"{where}.{key} is missing")
    value = table[key]
    if not isinstance(value, list) or not value:
        raise PolicyError(f"{where}.{key} must be a non-empty array of numbers")
    return tuple(sorted(_positive_number({key: v}, key, where) for v in value))


def _number_table(table: dict[str, Any], key: str, where: str) -> dict[str, float]:
    if key not in table:
        raise PolicyError(f"{where}.{key} is missing")
    value = table[key]
    if not isinstance(value, dict) or not value:
        raise PolicyError(f"{where}.{key} must be a non-empty table of numbers")
    return {str(k): _positive_number(value, k, f"{where}.{key}") for k in sorted(value)}


def _check_keys(table: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise PolicyError(
            f"[{where}] has unknown key(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _common(table: dict[str, Any], where: str) -> tuple[int, Severity, str, bool]:
    version = table.get("version")
    if "version" not in table:
        raise PolicyError(f"{where}.version is missing")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise PolicyError(f"{where}.version must be an integer >= 1, got {version!r}")
    severity_text = _string(table, "severity", where)
    try:
        severity = Severity(severity_text)
    except ValueError:
        allowed = ", ".join(s.value for s in Severity)
        raise PolicyError(
            f"{where}.severity must be one of {allowed}, got {severity_text!r}"
        ) from None
    citation = _string(table, "citation", where)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise PolicyError(f"{where}.enabled must be a boolean, got {type(enabled).__name__}")
    return version, severity, citation, enabled


def parse_policy(text: str) -> Policy:
    """Parse and validate a policy document.

    Raises:
        PolicyError: the text is not TOML, or a table or field is missing, unknown, of the wrong
            type or out of range; the message names the offending field.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy is not valid TOML: {exc}") from None

    unknown_top = sorted(set(doc) - {"policy", "rules"})
    if unknown_top:
        raise PolicyError(
            f"unknown top-level key(s) {', '.join(unknown_top)}; allowed: policy, rules"
        )

    meta = _table(doc, "policy", "policy")
    _check_keys(meta, frozenset({"id", "version", "description"}), "policy")
    policy_id = _string(meta, "id", "policy")
    if not _NAME_RE.match(policy_id):
        raise PolicyError(
            f"policy.id must be lowercase letters, digits, '-' or '_', got {policy_id!r}"
        )
    version = _string(meta, "version", "policy")
    if not _VERSION_RE.match(version):
        raise PolicyError(f"policy.version must look like '2026.1', got {version!r}")
    description = _string(meta, "description", "policy")

    rules = _table(doc, "rules", "rules")
    known = {CLUSTER_RULE_ID, SILENCE_RULE_ID, *RULE_PARAMS}
    unknown_rules = sorted(set(rules) - known)
    if unknown_rules:
        raise PolicyError(
            f"unknown rule(s) {', '.join(unknown_rules)} under [rules]; known: "
            f"{', '.join(sorted(known))} (rule ids contain a dot, so quote them: "
            f'[rules."{CLUSTER_RULE_ID}"])'
        )

    where = f'rules."{CLUSTER_RULE_ID}"'
    table = _table(rules, CLUSTER_RULE_ID, where)
    _check_keys(table, _CLUSTER_KEYS, where)
    rule_version, severity, citation, enabled = _common(table, where)
    cluster = ClusterRule(
        rule_id=CLUSTER_RULE_ID,
        version=rule_version,
        severity=severity,
        citation=citation,
        enabled=enabled,
        link_threshold_bits_per_s=_positive_number(table, "link_threshold_bits_per_s", where),
        compute_threshold_ops_per_s=_positive_number(table, "compute_threshold_ops_per_s", where),
    )

    where = f'rules."{SILENCE_RULE_ID}"'
    table = _table(rules, SILENCE_RULE_ID, where)
    _check_keys(table, _SILENCE_KEYS, where)
    rule_version, severity, citation, enabled = _common(table, where)
    silence = SilenceRule(
        rule_id=SILENCE_RULE_ID,
        version=rule_version,
        severity=severity,
        citation=citation,
        enabled=enabled,
        grace_period=timedelta(seconds=_positive_number(table, "grace_period_s", where)),
    )

    optional: dict[str, Rule] = {}
    for rule_id in sorted(RULE_PARAMS):
        if rule_id not in rules:
            continue
        numbers, lists = RULE_PARAMS[rule_id]
        tables = RULE_TABLES.get(rule_id, frozenset())
        where = f'rules."{rule_id}"'
        table = _table(rules, rule_id, where)
        _check_keys(table, _COMMON_KEYS | numbers | lists | tables, where)
        rule_version, severity, citation, enabled = _common(table, where)
        optional[rule_id] = Rule(
            rule_id=rule_id,
            version=rule_version,
            severity=severity,
            citation=citation,
            enabled=enabled,
            params={k: _non_negative_number(table, k, where) for k in sorted(numbers)},
            lists={k: _number_list(table, k, where) for k in sorted(lists)},
            tables={k: _number_table(table, k, where) for k in sorted(tables)},
        )

    return Policy(
        policy_id=policy_id,
        version=version,
        description=description,
        cluster=cluster,
        silence=silence,
        rules=optional,
    )


def builtin_policy_names() -> list[str]:
    """Names of the policies shipped in ``verifier/policies/`` (file stems), sorted."""
    folder = resources.files("verifier").joinpath("policies")
    return sorted(
        entry.name.removesuffix(".toml")
        for entry in folder.iterdir()
        if entry.is_file() and entry.name.endswith(".toml")
    )


def load_builtin_policy(name: str) -> Policy:
    """Load and parse a shipped policy by name (``"default"``, ``"demo"``).

    This is the verifier's only I/O: reading package data.
    """
    names = builtin_policy_names()
    if name not in names:
        raise PolicyError(f"unknown built-in policy {name!r}; available: {', '.join(names)}")
    folder = resources.files("verifier").joinpath("policies")
    text = folder.joinpath(f"{name}.toml").read_text(encoding="utf-8")
    try:
        return parse_policy(text)
    except PolicyError as exc:
        raise PolicyError(f"built-in policy {name!r}: {exc}") from None
