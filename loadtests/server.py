"""Start a registry as a ``chipreg serve`` subprocess on a loopback port, with an admin token."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from registry.server import free_port

__all__ = [
    "RegistryProcess",
    "add_database_arguments",
    "chipreg_command",
    "chosen_database_url",
    "registry_env",
    "reset_postgres",
    "spawn_serve",
    "start_registry",
    "tree_cpu",
]

HOST = "127.0.0.1"


def chipreg_command() -> list[str]:
    """The chipreg CLI of this interpreter's environment."""
    return [sys.executable, "-m", "registry.cli.main"]


@dataclass
class RegistryProcess:
    process: subprocess.Popen[bytes]
    url: str
    admin_token: str
    database_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server and its live worker processes."""
        return tree_cpu(self.pid)

    def kill_hard(self) -> None:
        """SIGKILL the server and all its workers at once (its own process group)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc (psutil if installed)."""
    try:
        import psutil  # noqa: PLC0415 (optional dependency)

        t = psutil.Process(pid).cpu_times()
        return float(t.user + t.system)
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a live process and all its live descendants (uvicorn workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += _process_cpu(p)
        except (OSError, ValueError):
            continue
        todo.extend(children.get(p, []))
    return total


def add_database_arguments(p: argparse.ArgumentParser) -> None:
    """``--db sqlite|postgresql`` and ``--database-url`` (default: the test PostgreSQL URL)."""
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument(
        "--database-url",
        default=os.environ.get("CHIPREG_TEST_POSTGRES_URL"),
        help="PostgreSQL URL (its public schema is dropped!); default $CHIPREG_TEST_POSTGRES_URL",
    )


def chosen_database_url(p: argparse.ArgumentParser, args: argparse.Namespace, workdir: Path) -> str:
    """A fresh SQLite file in ``workdir``, or the PostgreSQL URL with its schema emptied."""
    if args.db == "sqlite":
        return f"sqlite:///{workdir / 'registry.sqlite3'}"
    if not args.database_url:
        p.error("--db postgresql needs --database-url or CHIPREG_TEST_POSTGRES_URL")
    reset_postgres(args.database_url)
    return str(args.database_url)


def reset_postgres(database_url: str) -> None:
    """Drop and recreate the ``public`` schema: the load test needs an empty log."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def registry_env(database_url: str, workdir: Path) -> dict[str, str]:
    """The environment of a load-test registry process."""
    return {
        **os.environ,
        "CHIPREG_DATABASE_URL": database_url,
        "CHIPREG_LOG_KEY_FILE": str(workdir / "log-key"),
        "CHIPREG_LOG_ORIGIN": "loadtest.chipreg.local/log",
        "CHIPREG_ENVIRONMENT": "development",
    }


def spawn_serve(
    env: dict[str, str], port: int, workers: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """``chipreg serve`` in its own process group (so a hard kill takes every worker)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603
            [
                *chipreg_command(),
                *("serve", "--host", HOST, "--port", str(port), "--workers", str(workers)),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_registry(
    database_url: str, workdir: Path, *, workers: int = 1, timeout: float = 30.0
) -> RegistryProcess:
    """Migrate, create an admin token, then serve; returns once /healthz answers."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = registry_env(database_url, workdir)
    # Fixed argv: this interpreter running the chipreg CLI.
    done = subprocess.run(  # noqa: S603
        [*chipreg_command(), "admin", "create-token", "--role", "admin", "--name", "loadtest"],
        env=env,
        capture_output=True,
        check=True,
    )
    admin_token = str(json.loads(done.stdout)["token"])
    port = free_port(HOST)
    log_path = workdir / "registry.log"
    log_path.unlink(missing_ok=True)
    process = spawn_serve(env, port, workers, log_path)
    url = f"http://{HOST}:{port}"
    server = RegistryProcess(process, url, admin_token, database_url, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            msg = f"registry exited with {process.returncode}: {log_path.read_text()[-2000:]}"
            raise RuntimeError(msg)
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            msg = f"registry did not answer on {url} within {timeout} s"
            raise RuntimeError(msg)
        time.sleep(0.1)
