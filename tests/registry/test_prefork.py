"""``chipreg serve --workers 2``: forked workers, a dead one replaced, SIGTERM stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from registry.server import free_port


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The parent pid is the 4th field, after "pid (comm) state".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _wait(condition, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_forked_workers_are_replaced_and_stopped(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CHIPREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli.main", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait(lambda: _healthy(url), "registry did not start")
        _wait(lambda: len(_children(proc.pid)) == 2, "two workers")
        first = _children(proc.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_children(proc.pid) - first) == 1, "a replacement worker")
        assert victim not in _children(proc.pid)
        _wait(lambda: _healthy(url), "replacement serves")
        metrics = httpx.get(f"{url}/metrics", timeout=5)
        assert metrics.status_code == 200
    finally:
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    assert f"worker {victim} ended (-9)" in stderr
    assert stderr.count("Started server process") == 3
    assert "Traceback" not in stderr
