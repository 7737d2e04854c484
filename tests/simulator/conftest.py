"""Shared fixtures for simulator tests: a small deterministic simulated fleet."""

from tests.simulator.fleets import small_fleet

__all__ = ["small_fleet"]
