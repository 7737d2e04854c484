"""Shared fixtures for the protocol-core tests: the public vector set and deterministic keys.

The vectors are read in place from the shared checkout (never copied into this repo). A
missing vector directory is a collection error, not a skip: silently running none of the
interop checks would look exactly like passing them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from attestation.certs import create_vendor_root, issue_chip_certificate
from attestation.keys import PrivateKey

# /work/main/tests/attestation/conftest.py -> /work/shared/vectors
VECTORS_DIR = Path(__file__).parents[3] / "shared" / "vectors"

MERKLE_TESTDATA = VECTORS_DIR / "transparency-dev-merkle" / "testdata"
TESSERA_LOG = VECTORS_DIR / "tessera-testlog" / "testdata" / "log"
TESSERA_SIZES = range(16)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T_END = datetime(2036, 1, 1, tzinfo=UTC)


def require(path: Path) -> Path:
    """``path``, or a loud FileNotFoundError naming it."""
    if not path.exists():
        raise FileNotFoundError(f"public test vector missing: {path}")
    return path


def load_json(path: Path) -> Any:
    """Parse a JSON vector file, failing loudly if it is absent."""
    return json.loads(require(path).read_text(encoding="utf-8"))


def _json_cases(subdir: str, expected: int) -> list[Path]:
    files = sorted(require(MERKLE_TESTDATA / subdir).rglob("*.json"))
    # Guards against a partial checkout turning into a quietly smaller test run.
    if len(files) != expected:
        raise RuntimeError(f"{subdir}: found {len(files)} vector files, expected {expected}")
    return files


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize vector-driven tests by the files present in the shared vector set."""
    for name, subdir in (("inclusion_case", "inclusion"), ("consistency_case", "consistency")):
        if name in metafunc.fixturenames:
            files = _json_cases(subdir, expected=98)
            ids = [str(f.relative_to(MERKLE_TESTDATA / subdir)) for f in files]
            metafunc.parametrize(name, files, ids=ids)
    if "tessera_size" in metafunc.fixturenames:
        require(TESSERA_LOG)
        metafunc.parametrize("tessera_size", list(TESSERA_SIZES))


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    """The root of the shared public vector set."""
    return require(VECTORS_DIR)


@pytest.fixture(scope="session")
def signed_note_vectors(vectors_dir: Path) -> dict[str, dict[str, Any]]:
    """signed-note vectors keyed by id."""
    data = load_json(vectors_dir / "signed-note" / "signed_note_vectors.json")
    return {v["id"]: v for v in data["vectors"]}


@pytest.fixture(scope="session")
def chip_key() -> PrivateKey:
    """A fixed chip key (deterministic so failures reproduce)."""
    return PrivateKey.from_seed(bytes(range(32)))


@pytest.fixture(scope="session")
def other_key() -> PrivateKey:
    """An unrelated key."""
    return PrivateKey.from_seed(bytes(range(1, 33)))


@pytest.fixture(scope="session")
def vendor_key() -> PrivateKey:
    """The vendor root's signing key."""
    return PrivateKey.from_seed(b"\x42" * 32)


@pytest.fixture(scope="session")
def root_pem(vendor_key: PrivateKey) -> bytes:
    """A vendor root valid 2026-2036."""
    return create_vendor_root("Nvidia", vendor_key, not_before=T0, not_after=T_END)


@pytest.fixture(scope="session")
def chip_cert_pem(root_pem: bytes, vendor_key: PrivateKey, chip_key: PrivateKey) -> bytes:
    """An endorsement for ``chip_key`` as chip NV-H100-0001, valid 2026-2031."""
    return issue_chip_certificate(
        root_pem=root_pem,
        root_key=vendor_key,
        chip_id="NV-H100-0001",
        model="H100-SXM5-80GB",
        chip_key=chip_key.public_key,
        not_before=T0,
        not_after=datetime(2031, 1, 1, tzinfo=UTC),
    )
