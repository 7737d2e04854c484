"""The physics behind the simulator's independent channels: round trips and facility energy.

* Round trips: light in fibre covers about 200 km per ms, so a round trip over a great-circle
  distance ``d`` takes at least ``2 d / 200`` ms. Real routes are longer than the great circle
  (path inflation 1.15-1.9x) and add processing, last-mile and queueing delay. A simulated round
  trip is never faster than light.
* Facility energy: a meter sees the accelerators' energy, the hosts around them (CPUs, memory,
  NICs, fans: a large constant per host plus a share that follows GPU utilization, see
  :func:`true_host_model`), the cooling and power-conversion overhead (PUE) and a constant
  non-IT load, plus the meter's own error.
* Busy time and traffic: a GPU moves interconnect bytes only while a kernel runs, so a job's
  link traffic is at most the link capacity for the time it is busy (:data:`PAIR_GBYTES_PER_S`).
"""

from __future__ import annotations

import math
import random

from verifier.facts import HostPowerFact

__all__ = [
    "FIBRE_KM_PER_MS",
    "IB_GBYTES_PER_S",
    "PAIR_GBYTES_PER_S",
    "great_circle_km",
    "light_rtt_ms",
    "meter_energy_j",
    "simulated_rtt_ms",
    "true_host_model",
]

FIBRE_KM_PER_MS = 200.0
"""Speed of light in optical fibre (refractive index about 1.47), km per millisecond."""
_EARTH_RADIUS_KM = 6371.0088

PAIR_GBYTES_PER_S = 60.0
"""Most a GPU sends to each of its 7 node peers, GB/s one way, while busy: 7 x 60 x 2 directions
= 840 GB/s, inside NVLink 4's 900 GB/s (H100 SXM datasheet)."""
IB_GBYTES_PER_S = 20.0
"""Most a GPU sends to each ring neighbour on another node, GB/s one way, while busy: 2 x 20 x 2
= 80 GB/s, inside one 400 Gbit/s NIC per GPU (100 GB/s both directions)."""


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance on a spherical Earth (mean radius), in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def light_rtt_ms(distance_km: float) -> float:
    """The physical lower bound on a round trip over ``distance_km`` of fibre."""
    return 2 * distance_km / FIBRE_KM_PER_MS


def simulated_rtt_ms(distance_km: float, rng: random.Random) -> float:
    """A realistic round trip over a great-circle distance: propagation along an inflated
    route, plus processing and last-mile delay, plus queueing jitter (exponential, capped)."""
    inflation = rng.uniform(1.15, 1.9)
    base = rng.uniform(0.2, 2.0)
    jitter = min(rng.expovariate(1 / 1.5), 15.0)
    return round(light_rtt_ms(distance_km) * inflation + base + jitter, 3)


def true_host_model(rng: random.Random) -> HostPowerFact:
    """What an 8-GPU host really draws beyond its GPUs, drawn per facility: 900-1,600 W idle
    (two server CPUs at 100-200 W idle each, 1-2 TB of DDR5, NICs, NVSwitches, fans at low
    speed), 30-70 W per GPU slot (a NIC and a PCIe switch per GPU), and 600-1,800 W more when
    its GPUs are fully busy (CPUs feeding them, fans ramping up). An NVIDIA DGX H100 draws at
    most 10.2 kW with 8 x 700 W GPUs: at most 4.6 kW is host."""
    return HostPowerFact(
        gpus_per_host=8,
        idle_w=round(rng.uniform(900, 1600), 1),
        per_gpu_slot_w=round(rng.uniform(30, 70), 1),
        busy_w=round(rng.uniform(600, 1800), 1),
    )


def meter_energy_j(
    it_energy_j: float,
    seconds: float,
    *,
    pue: float,
    non_it_kw: float,
    rng: random.Random,
    error: float = 0.005,
) -> float:
    """What a facility meter reads over a window: IT energy (chips and hosts) x PUE + non-IT
    load, with a uniform meter error of +/- ``error`` (revenue-grade meters: 0.5-1%)."""
    true = it_energy_j * pue + non_it_kw * 1000 * seconds
    return round(true * (1 + rng.uniform(-error, error)), 1)
