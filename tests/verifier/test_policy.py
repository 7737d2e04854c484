"""Policy parsing: the shipped policies, and precise errors for bad documents."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from verifier.errors import PolicyError
from verifier.findings import Severity
from verifier.policy import builtin_policy_names, load_builtin_policy, parse_policy

VALID = """
[policy]
id = "test"
version = "2026.1"
description = "a test policy"

[rules."cluster.undeclared"]
version = 2
severity = "high"
link_threshold_bits_per_s = 100e9
compute_threshold_ops_per_s = 1e20
citation = "EO 14110 sec. 4.2(b)(ii)"

[rules."chip.silent"]
version = 1
severity = "medium"
grace_period_s = 7200
citation = "continuity of knowledge"
enabled = false
"""


def test_builtin_policies_are_listed() -> None:
    assert builtin_policy_names() == ["default", "demo"]


def test_default_policy_carries_the_eo_14110_thresholds() -> None:
    policy = load_builtin_policy("default")
    assert (policy.policy_id, policy.version) == ("default", "2026.3")
    assert policy.cluster.rule_id == "cluster.undeclared"
    assert policy.cluster.link_threshold_bits_per_s == 100e9
    assert policy.cluster.compute_threshold_ops_per_s == 1e20
    assert policy.cluster.severity is Severity.CRITICAL
    assert "14110" in policy.cluster.citation
    assert "4.2(b)(ii)" in policy.cluster.citation
    assert policy.silence.rule_id == "chip.silent"
    assert policy.silence.grace_period == timedelta(hours=2)
    assert "continuity of knowledge" in policy.silence.citation
    assert policy.cluster.enabled
    assert policy.silence.enabled


def test_demo_policy_is_scaled_for_a_small_fleet() -> None:
    policy = load_builtin_policy("demo")
    assert policy.policy_id == "demo"
    assert policy.cluster.link_threshold_bits_per_s == 100e9
    assert policy.cluster.compute_threshold_ops_per_s == 2e16
    assert policy.silence.grace_period == timedelta(minutes=45)
    assert "few-hundred-chip demo fleet" in policy.description


def test_valid_policy_parses() -> None:
    policy = parse_policy(VALID)
    assert policy.cluster.version == 2
    assert policy.cluster.severity is Severity.HIGH
    assert policy.silence.severity is Severity.MEDIUM
    assert policy.silence.enabled is False
    assert policy.silence.grace_period == timedelta(seconds=7200)


def test_unknown_builtin_policy() -> None:
    with pytest.raises(
        PolicyError, match="unknown built-in policy 'strict'; available: default, demo"
    ):
        load_builtin_policy("strict")


def _mutate(old: str, new: str) -> str:
    assert old in VALID, old
    return VALID.replace(old, new, 1)


BAD = [
    ("[policy\nid = 1", r"^policy is not valid TOML: "),
    (_mutate("[policy]", "[meta]"), r"unknown top-level key\(s\) meta"),
    (VALID.split("[rules", maxsplit=1)[0], r"^missing table \[rules\]$"),
    (_mutate('id = "test"\n', ""), r"^policy\.id is missing$"),
    (_mutate('id = "test"', 'id = "Test Policy"'), r"^policy\.id must be lowercase"),
    (
        _mutate('version = "2026.1"', "version = 2026.1"),
        r"^policy\.version must be a string, got float$",
    ),
    (
        _mutate('version = "2026.1"', 'version = "spring"'),
        r"^policy\.version must look like '2026\.1', got 'spring'$",
    ),
    (
        _mutate('description = "a test policy"', 'description = "  "'),
        r"^policy\.description must not be empty$",
    ),
    (
        _mutate('description = "a test policy"', 'description = "x"\nowner = "me"'),
        r"^\[policy\] has unknown key\(s\) owner",
    ),
    (
        _mutate('[rules."cluster.undeclared"]', "[rules.cluster.undeclared]"),
        r"unknown rule\(s\) cluster under \[rules\].*quote them",
    ),
    (
        _mutate('[rules."chip.silent"]', '[rules."chip.silnt"]'),
        r"unknown rule\(s\) chip\.silnt under \[rules\]",
    ),
    (
        _mutate("link_threshold_bits_per_s = 100e9\n", ""),
        r'^rules\."cluster\.undeclared"\.link_threshold_bits_per_s is missing$',
    ),
    (
        _mutate("link_threshold_bits_per_s", "link_threshold_bit_per_s"),
        r"has unknown key\(s\) link_threshold_bit_per_s; allowed: citation, ",
    ),
    (
        _mutate("compute_threshold_ops_per_s = 1e20", "compute_threshold_ops_per_s = -1e20"),
        r"compute_threshold_ops_per_s must be a finite number > 0, got -1e\+20$",
    ),
    (
        _mutate("compute_threshold_ops_per_s = 1e20", 'compute_threshold_ops_per_s = "1e20"'),
        r"compute_threshold_ops_per_s must be a number, got str$",
    ),
    (
        _mutate("compute_threshold_ops_per_s = 1e20", "compute_threshold_ops_per_s = true"),
        r"compute_threshold_ops_per_s must be a number, got bool$",
    ),
    (
        _mutate("compute_threshold_ops_per_s = 1e20", "compute_threshold_ops_per_s = inf"),
        r"must be a finite number > 0, got inf$",
    ),
    (
        _mutate("grace_period_s = 7200", "grace_period_s = 0"),
        r'^rules\."chip\.silent"\.grace_period_s must be a finite number > 0, got 0$',
    ),
    (
        _mutate('severity = "high"', 'severity = "urgent"'),
        r"severity must be one of low, medium, high, critical, got 'urgent'$",
    ),
    (
        _mutate("version = 2\n", "version = 0\n"),
        r'^rules\."cluster\.undeclared"\.version must be an integer >= 1, got 0$',
    ),
    (_mutate("version = 2\n", ""), r'^rules\."cluster\.undeclared"\.version is missing$'),
    (
        _mutate('citation = "continuity of knowledge"', 'citation = ""'),
        r'^rules\."chip\.silent"\.citation must not be empty$',
    ),
    (_mutate("enabled = false", 'enabled = "no"'), r"enabled must be a boolean, got str$"),
    (
        VALID.split('[rules."chip.silent"]', maxsplit=1)[0],
        r'^missing table \[rules\."chip\.silent"\]$',
    ),
    (
        _mutate('[rules."chip.silent"]', 'rules_note = 1\n[rules."chip.silent"]'),
        r'^\[rules\."cluster\.undeclared"\] has unknown key\(s\) rules_note;',
    ),
]


@pytest.mark.parametrize(
    ("text", "message"), BAD, ids=[re.sub(r"\W+", "_", m)[:40] for _, m in BAD]
)
def test_bad_policy_raises_a_precise_error(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_rule_that_is_not_a_table() -> None:
    text = (
        VALID.split("[rules", maxsplit=1)[0]
        + '[rules]\n"cluster.undeclared" = 5\n"chip.silent" = 6\n'
    )
    with pytest.raises(
        PolicyError, match=r'^\[rules\."cluster\.undeclared"\] must be a table, got int$'
    ):
        parse_policy(text)


def _with_underreporting(capacity: str) -> str:
    return VALID + (
        '\n[rules."chip.underreporting"]\nversion = 2\nseverity = "high"\ncitation = "c"\n'
        "idle_utilization = 0.05\npeer_traffic_bits_per_s = 10e9\n"
        "host_overhead_fraction = 0.25\nbusy_time_floor = 0.02\n"
        f"unknown_model_link_bits_per_s = 15e12\nlink_capacity_bits_per_s = {capacity}\n"
    )


def test_per_model_tables_match_the_longest_prefix() -> None:
    policy = parse_policy(_with_underreporting('{ "H100" = 8e12, "H100-PCIe" = 1.3e12 }'))
    rule = policy.rules["chip.underreporting"]
    assert rule.lookup("link_capacity_bits_per_s", "H100-SXM5-80GB") == 8e12
    assert rule.lookup("link_capacity_bits_per_s", "H100-PCIe-80GB") == 1.3e12
    assert rule.lookup("link_capacity_bits_per_s", "MI300X") is None
    shipped = load_builtin_policy("default").rules["chip.underreporting"]
    assert shipped.lookup("link_capacity_bits_per_s", "B200-SXM-192GB") == 15.2e12


@pytest.mark.parametrize(
    ("capacity", "message"),
    [
        ("8e12", r"link_capacity_bits_per_s must be a non-empty table of numbers$"),
        ("{}", r"link_capacity_bits_per_s must be a non-empty table of numbers$"),
        ('{ "H100" = -1 }', r"link_capacity_bits_per_s\.H100 must be a finite number > 0"),
    ],
)
def test_bad_per_model_table(capacity: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(_with_underreporting(capacity))
