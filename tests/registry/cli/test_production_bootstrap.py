"""Production from nothing, with only the documented commands (README "Running it for real"),
each run as a real ``chipreg`` subprocess against a fresh PostgreSQL database:

``admin init`` -> a vendor root, 1,000 chips endorsed and bulk-enrolled -> an operator key, a
facility, installations and a cluster declared through the CLI -> ``serve`` -> an agent with a
wrong token (fails fast, one clear line), then with the right one -> reports accepted ->
``verify`` finds exactly the installed chips that never reported.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from attestation.timefmt import format_time
from tests.conftest import POSTGRES_ENV

pytestmark = pytest.mark.postgres

CHIPS = 1000  # endorsed and enrolled
INSTALLED = 60  # of those, installed at the facility
REPORTING = 50  # of those, on the host whose agent runs: chips 50..59 stay silent


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database created for this test on the test server, dropped afterwards."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{POSTGRES_ENV} not set (run with scripts/with-postgres.sh)")
    name = f"chipreg_bootstrap_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Shell:
    """Runs ``chipreg`` as an operator would: a subprocess with its own environment."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = {**os.environ, **env}

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "registry.cli.main", *args]

    def run(
        self, *args: str, env: dict[str, str] | None = None, ok: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if ok:
            assert done.returncode == 0, f"chipreg {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, env: dict[str, str] | None = None) -> dict:
        doc: dict = json.loads(self.run(*args, env=env).stdout)
        return doc

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args),
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def stop(process: subprocess.Popen[str]) -> str:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def test_production_bootstrap_with_the_documented_commands(
    fresh_database: str, tmp_path: Path
) -> None:
    sh = Shell(
        tmp_path,
        {
            "CHIPREG_ENVIRONMENT": "production",
            "CHIPREG_DATABASE_URL": fresh_database,
            "CHIPREG_LOG_KEY_FILE": str(tmp_path / "etc" / "log-key"),
            "CHIPREG_LOG_ORIGIN": "registry.test/log",
            "CHIPREG_CHECKPOINT_INTERVAL_S": "0.5",
        },
    )
    # -- the deployer: one command creates the key, the schema and the first admin token ----
    init = sh.json("admin", "init")
    admin = {"CHIPREG_ADMIN_TOKEN": init["admin_token"]}
    assert init["log_verifier_key"].startswith("registry.test/log+")
    again = sh.run("admin", "init", ok=False)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert init["admin_token"] not in again.stdout + again.stderr

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = sh.start("serve", "--port", str(port), "--workers", "1")
    try:

        def up() -> bool:
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until("the registry to serve", up, 60)
        with httpx.Client(base_url=url, timeout=10) as http:
            served_key = http.get("/v1/log/key").json()["verifier_key"]
        assert served_key == init["log_verifier_key"]
        remote = {"CHIPREG_REGISTRY_URL": url}

        # -- the manufacturer: a root, 1,000 endorsements, one bulk enrollment -------------
        sh.json("vendor", "init-root", "--name", "NVIDIA")
        vendor_id = sh.json(
            "admin", "create-vendor", "--name", "NVIDIA", "--root-cert", "vendor-root.pem"
        )["id"]
        vendor_token = sh.json(
            "admin", "tokens", "create", "--name", "nvidia", "--role", "vendor",
            "--vendor-id", str(vendor_id),
        )["token"]  # fmt: skip
        # The chips' public keys as the hosts report them (the factory's key list).
        discovered = sh.run(
            "agent", "discover", "--backend", "simulated", "--simulated-chips", str(CHIPS),
            "--state-dir", "agent",
        ).stdout  # fmt: skip
        (tmp_path / "chips.jsonl").write_text(discovered)
        sh.run(
            "vendor", "endorse", "--root-key", "vendor-root.key", "--root-cert",
            "vendor-root.pem", "--in", "chips.jsonl", "--out", "endorsed.jsonl",
        )  # fmt: skip
        enrolled = sh.run(
            "vendor", "enroll", "--vendor-id", str(vendor_id), "--in", "endorsed.jsonl",
            "--peak-tflops-bf16", "989", "--tdp-watts", "700",
            env={**remote, "CHIPREG_VENDOR_TOKEN": vendor_token},
        )  # fmt: skip
        assert json.loads(enrolled.stdout)["enrolled"] == CHIPS
        assert f"{CHIPS} chips enrolled" in enrolled.stderr

        # -- the operator: key, facility, installations, a cluster -----------------------
        public_key = sh.json("operator", "keygen")["public_key"]
        operator_id = sh.json(
            "admin", "create-operator", "--name", "Acme", "--country", "FI",
            "--public-key", public_key,
        )["id"]  # fmt: skip
        operator_token = sh.json(
            "admin", "tokens", "create", "--name", "acme", "--role", "operator",
            "--operator-id", str(operator_id),
        )["token"]  # fmt: skip
        operator = {**remote, "CHIPREG_OPERATOR_TOKEN": operator_token}
        facility_id = sh.json(
            "operator", "declare", "facility", "--operator-id", str(operator_id),
            "--name", "Kajaani-1", "--country", "FI", "--latitude", "64.22",
            "--longitude", "27.73", "--declared-power-kw", "5000", env=operator,
        )["id"]  # fmt: skip
        lines = discovered.splitlines()
        (tmp_path / "installed.jsonl").write_text("\n".join(lines[:INSTALLED]) + "\n")
        now = datetime.now(UTC).replace(microsecond=0)
        installed = sh.run(
            "operator", "declare", "installation", "--facility-id", str(facility_id),
            "--chips-file", "installed.jsonl",
            "--installed-at", format_time(now - timedelta(hours=2)), env=operator,
        )  # fmt: skip
        assert len(installed.stdout.splitlines()) == INSTALLED
        cluster_chips = [json.loads(line)["chip_id"] for line in lines[:8]]
        cluster = sh.json(
            "operator", "declare", "cluster", "--facility-id", str(facility_id),
            "--name", "train-1", *[a for c in cluster_chips for a in ("--chip-id", c)],
            "--start", format_time(now - timedelta(hours=1)),
            "--end", format_time(now + timedelta(days=1)), env=operator,
        )  # fmt: skip
        assert cluster["chip_ids"] == sorted(cluster_chips)

        # -- the agent: a wrong token fails at once with one line; the right one reports ---
        agent_args = (
            "agent", "run", "--backend", "simulated", "--simulated-chips", str(REPORTING),
            "--state-dir", "agent", "--registry", url, "--facility-id", str(facility_id),
            "--window-minutes", "1",
        )  # fmt: skip
        wrong = sh.run(*agent_args, env={"CHIPREG_AGENT_TOKEN": "chipreg_wrong"}, ok=False)
        assert wrong.returncode == 1
        assert wrong.stderr.strip().count("\n") == 0, wrong.stderr
        assert "refused the token in $CHIPREG_AGENT_TOKEN: 401 invalid_token" in wrong.stderr
        agent = sh.start(*agent_args, env={"CHIPREG_AGENT_TOKEN": operator_token})
        try:
            inspect = {"Authorization": f"Bearer {init['admin_token']}"}

            def reported() -> bool:
                assert agent.poll() is None, agent.stdout.read() if agent.stdout else ""
                doc = httpx.get(f"{url}/v1/chips/SIM-H100-0000", headers=inspect).json()
                return int(doc["chip"]["last_seq"]) >= 1

            wait_until("the agent's first window to be accepted", reported, 150)
        finally:
            out = stop(agent)
        assert agent.returncode == 0, out

        # -- the verifier: exactly the installed chips that never reported are silent -----
        verified = sh.run("verify", "--policy", "demo", "--json", env=admin)
        findings = [json.loads(line) for line in verified.stdout.splitlines()]
        silent = {
            (f["subject_type"], f["subject_id"]) for f in findings if f["kind"] == "chip_silent"
        }
        assert silent == {("chip", f"SIM-H100-{i:04d}") for i in range(REPORTING, INSTALLED)}
        # The CLI prints the API's public form of a finding, field for field.
        served = httpx.get(f"{url}/v1/findings", headers=inspect, params={"limit": 1000}).json()
        by_id = {f["id"]: f for f in served["findings"]}
        assert findings and all(by_id[f["id"]] == f for f in findings)
    finally:
        stop(server)
