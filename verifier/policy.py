"""Versioned, cited detection thresholds, parsed from TOML.

Thresholds are configuration, never constants in the rules: inspectors argue about definitions
(BF16 dense vs FP8 sparse changes a chip count fourfold), so every finding carries the policy id
and version and the citation of the threshold that produced it. Parsing is strict: a missing,
misspelt or mistyped field is a :class:`~verifier.errors.PolicyError` naming the field.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import Any, Generic, TypeVar, cast

from verifier.errors import PolicyError
from verifier.findings import Severity
from verifier.params import (
    PARAMS,
    ModelTable,
    RuleParams,
    SilentParams,
    UndeclaredClusterParams,
)

__all__ = [
    "CLUSTER_RULE_ID",
    "RULE_PARAMS",
    "SILENCE_RULE_ID",
    "ClusterRule",
    "Policy",
    "RuleSettings",
    "SilenceRule",
    "builtin_policy_names",
    "load_builtin_policy",
    "parse_policy",
]

CLUSTER_RULE_ID = UndeclaredClusterParams.rule_id
SILENCE_RULE_ID = SilentParams.rule_id

RULE_PARAMS: Mapping[str, type[RuleParams]] = {
    rule_id: params
    for rule_id, params in PARAMS.items()
    if rule_id not in {CLUSTER_RULE_ID, SILENCE_RULE_ID}
}
"""The rules beyond the two foundation ones, with their parameter classes
(:mod:`verifier.params`). Each is optional in a policy document; a rule whose table is absent
is not run."""

_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_COMMON_KEYS = frozenset({"version", "severity", "citation", "enabled"})

P = TypeVar("P", bound=RuleParams)


@dataclass(frozen=True, slots=True)
class RuleSettings(Generic[P]):
    """One rule's settings in a policy: the common fields and its typed parameters.

    ``params`` is the rule's parameter object (:mod:`verifier.params`). A mapping of its
    policy keys is accepted too (``dataclasses.replace(rule, params={**rule.params, ...})``)
    and parsed and validated as the policy file would be.
    """

    rule_id: str
    version: int
    severity: Severity
    citation: str
    enabled: bool
    params: P

    def __post_init__(self) -> None:
        params_type = PARAMS.get(self.rule_id)
        if params_type is None:
            raise PolicyError(f"unknown rule {self.rule_id!r}")
        if not isinstance(self.params, params_type):
            if not isinstance(self.params, Mapping | RuleParams):
                raise PolicyError(
                    f"parameters of {self.rule_id} must be {params_type.__name__} or a mapping"
                )
            table = cast("Mapping[str, object]", self.params)
            where = f'rules."{self.rule_id}"'
            _check_keys(dict(table), params_type.keys_allowed(), where)
            object.__setattr__(self, "params", params_type.parse(table, where))

    def lookup(self, table: str, model: str) -> float | None:
        """The entry of the per-model table ``table`` for ``model`` (longest key prefix), or
        ``None`` when no key matches (:meth:`verifier.params.ModelTable.lookup`)."""
        found = getattr(self.params, table)
        if not isinstance(found, ModelTable):
            raise KeyError(f"{self.rule_id} has no per-model table {table!r}")
        return found.lookup(model)


@dataclass(frozen=True, slots=True)
class ClusterRule(RuleSettings[UndeclaredClusterParams]):
    """Settings of ``cluster.undeclared``, with its two thresholds at hand."""

    @property
    def link_threshold_bits_per_s(self) -> float:
        return self.params.link_threshold_bits_per_s

    @property
    def compute_threshold_ops_per_s(self) -> float:
        return self.params.compute_threshold_ops_per_s


@dataclass(frozen=True, slots=True)
class SilenceRule(RuleSettings[SilentParams]):
    """Settings of ``chip.silent``, with its grace period as a ``timedelta``."""

    @property
    def grace_period(self) -> timedelta:
        return timedelta(seconds=self.params.grace_period_s)


@dataclass(frozen=True, slots=True)
class Policy:
    """A named, versioned set of rule settings.

    ``cluster`` and ``silence`` are the two rules every policy has; ``rules`` holds the
    optional rules present in the document, by id. :meth:`rule` and :meth:`settings` return a
    rule's settings only when it is present *and* enabled.
    """

    policy_id: str
    version: str
    description: str
    cluster: ClusterRule
    silence: SilenceRule
    rules: Mapping[str, RuleSettings[Any]] = field(default_factory=dict)

    def rule(self, rule_id: str) -> RuleSettings[Any] | None:
        """The settings of a rule if the policy has it enabled, else ``None``."""
        if rule_id == CLUSTER_RULE_ID:
            found: RuleSettings[Any] | None = self.cluster
        elif rule_id == SILENCE_RULE_ID:
            found = self.silence
        else:
            found = self.rules.get(rule_id)
        return found if found is not None and found.enabled else None

    def settings(self, params_type: type[P]) -> RuleSettings[P] | None:
        """The typed settings of the rule whose parameters are ``params_type``, if enabled."""
        found = self.rule(params_type.rule_id)
        if found is None:
            return None
        if not isinstance(found.params, params_type):
            raise TypeError(f"{params_type.rule_id} has {type(found.params).__name__} parameters")
        return cast("RuleSettings[P]", found)


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


def _settings(
    rules: dict[str, Any], rule_id: str, params_type: type[P]
) -> tuple[str, int, Severity, str, bool, P]:
    """The fields of one rule's :class:`RuleSettings`, read from its table under [rules]."""
    where = f'rules."{rule_id}"'
    table = _table(rules, rule_id, where)
    _check_keys(table, _COMMON_KEYS | params_type.keys_allowed(), where)
    version, severity, citation, enabled = _common(table, where)
    return rule_id, version, severity, citation, enabled, params_type.parse(table, where)


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
    known = set(PARAMS)
    unknown_rules = sorted(set(rules) - known)
    if unknown_rules:
        raise PolicyError(
            f"unknown rule(s) {', '.join(unknown_rules)} under [rules]; known: "
            f"{', '.join(sorted(known))} (rule ids contain a dot, so quote them: "
            f'[rules."{CLUSTER_RULE_ID}"])'
        )

    cluster = ClusterRule(*_settings(rules, CLUSTER_RULE_ID, UndeclaredClusterParams))
    silence = SilenceRule(*_settings(rules, SILENCE_RULE_ID, SilentParams))
    optional: dict[str, RuleSettings[Any]] = {}
    for rule_id in sorted(RULE_PARAMS):
        if rule_id in rules:
            optional[rule_id] = RuleSettings(*_settings(rules, rule_id, RULE_PARAMS[rule_id]))

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
