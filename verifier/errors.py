"""The error tree of the verifier, split by cause.

Every error carries a stable machine-readable ``code`` so the registry can map it to a problem
response in one place. Detection rules never raise for suspicious data: suspicion is a
:class:`~verifier.findings.Finding`, not an exception.
"""

from __future__ import annotations

__all__ = ["FactError", "PolicyError", "VerifierError"]


class VerifierError(Exception):
    """Root of every error raised by :mod:`verifier`."""

    code = "verifier_error"


class PolicyError(VerifierError):
    """A policy document that is missing a field, has a field of the wrong type, or is unknown."""

    code = "bad_policy"


class FactError(VerifierError):
    """An input fact the rules cannot reason about: naive datetime, empty window, negative bytes."""

    code = "bad_fact"
