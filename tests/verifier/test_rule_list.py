"""The engine is a list of rules behind one interface: each runs once per run over one shared
context, emits only what it declares, and nothing when the policy disables it.

The fleet is the scale benchmark's scaled-down one with every playbook violation planted (as in
test_determinism.py), plus GPU evidence that trips both GPU rules, so every rule has findings.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable
from datetime import timedelta
from importlib import resources

import pytest

from loadtests.bench_verifier import SMALL, T0, WINDOW, build
from verifier.engine import RULES, run
from verifier.facts import GpuAttestationFact, Snapshot
from verifier.findings import Finding
from verifier.params import PARAMS
from verifier.policy import Policy, load_builtin_policy, parse_policy
from verifier.rules import Rule, RuleContext

WINDOWS = 3
AS_OF = T0 + WINDOW * WINDOWS
DEMO = resources.files("verifier").joinpath("policies/demo.toml").read_text("utf-8")


@pytest.fixture(scope="module")
def planted() -> Snapshot:
    snapshot = build(6_000, layout=SMALL, windows=WINDOWS, plant=True)
    chip_id = min(c for c, chip in snapshot.chips.items() if chip.installed_at is not None)
    gpu = [
        # Enrolled with GPU a two days ago, never proven since (demo: every 6 h): lapsed; and a
        # re-attestation answered by another GPU: device changed.
        GpuAttestationFact(chip_id, "enrollment", "a" * 64, T0 - timedelta(days=2), 10**9),
        GpuAttestationFact(chip_id, "reattestation", "b" * 64, T0, 10**9 + 1),
    ]
    return dataclasses.replace(snapshot, gpu_attestations=gpu)


@pytest.fixture(scope="module")
def everything(planted: Snapshot) -> list[Finding]:
    return run(planted, load_builtin_policy("demo"), AS_OF)


def _disabled(rule_id: str) -> Policy:
    """The demo policy file with ``enabled = false`` added to one rule's table."""
    header = f'[rules."{rule_id}"]\n'
    assert DEMO.count(header) == 1
    return parse_policy(DEMO.replace(header, header + "enabled = false\n"))


def test_the_planted_fleet_trips_every_rule(everything: list[Finding]) -> None:
    assert {f.rule_id for f in everything} == set(PARAMS)


def test_every_rule_of_the_list_runs_once_over_one_context(
    planted: Snapshot, everything: list[Finding]
) -> None:
    calls: Counter[int] = Counter()
    contexts: set[int] = set()
    emitted: dict[int, list[Finding]] = {}

    def counted(k: int, rule: Rule) -> Rule:
        def find(ctx: RuleContext) -> Iterable[Finding]:
            calls[k] += 1
            contexts.add(id(ctx))
            emitted[k] = list(rule.find(ctx))
            return emitted[k]

        return Rule(rule.rule_ids, rule.kinds, find)

    found = run(
        planted,
        load_builtin_policy("demo"),
        AS_OF,
        rules=[counted(k, rule) for k, rule in enumerate(RULES)],
    )
    assert found == everything
    assert calls == Counter(range(len(RULES)))  # each exactly once
    assert len(contexts) == 1
    for k, rule in enumerate(RULES):
        # Each rule emits only the rule ids and kinds it declares.
        assert {f.rule_id for f in emitted[k]} <= set(rule.rule_ids), rule
        assert {f.kind for f in emitted[k]} <= set(rule.kinds), rule
    assert len(set(RULES)) == len(RULES)


def test_the_list_declares_each_rule_id_and_kind(everything: list[Finding]) -> None:
    declared = {
        (rule_id, kind) for rule in RULES for rule_id in rule.rule_ids for kind in rule.kinds
    }
    assert {(f.rule_id, f.kind) for f in everything} <= declared


@pytest.mark.parametrize("rule_id", sorted(PARAMS))
def test_a_rule_disabled_in_the_policy_emits_nothing(
    rule_id: str, planted: Snapshot, everything: list[Finding]
) -> None:
    found = run(planted, _disabled(rule_id), AS_OF)
    assert not [f for f in found if f.rule_id == rule_id]
    # The other rules find what they found with everything enabled; the one dependency: the
    # meter side of chip.underreporting is judged on power.ghost_chips' excess.
    expected = [f for f in everything if f.rule_id != rule_id]
    if rule_id == "power.ghost_chips":
        expected = [
            f
            for f in expected
            if not (f.rule_id == "chip.underreporting" and f.subject_type == "facility")
        ]
    assert found == expected


def test_the_traffic_analysis_is_built_only_for_the_link_rules(planted: Snapshot) -> None:
    demo = load_builtin_policy("demo")
    ctx = RuleContext(planted, demo, AS_OF)
    for rule in RULES:
        list(rule.find(ctx))
    assert ctx.traffic_analysed
    link_rules = {"cluster.undeclared", "cluster.split", "link.one_sided", "chip.underreporting"}
    quiet = DEMO
    for rule_id in sorted(link_rules):
        header = f'[rules."{rule_id}"]\n'
        quiet = quiet.replace(header, header + "enabled = false\n")
    ctx = RuleContext(planted, parse_policy(quiet), AS_OF)
    for rule in RULES:
        list(rule.find(ctx))
    assert not ctx.traffic_analysed
