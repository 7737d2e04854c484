"""Prometheus metrics of the host agent, named and scaled like NVIDIA dcgm-exporter's.

Operators already graph ``DCGM_FI_DEV_GPU_UTIL`` (%), ``DCGM_FI_DEV_POWER_USAGE`` (W) and
``DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`` (mJ) with labels ``gpu``, ``UUID``, ``modelName`` and
``Hostname``; the agent exports the same names, units and labels so an existing dashboard shows
its chips next to dcgm-exporter's. The values are what the chips *signed* for the last closed
window (utilization and power are window averages; energy is the running total of the signed
windows since the agent started, where DCGM counts since boot), not fresh samples. ``UUID`` is
the registry's chip id.

chipreg's own metrics (``chipreg_agent_*``) count reports signed, acknowledged, rejected and
still spooled, and when the registry last acknowledged everything.

All metrics live in the agent's own registry (not prometheus_client's global one), so several
agents in one process (tests, the simulator) do not collide.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from attestation.report import UsageReport

__all__ = ["AgentMetrics", "ChipWindow", "MetricsServer"]

_DCGM_LABELS = ("gpu", "UUID", "modelName", "Hostname")


@dataclass(frozen=True)
class ChipWindow:
    """One chip's signed report of a window, with what the metrics label it by."""

    index: int
    model: str
    report: UsageReport


@dataclass
class MetricsServer:
    """The running HTTP endpoint; :meth:`close` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class AgentMetrics:
    """The agent's gauges and counters in their own :class:`CollectorRegistry`."""

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname or socket.gethostname()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # dcgm-exporter declares these as gauges (energy as a counter without the _total
        # suffix, which prometheus_client's Counter would add): gauges keep the exact names.
        self.gpu_util = Gauge(
            "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).", _DCGM_LABELS, registry=r
        )
        self.power = Gauge(
            "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).", _DCGM_LABELS, registry=r
        )
        self.energy = Gauge(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            "Total energy consumption since the agent started (in mJ).",
            _DCGM_LABELS,
            registry=r,
        )
        self.signed = Counter(
            "chipreg_agent_reports_signed", "Usage reports signed and spooled.", registry=r
        )
        self.accepted = Counter(
            "chipreg_agent_reports_accepted",
            "Reports the registry acknowledged (accepted, or already held).",
            registry=r,
        )
        self.rejected = Counter(
            "chipreg_agent_reports_rejected",
            "Reports the registry refused for good (moved to rejected/).",
            registry=r,
        )
        self.spooled = Gauge(
            "chipreg_agent_reports_spooled",
            "Reports in the spool, not yet acknowledged.",
            registry=r,
        )
        self.last_success = Gauge(
            "chipreg_agent_last_success_timestamp_seconds",
            "Unix time of the last flush that left nothing unsent.",
            registry=r,
        )
        self._energy_mj: dict[str, float] = {}

    def observe_chips(self, chips: Iterable[ChipWindow]) -> None:
        """Set the DCGM-named gauges from the reports just signed for a window."""
        for chip in chips:
            report = chip.report
            labels = (str(chip.index), report.chip_id, chip.model, self.hostname)
            seconds = (report.window_end - report.window_start).total_seconds()
            self.gpu_util.labels(*labels).set(round(report.utilization * 100, 3))
            self.power.labels(*labels).set(report.energy_j / seconds if seconds > 0 else 0.0)
            total = self._energy_mj.get(report.chip_id, 0.0) + report.energy_j * 1000
            self._energy_mj[report.chip_id] = total
            self.energy.labels(*labels).set(total)

    def observe_flush(self, *, acknowledged: int, rejected: int, spooled: int, ok: bool) -> None:
        """Count what a flush did; ``ok``: nothing was left unsent for a transport reason."""
        self.accepted.inc(acknowledged)
        self.rejected.inc(rejected)
        self.spooled.set(spooled)
        if ok:
            self.last_success.set_to_current_time()

    def serve(self, port: int, address: str = "127.0.0.1") -> MetricsServer:
        """Serve ``/metrics`` on ``address:port`` (0: a free port) from a daemon thread."""
        server, thread = start_http_server(port, addr=address, registry=self.registry)
        return MetricsServer(server, thread)
