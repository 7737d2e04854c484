"""The chipreg-agent Debian package, built by scripts/build-agent-deb.sh with dpkg-deb."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.test_units import check_unit

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or not Path("/usr/bin/python3").exists(),
    reason="needs dpkg-deb and the Debian python3",
)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    build = subprocess.run(
        [str(ROOT / "scripts" / "build-agent-deb.sh"), str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    (found,) = out.glob("chipreg-agent_*.deb")
    assert build.stdout.strip().endswith(found.name)
    return found


@pytest.fixture(scope="module")
def unpacked(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    subprocess.run(["dpkg-deb", "-e", str(deb), str(root / "DEBIAN")], check=True)
    return root


def _field(deb: Path, name: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "-f", str(deb), name], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_control_fields(deb: Path) -> None:
    assert _field(deb, "Package") == "chipreg-agent"
    assert (
        _field(deb, "Architecture")
        == subprocess.run(
            ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    depends = _field(deb, "Depends")
    assert "python3 (>= 3." in depends and "adduser" in depends
    assert deb.name == f"chipreg-agent_{_field(deb, 'Version')}_{_field(deb, 'Architecture')}.deb"


def test_contents_app_unit_config_state_and_modes(deb: Path, unpacked: Path) -> None:
    listing = subprocess.run(
        ["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    modes = {line.split()[-1].rstrip("/"): line.split()[0] for line in listing.splitlines()}
    assert modes["./usr/bin/chipreg-agent"] == "-rwxr-xr-x"
    assert modes["./etc/chipreg/agent.env"] == "-rw-r-----"
    assert modes["./var/lib/chipreg-agent"] == "drwx------"
    assert "./lib/systemd/system/chipreg-agent.service" in modes
    assert "./usr/share/doc/chipreg-agent/copyright" in modes
    # Root-owned files; the agent's user is created by postinst, not shipped.
    assert all(" root/root " in line for line in listing.splitlines())
    lib = unpacked / "usr/lib/chipreg-agent"
    for needed in ("agents/agent.py", "attestation/report.py", "registry/cli/agent.py", "nacl"):
        assert (lib / needed).exists(), needed
    # Only what the agent imports: no web server, no database, no verifier, no simulator.
    for absent in ("fastapi", "sqlalchemy", "uvicorn", "verifier", "simulator", "registry/api"):
        assert not (lib / absent).exists(), absent
    assert (unpacked / "DEBIAN/conffiles").read_text().split() == ["/etc/chipreg/agent.env"]
    assert (unpacked / "etc/chipreg/agent.env").read_text() == (
        ROOT / "deploy/agent.env.example"
    ).read_text()


def test_the_unit_is_the_repositorys_and_verifies(unpacked: Path) -> None:
    unit = unpacked / "lib/systemd/system/chipreg-agent.service"
    assert unit.read_text() == (ROOT / "deploy/systemd/chipreg-agent.service").read_text()
    check_unit(unit)
    assert "ExecStart=/usr/bin/chipreg-agent run " in unit.read_text()


def test_maintainer_scripts_create_the_user_and_keep_the_spool(unpacked: Path) -> None:
    postinst = (unpacked / "DEBIAN/postinst").read_text()
    assert "adduser --system --group --home /var/lib/chipreg-agent" in postinst
    assert "chown chipreg-agent:chipreg-agent /var/lib/chipreg-agent" in postinst
    assert "chown root:chipreg-agent /etc/chipreg/agent.env" in postinst
    postrm = (unpacked / "DEBIAN/postrm").read_text()
    assert 'if [ "$1" = "purge" ]' in postrm  # the spool survives a plain remove
    for script in ("postinst", "prerm", "postrm"):
        path = unpacked / "DEBIAN" / script
        assert os.access(path, os.X_OK)
        subprocess.run(["sh", "-n", str(path)], check=True)


def test_the_packaged_agent_runs_from_its_own_library(unpacked: Path, tmp_path: Path) -> None:
    wrapper = (unpacked / "usr/bin/chipreg-agent").read_text()
    assert "exec /usr/bin/python3 -m registry.cli.main agent" in wrapper
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(unpacked / "usr/lib/chipreg-agent")}
    # Run outside the source tree (python -m puts the working directory first on sys.path).
    version = subprocess.run(
        ["/usr/bin/python3", "-m", "registry.cli.main", "agent", "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("chipreg ")
    dry = subprocess.run(
        [
            "/usr/bin/python3",
            "-m",
            "registry.cli.main",
            "agent",
            "dry-run",
            "--backend",
            "simulated",
            "--simulated-chips",
            "1",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert '"chip_id": "SIM-H100-0000"' in dry.stdout


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed")
def test_lintian_reports_no_errors(deb: Path) -> None:
    run = subprocess.run(
        ["lintian", "--no-tag-display-limit", str(deb)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    errors = [line for line in run.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], run.stdout
