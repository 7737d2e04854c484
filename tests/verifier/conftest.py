"""Shared fixtures: the shipped policies."""

from __future__ import annotations

import pytest

from verifier.policy import Policy, load_builtin_policy


@pytest.fixture(scope="session")
def demo_policy() -> Policy:
    """Cluster threshold 2e16 OP/s (about 20 H100), grace 45 minutes."""
    return load_builtin_policy("demo")


@pytest.fixture(scope="session")
def default_policy() -> Policy:
    """Cluster threshold 1e20 OP/s, grace 2 hours."""
    return load_builtin_policy("default")
