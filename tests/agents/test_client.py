"""RegistryClient error handling against a real HTTP server on 127.0.0.1 (http.server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from agents.agent import Agent
from agents.backends.simulated import SimulatedAccelerator, SimulatedBackend, Workload
from agents.chain import ChainState
from agents.client import RegistryClient
from agents.errors import Overloaded, RegistryRejected, TransportError, Unavailable
from agents.spool import Spool
from attestation.keys import PrivateKey


class _Scripted(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted (status, headers, body)."""

    script: ClassVar[list[tuple[int, dict[str, str], bytes]]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(self.rfile.read(length))
        status, headers, body = type(self).script.pop(0)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "bodies": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def _problem(status: int, code: str, detail: str) -> bytes:
    return json.dumps({"status": status, "code": code, "detail": detail, "title": code}).encode()


PROBLEM = {"Content-Type": "application/problem+json"}


def test_body_is_concatenation_of_exact_envelope_bytes(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    answer = {
        "accepted": 1,
        "rejected": 1,
        "results": [
            {
                "index": 0,
                "status": "accepted",
                "chip_id": "A",
                "seq": 1,
                "digest": "ab" * 32,
                "log_index": 41,
            },
            {
                "index": 1,
                "status": "rejected",
                "http_status": 409,
                "code": "replayed_report",
                "detail": "seen",
            },
        ],
    }
    handler.script.append((200, {"Content-Type": "application/json"}, json.dumps(answer).encode()))
    envs = [b'{"b": 1,  "a":2}', b'{"z":[]}']
    with RegistryClient(url, "tok") as client:
        result = client.post_batch(envs)
    assert handler.bodies == [b'{"reports":[{"b": 1,  "a":2},{"z":[]}]}']
    assert (result.accepted, result.rejected) == (1, 1)
    assert result.results[0].log_index == 41
    assert result.results[0].acknowledged
    assert result.results[1].acknowledged  # replayed_report == already stored
    assert result.results[1].http_status == 409


def test_429_raises_overloaded_with_retry_after(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    handler.script.append((429, {**PROBLEM, "Retry-After": "7"}, _problem(429, "overloaded", "x")))
    with RegistryClient(url, "tok") as client, pytest.raises(Overloaded) as info:
        client.post_batch([b"{}"])
    assert info.value.retry_after == 7.0


def test_503_raises_unavailable_with_retry_after(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    body = _problem(503, "database_unavailable", "retry later")
    handler.script.append((503, {**PROBLEM, "Retry-After": "5"}, body))
    with RegistryClient(url, "tok") as client, pytest.raises(Unavailable) as info:
        client.post_batch([b"{}"])
    assert info.value.retry_after == 5.0
    assert "database_unavailable" in str(info.value)


def test_500_raises_transport_error(server: tuple[str, type[_Scripted]]) -> None:
    url, handler = server
    handler.script.append((500, PROBLEM, _problem(500, "internal", "boom")))
    with RegistryClient(url, "tok") as client, pytest.raises(TransportError) as info:
        client.post_batch([b"{}"])
    assert not isinstance(info.value, Overloaded)


def test_400_raises_registry_rejected_with_problem_fields(
    server: tuple[str, type[_Scripted]],
) -> None:
    url, handler = server
    handler.script.append((413, PROBLEM, _problem(413, "batch_too_large", "at most 1000")))
    with RegistryClient(url, "tok") as client, pytest.raises(RegistryRejected) as info:
        client.post_batch([b"{}"])
    assert (info.value.status, info.value.code, info.value.detail) == (
        413,
        "batch_too_large",
        "at most 1000",
    )


def test_unreachable_registry_is_transport_error() -> None:
    with (
        RegistryClient("http://127.0.0.1:9", "tok", timeout=2) as client,
        pytest.raises(TransportError),
    ):
        client.post_batch([b"{}"])


def test_flush_keeps_reports_on_overload_and_sorts_verdicts(
    server: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = server
    accs = [
        SimulatedAccelerator(
            cid, "H100-SXM5-80GB", PrivateKey.from_seed(bytes([i + 1]) * 32), Workload(0.5, 300.0)
        )
        for i, cid in enumerate(["A", "B", "C"])
    ]
    spool = Spool(tmp_path / "spool")
    client = RegistryClient(url, "tok")
    agent = Agent(
        SimulatedBackend(accs), spool, ChainState.load(tmp_path / "c.json"), client, batch_size=2
    )
    t0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
    agent.collect(t0, t0 + timedelta(minutes=15))

    handler.script.append((429, {**PROBLEM, "Retry-After": "1"}, _problem(429, "overloaded", "")))
    stats = agent.flush()
    assert isinstance(stats.interrupted_by, Overloaded)
    assert len(spool.pending()) == 3  # nothing lost

    ok = {
        "index": 0,
        "status": "accepted",
        "chip_id": "A",
        "seq": 1,
        "digest": "ab" * 32,
        "log_index": 0,
    }
    bad = {
        "index": 1,
        "status": "rejected",
        "http_status": 409,
        "code": "sequence_gap",
        "detail": "gap",
    }
    handler.script.append(
        (200, {}, json.dumps({"accepted": 1, "rejected": 1, "results": [ok, bad]}).encode())
    )
    handler.script.append((503, PROBLEM, _problem(503, "unavailable", "")))
    stats = agent.flush()
    assert (stats.sent, stats.acknowledged, stats.rejected) == (2, 1, 1)
    assert isinstance(stats.interrupted_by, TransportError)
    assert [i.chip_id for i in spool.pending()] == ["C"]
    assert [i.chip_id for i in spool.rejected()] == ["B"]
    client.close()


def test_agent_keeps_reports_and_backs_off_per_retry_after_on_503(
    server: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = server
    acc = SimulatedAccelerator(
        "A", "H100-SXM5-80GB", PrivateKey.from_seed(b"\x07" * 32), Workload(0.5, 300.0)
    )
    spool = Spool(tmp_path / "spool")
    with RegistryClient(url, "tok") as client:
        agent = Agent(SimulatedBackend([acc]), spool, ChainState.load(tmp_path / "c.json"), client)
        t0 = datetime(2026, 11, 22, 12, tzinfo=UTC)
        agent.collect(t0, t0 + timedelta(minutes=15))
        body = _problem(503, "database_unavailable", "retry later")
        handler.script.append((503, {**PROBLEM, "Retry-After": "17"}, body))
        delay, _ = agent._flush_with_backoff(0.0, 300.0)
        # The registry's Retry-After, not the agent's own exponential guess (1 s first).
        assert delay == 17.0
        assert len(spool.pending()) == 1  # kept for the retry
        # Capped by the agent's own maximum backoff.
        handler.script.append((503, {**PROBLEM, "Retry-After": "86400"}, body))
        assert agent._flush_with_backoff(0.0, 300.0)[0] == 300.0
        assert len(spool.pending()) == 1
