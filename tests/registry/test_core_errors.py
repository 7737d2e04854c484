"""The protocol core's errors (attestation, verifier) are mapped to problems in one place.

Services, routes and the CLI used to translate them by hand (``except FormatError as e: raise
InvalidRequest(...)``); now they let them through, and :func:`registry.errors.from_core` gives
each cause its status. The table is checked directly, then a few requests that used to be
translated by hand are sent over real HTTP (SQLite and PostgreSQL) and through the real CLI.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from attestation.errors import (
    AttestationError,
    CertificateError,
    DuplicateKeyError,
    FormatError,
    GpuEvidenceFormatError,
    GpuNonceError,
    GpuWrongRootError,
    KeyFormatError,
    KeyMismatchError,
    ProofError,
    SignatureError,
)
from attestation.keys import PublicKey
from registry.errors import NotFound, as_registry_error, from_core, is_core_error, reported_as
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from verifier.errors import FactError, PolicyError


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FormatError("x"), (400, "malformed")),
        (DuplicateKeyError("x"), (400, "duplicate_json_key")),
        (KeyFormatError("x"), (422, "bad_public_key")),
        (SignatureError("x"), (422, "bad_signature")),
        (KeyMismatchError("x"), (422, "key_mismatch")),
        (CertificateError("x"), (422, "bad_certificate")),
        (ProofError("x"), (422, "bad_proof")),
        # Every GPU code is 422 (PROTOCOL 11.5), the malformed one included, though it is also
        # a FormatError (400 elsewhere).
        (GpuEvidenceFormatError("x"), (422, "gpu_evidence_malformed")),
        (GpuWrongRootError("x"), (422, "gpu_wrong_root")),
        (GpuNonceError("x"), (422, "gpu_nonce_mismatch")),
        (PolicyError("x"), (422, "bad_policy")),
        (FactError("x"), (422, "bad_fact")),
    ],
)
def test_each_core_cause_has_one_status_and_keeps_its_code(
    error: AttestationError | PolicyError | FactError, expected: tuple[int, str]
) -> None:
    assert is_core_error(error)
    mapped = from_core(error)
    assert (mapped.status, mapped.code, mapped.detail) == (*expected, "x")
    assert as_registry_error(error) is not None


def test_other_errors_are_not_the_core_s() -> None:
    assert not is_core_error(ValueError("x"))
    assert as_registry_error(ValueError("x")) is None
    found = NotFound("x")
    assert as_registry_error(found) is found


def test_reported_as_changes_the_code_not_the_status() -> None:
    with pytest.raises(FormatError) as malformed, reported_as("malformed_measurement"):
        raise FormatError("bad base64")
    assert (from_core(malformed.value).status, from_core(malformed.value).code) == (
        400,
        "malformed_measurement",
    )
    with pytest.raises(PolicyError) as policy, reported_as("unknown_policy"):
        raise PolicyError("no policy 'x'")
    assert (from_core(policy.value).status, from_core(policy.value).code) == (422, "unknown_policy")
    with pytest.raises(ValueError), reported_as("never"):  # not the core's: untouched
        raise ValueError("x")


def test_a_public_key_that_is_not_one_says_so_in_every_form() -> None:
    """``bad_public_key`` comes from the key itself (it used to be four hand translations)."""
    for make in (
        lambda: PublicKey.from_b64("not base64!"),
        lambda: PublicKey.from_b64(base64.b64encode(b"x" * 31).decode()),
        lambda: PublicKey(bytes(32)),  # the identity point: small order
        lambda: PublicKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    ):
        with pytest.raises(KeyFormatError) as caught:
            make()
        assert isinstance(caught.value, FormatError)  # callers catching format errors still do
        assert (from_core(caught.value).status, from_core(caught.value).code) == (
            422,
            "bad_public_key",
        )


# -- over HTTP: requests that used to be translated by hand ----------------------------------


def test_small_order_operator_key_is_bad_public_key(live_registry: LiveRegistry) -> None:
    """Raised in PublicKey's constructor, below the service, and answered by the one mapping."""
    body = {"name": "Abilene", "country": "US", "public_key": base64.b64encode(bytes(32)).decode()}
    refused(
        live_registry,
        live_registry.admin_token,
        "POST",
        "/v1/operators",
        (422, "bad_public_key"),
        json=body,
    )


def test_vendor_root_that_is_no_certificate_is_bad_certificate(
    live_registry: LiveRegistry,
) -> None:
    body = {"name": "NVIDIA", "root_certificate_pem": "-----BEGIN CERTIFICATE-----\nAA==\n"}
    refused(
        live_registry,
        live_registry.admin_token,
        "POST",
        "/v1/vendors",
        (422, "bad_certificate"),
        json=body,
    )


def test_verifier_error_is_a_problem_not_a_bug(
    live_registry: LiveRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A verifier error is answered by the last-resort middleware (the serving app never imports
    the verifier up front), as a 422 with its code, logged as no bug, on a usable connection."""
    with caplog.at_level(logging.ERROR, logger="registry.api.problems"):
        refused(
            live_registry,
            live_registry.admin_token,
            "POST",
            "/v1/verifier/runs",
            (422, "unknown_policy"),
            json={"policy": "no-such-policy"},
        )
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]


# -- the CLI's one error handler --------------------------------------------------------------


def _chipreg(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
        check=False,
    )


def test_cli_says_a_core_error_in_one_line_and_exits_2(tmp_path: Path) -> None:
    env = {
        "CHIPREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key"),
    }
    # A malformed time: verify no longer catches it, the CLI's handler does.
    run = _chipreg("verify", "--policy", "demo", "--as-of", "2026-01-01T00:00:00+00:00", env=env)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("chipreg verify: invalid time '2026-01-01T00:00:00+00:00'")
    assert "Traceback" not in run.stderr
    # The admin commands answer with the same code as the API.
    made = _chipreg(
        "admin",
        "create-operator",
        "--name",
        "Abilene",
        "--country",
        "US",
        "--public-key",
        "AAAA",
        env=env,
    )
    assert made.returncode == 2, made.stderr
    assert json.loads(made.stdout)["error"] == "bad_public_key"
