"""Shared fixtures for agent tests: the small deterministic simulated fleet they report from."""

from tests.simulator.fleets import small_fleet

__all__ = ["small_fleet"]
