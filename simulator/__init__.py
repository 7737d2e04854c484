"""Fleet simulator: a deterministic fleet with planted violations, provisioned and run over HTTP."""

from simulator.catalog import CATALOG, ChipModel
from simulator.fleet import Fleet, FleetSpec, PlantedViolation, build_fleet
from simulator.provision import ProvisionedFleet, provision
from simulator.run import RunStats, run_windows

__all__ = [
    "CATALOG",
    "ChipModel",
    "Fleet",
    "FleetSpec",
    "PlantedViolation",
    "ProvisionedFleet",
    "RunStats",
    "build_fleet",
    "provision",
    "run_windows",
]
