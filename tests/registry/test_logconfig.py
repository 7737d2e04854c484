"""One logging configuration for every process: format, level, stderr, access log, no secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from registry.logconfig import configure_logging, redact
from registry.server import free_port

SECRETS = [
    (
        "postgresql+psycopg://chipreg:hunter2@db:5432/chipreg",
        "postgresql+psycopg://chipreg:***@db:5432/chipreg",
    ),
    ("Authorization: Bearer chipreg_abcdefghijklmnop", "Authorization: Bearer ***"),
    ("token chipreg_abcdefghijklmnopqrstuvwxyz-_0123", "token chipreg_***"),
    ("PRIVATE+KEY+chipreg.local/log+1234+AAAABBBB", "PRIVATE+KEY+***"),
    ("host=db password=hunter2 dbname=x", "host=db password=*** dbname=x"),
]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(("raw", "masked"), SECRETS)
def test_redact_masks_every_kind_of_secret(raw: str, masked: str) -> None:
    assert redact(raw) == masked


def test_redact_leaves_ordinary_text_alone() -> None:
    line = "GET /v1/reports/batch?limit=10 200; chip SIM-H100-0001 seq 4 url http://h:8080/x"
    assert redact(line) == line


@pytest.mark.usefixtures("restore_logging")
def test_text_lines_have_utc_time_level_and_logger_and_no_secret() -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    log = logging.getLogger("registry.test")
    log.debug("not shown at INFO")
    log.info("connected to %s", SECRETS[0][0])
    try:
        raise RuntimeError("with Bearer chipreg_abcdefghijklmnop inside")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert "not shown" not in text and "hunter2" not in text and "abcdefghijkl" not in text
    first, second = text.splitlines()[:2]
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO registry\.test: connected to "
        r"postgresql\+psycopg://chipreg:\*\*\*@db:5432/chipreg",
        first,
    )
    assert " ERROR registry.test: failed" in second
    assert "Traceback" in text and "RuntimeError: with Bearer ***" in text


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_parse_and_the_level_filters() -> None:
    out = io.StringIO()
    configure_logging("warning".upper(), "json", stream=out)
    logging.getLogger("agents.agent").info("dropped")
    logging.getLogger("agents.agent").warning("spool %s", "chipreg_abcdefghijklmnop")
    (line,) = out.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "WARNING" and doc["logger"] == "agents.agent"
    assert doc["message"] == "spool chipreg_***"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"])


@pytest.mark.usefixtures("restore_logging")
def test_configuring_twice_does_not_duplicate_lines() -> None:
    out = io.StringIO()
    configure_logging("INFO", "text", stream=out)
    configure_logging("INFO", "text", stream=out)
    logging.getLogger("uvicorn.access").info("once")
    assert out.getvalue().count("once") == 1


def test_serve_writes_json_access_and_startup_lines_to_stderr(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CHIPREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "log-key"),
        "CHIPREG_LOG_FORMAT": "json",
        "CHIPREG_LOG_LEVEL": "info",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli.main", "serve", "--workers", "1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/healthz",
                    headers={"Authorization": "Bearer chipreg_notarealtokenatall"},
                    timeout=2,
                )
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "registry did not start"
                time.sleep(0.2)
        assert response.status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    records = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert len(records) == len(stderr.splitlines()), stderr  # every stderr line is JSON
    access = [r for r in records if r["logger"] == "uvicorn.access"]
    assert len(access) == 1 and "GET /healthz HTTP/1.1" in access[0]["message"]
    assert any(r["logger"] == "uvicorn.error" and r["level"] == "INFO" for r in records)
    assert "notarealtoken" not in stderr + stdout
    assert stdout.startswith("chipreg registry on http://127.0.0.1:")
