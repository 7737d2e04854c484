"""Fleet simulator: deterministic worlds with planted violations and their ground truth,
provisioned into a registry over HTTP and run through real agents, or simulated window by window
into signed artifacts for the verifier's scenario suite."""

from simulator.catalog import CATALOG, ChipModel
from simulator.fleet import FleetSpec, build_fleet
from simulator.ground_truth import Label
from simulator.provision import ProvisionedWorld, provision_world
from simulator.run import RunStats, run_windows
from simulator.world import World

__all__ = [
    "CATALOG",
    "ChipModel",
    "FleetSpec",
    "Label",
    "ProvisionedWorld",
    "RunStats",
    "World",
    "build_fleet",
    "provision_world",
    "run_windows",
]
