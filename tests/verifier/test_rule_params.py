"""Typed rule parameters: parsed and validated once, with the policy, with precise errors."""

from __future__ import annotations

import dataclasses
from importlib import resources

import pytest

from verifier.engine import RULES
from verifier.errors import PolicyError
from verifier.params import (
    PARAMS,
    ModelTable,
    RttMismatchParams,
    ThresholdUnnotifiedParams,
    UnderreportingParams,
)
from verifier.policy import (
    CLUSTER_RULE_ID,
    RULE_PARAMS,
    SILENCE_RULE_ID,
    builtin_policy_names,
    load_builtin_policy,
    parse_policy,
)

DEFAULT = resources.files("verifier").joinpath("policies/default.toml").read_text("utf-8")


def _mutate(old: str, new: str) -> str:
    assert DEFAULT.count(old) == 1, old
    return DEFAULT.replace(old, new)


@pytest.mark.parametrize("name", builtin_policy_names())
def test_shipped_policies_give_every_rule_its_typed_parameters(name: str) -> None:
    policy = load_builtin_policy(name)
    assert set(policy.rules) == set(RULE_PARAMS)
    for rule_id, params_type in PARAMS.items():
        settings = policy.rule(rule_id)
        assert settings is not None, rule_id
        assert type(settings.params) is params_type
        assert policy.settings(params_type) is settings


def test_parameters_have_their_declared_types() -> None:
    policy = load_builtin_policy("default")
    rtt = policy.settings(RttMismatchParams)
    assert rtt is not None
    assert rtt.params.min_slow_measurements == 3
    assert isinstance(rtt.params.min_slow_measurements, int)
    assert rtt.params.km_per_ms_rtt == 100.0
    assert isinstance(rtt.params.km_per_ms_rtt, float)  # written as the integer 100
    notify = policy.settings(ThresholdUnnotifiedParams)
    assert notify is not None
    assert notify.params.thresholds_flop == (1e25, 1e26)
    under = policy.settings(UnderreportingParams)
    assert under is not None
    assert isinstance(under.params.link_capacity_bits_per_s, ModelTable)
    assert under.params.link_capacity_bits_per_s.lookup("B200-SXM-192GB") == 15.2e12
    assert under.params.carried_bits_per_s("H100-SXM5-80GB", 0.5) == 4e12
    assert under.params.carried_bits_per_s("H100", 0.0) == 8e12 * 0.02  # busy_time_floor
    assert under.params.carried_bits_per_s("unknown", 1.0) == 15.2e12


BAD = [
    # unknown parameter (a typo)
    (
        _mutate("mismatch_fraction = 0.2", "mismatch_fractoin = 0.2"),
        r'^\[rules\."link\.one_sided"\] has unknown key\(s\) mismatch_fractoin; allowed: '
        r"citation, enabled, min_bits_per_s, mismatch_fraction, severity, version$",
    ),
    # missing parameter
    (
        _mutate("max_retry_delay_s = 21600\n", ""),
        r'^rules\."report\.replay"\.max_retry_delay_s is missing$',
    ),
    # wrong types
    (
        _mutate("min_slow_measurements = 3", "min_slow_measurements = 2.5"),
        r'^rules\."location\.rtt_mismatch"\.min_slow_measurements must be an integer, got float$',
    ),
    (
        _mutate("min_conflicts = 1", 'min_conflicts = "1"'),
        r'^rules\."identity\.clone"\.min_conflicts must be an integer, got str$',
    ),
    (
        _mutate("max_host_w_per_gpu = 600", "max_host_w_per_gpu = true"),
        r'^rules\."power\.ghost_chips"\.max_host_w_per_gpu must be a number, got bool$',
    ),
    (
        _mutate("notification_grace_s = 86400", 'notification_grace_s = "1 day"'),
        r"notification_grace_s must be a number, got str$",
    ),
    (
        _mutate("thresholds_flop = [1e25, 1e26]", "thresholds_flop = 1e25"),
        r'^rules\."cluster\.threshold_unnotified"\.thresholds_flop must be a non-empty array',
    ),
    (
        _mutate("thresholds_flop = [1e25, 1e26]", 'thresholds_flop = [1e25, "1e26"]'),
        r"thresholds_flop must be a number, got str$",
    ),
    # out of range
    (
        _mutate("min_slow_measurements = 3", "min_slow_measurements = 0"),
        r"min_slow_measurements must be an integer >= 1, got 0$",
    ),
    (
        _mutate("idle_utilization = 0.05", "idle_utilization = 1.5"),
        r'^rules\."chip\.underreporting"\.idle_utilization must be a finite number in \[0, 1\], '
        r"got 1\.5$",
    ),
    (
        _mutate("max_path_inflation = 3.0", "max_path_inflation = 0.5"),
        r"max_path_inflation must be a finite number >= 1, got 0\.5$",
    ),
    (
        _mutate("mismatch_fraction = 0.2", "mismatch_fraction = -0.2"),
        r"mismatch_fraction must be a finite number >= 0, got -0\.2$",
    ),
    (
        _mutate("max_interval_s = 604800", "max_interval_s = 0"),
        r'^rules\."gpu\.attestation_lapsed"\.max_interval_s must be a finite number > 0, got 0$',
    ),
    (
        _mutate(
            "inter_site_link_threshold_bits_per_s = 25e9",
            "inter_site_link_threshold_bits_per_s = nan",
        ),
        r"inter_site_link_threshold_bits_per_s must be a finite number > 0, got nan$",
    ),
    (
        _mutate("thresholds_flop = [1e25, 1e26]", "thresholds_flop = [1e25, -1e26]"),
        r"thresholds_flop must be a finite number > 0, got -1e\+26$",
    ),
    (
        _mutate('"MI300X" = 7.968e12', '"MI300X" = 0'),
        r"link_capacity_bits_per_s\.MI300X must be a finite number > 0, got 0$",
    ),
    # a rule without parameters takes none
    (
        _mutate('[rules."gpu.device_changed"]', '[rules."gpu.device_changed"]\nmax_interval_s = 1'),
        r'^\[rules\."gpu\.device_changed"\] has unknown key\(s\) max_interval_s; allowed: '
        r"citation, enabled, severity, version$",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:48] for _, m in BAD])
def test_bad_rule_parameter_raises_a_precise_error(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_shipped_text_parses() -> None:
    """The mutations above start from a valid document."""
    assert parse_policy(DEFAULT) == load_builtin_policy("default")


def test_settings_built_from_a_mapping_are_validated_like_the_file() -> None:
    policy = load_builtin_policy("default")
    rule = policy.rules[ThresholdUnnotifiedParams.rule_id]
    later = dataclasses.replace(rule, params={**rule.params, "notification_grace_s": 3600})
    assert later.params == ThresholdUnnotifiedParams(3600.0, (1e25, 1e26))
    with pytest.raises(PolicyError, match=r"notification_grace_s must be a finite number >= 0"):
        dataclasses.replace(rule, params={**rule.params, "notification_grace_s": -1})
    with pytest.raises(PolicyError, match=r"has unknown key\(s\) grace_s;"):
        dataclasses.replace(rule, params={**rule.params, "grace_s": 1})
    with pytest.raises(PolicyError, match=r"thresholds_flop is missing$"):
        dataclasses.replace(rule, params={"notification_grace_s": 1})


def test_the_parameter_catalogue_and_the_engine_name_the_same_rules() -> None:
    assert {CLUSTER_RULE_ID, SILENCE_RULE_ID, *RULE_PARAMS} == set(PARAMS)
    assert {rule_id for rule in RULES for rule_id in rule.rule_ids} == set(PARAMS)
