"""deploy/systemd: every unit verifies with systemd-analyze, is hardened, and runs a real command.

The ExecStart lines are parsed with chipreg's own argument parser, so a renamed option or
subcommand breaks this test rather than a deployment.
"""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from registry.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
    "RestrictNamespaces": "yes",
    "SystemCallFilter": "@system-service",
    "UMask": "0077",
}


def _service(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text().replace("\\\n", " "))
    return parser["Service"]


def check_unit(unit: Path) -> None:
    """systemd-analyze verify finds nothing but the program not being installed here."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed")
    run = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if line.strip()
        and "is not executable: No such file or directory" not in line
        and "Unit sysinit.target not found" not in line
    ]
    assert problems == [], problems


def test_there_is_a_unit_for_every_process() -> None:
    assert {u.stem for u in UNITS} == {
        "chipreg-registry",
        "chipreg-verifier",
        "chipreg-witness",
        "chipreg-agent",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_unit_verifies_and_is_hardened(unit: Path) -> None:
    check_unit(unit)
    service = _service(unit)
    for key, value in HARDENING.items():
        assert service.get(key) == value, (unit.name, key)
    assert service["User"] != "root"
    if unit.stem != "chipreg-agent":  # NVML needs /dev/nvidia*
        assert service.get("PrivateDevices") == "yes"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.stem)
def test_execstart_is_a_valid_chipreg_command(unit: Path) -> None:
    argv = shlex.split(_service(unit)["ExecStart"])
    program, args = argv[0], argv[1:]
    if program == "/usr/bin/chipreg-agent":
        args = ["agent", *args]
    else:
        assert program == "/opt/chipreg/venv/bin/chipreg"
    # Environment references stand for values from the EnvironmentFile.
    args = [a for a in args if a != "$CHIPREG_AGENT_OPTIONS"]
    args = ["x" if a.startswith("${") else a for a in args]
    parsed = build_parser(args).parse_args(args)
    assert parsed.func is not None
