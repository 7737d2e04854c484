"""Accelerator backends: where the agent gets chip identities, telemetry and signatures."""

from agents.backends.base import (
    Accelerator,
    AcceleratorBackend,
    SupportsSampling,
    WindowTelemetry,
)

__all__ = ["Accelerator", "AcceleratorBackend", "SupportsSampling", "WindowTelemetry"]
