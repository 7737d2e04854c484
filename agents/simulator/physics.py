"""The physics behind the simulator's independent channels: round trips and facility energy.

* Round trips: light in fibre covers about 200 km per ms, so a round trip over a great-circle
  distance ``d`` takes at least ``2 d / 200`` ms. Real routes are longer than the great circle
  (path inflation 1.15-1.9x) and add processing, last-mile and queueing delay. A simulated round
  trip is never faster than light.
* Facility energy: a meter sees the accelerators' energy, the hosts around them (CPUs, memory,
  NICs, fans), the cooling and power-conversion overhead (PUE) and a constant non-IT load, plus
  the meter's own error.
"""

from __future__ import annotations

import math
import random

__all__ = [
    "FIBRE_KM_PER_MS",
    "great_circle_km",
    "light_rtt_ms",
    "meter_energy_j",
    "simulated_rtt_ms",
]

FIBRE_KM_PER_MS = 200.0
"""Speed of light in optical fibre (refractive index about 1.47), km per millisecond."""
_EARTH_RADIUS_KM = 6371.0088


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


def meter_energy_j(
    chip_energy_j: float,
    seconds: float,
    *,
    host_overhead: float,
    pue: float,
    non_it_kw: float,
    rng: random.Random,
    error: float = 0.005,
) -> float:
    """What a facility meter reads over a window: ``(chips x (1 + host overhead)) x PUE + non-IT
    load``, with a uniform meter error of +/- ``error`` (revenue-grade meters: 0.5-1%)."""
    true = chip_energy_j * (1 + host_overhead) * pue + non_it_kw * 1000 * seconds
    return round(true * (1 + rng.uniform(-error, error)), 1)
