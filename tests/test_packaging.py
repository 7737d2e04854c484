"""The wheel: built from the tree, complete, licensed, and installable clean in a fresh venv."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    # The licence as an SPDX string: setuptools warned three times per build about the table.
    assert "deprecated" not in build.stderr.lower(), build.stderr
    (found,) = out.glob("chipreg-*.whl")
    return found


def test_the_wheel_holds_the_packages_their_data_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "registry/cli/main.py",
        "registry/migrations/env.py",
        "registry/migrations/versions/0001_initial_schema.py",
        "verifier/policies/default.toml",
        "verifier/py.typed",
        "attestation/py.typed",
        "agents/agent.py",
        "simulator/world.py",
        "audit/core.py",
    ):
        assert required in names, required
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    assert not [n for n in names if n.startswith(("tests/", "loadtests/", "deploy/"))]
    metadata = Parser().parsestr(zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode())
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("Classifier")
    assert metadata.get_all("Project-URL")
    entry_points = zipfile.ZipFile(wheel).read(f"{dist_info}/entry_points.txt").decode()
    assert "chipreg = registry.cli.main:main" in entry_points


def test_every_package_data_pattern_is_a_glob_not_a_missing_path() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for package, patterns in config["tool"]["setuptools"]["package-data"].items():
        for pattern in patterns:
            literal = "*" not in pattern
            # A literal path must exist; a glob may match nothing (optional web assets).
            assert not literal or (ROOT / package / pattern).exists(), (package, pattern)
    licence = (ROOT / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0, January 2004" in licence


def test_the_wheel_installs_clean_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    install = subprocess.run(
        [*pip, "install", "--quiet", "--no-compile", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    version = subprocess.run(
        [str(venv / "bin" / "chipreg"), "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("chipreg ")
