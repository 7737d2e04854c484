"""``chipreg query`` against a live registry over real HTTP: each resource in each output
format, exit codes 0 / 1 (not found) / 2 (usage, unreachable) / 77 (token refused), tokens from
a file, the environment and a profile, and a signed export that ``chipreg audit`` accepts."""

from __future__ import annotations

import csv
import io
import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from attestation.note import NoteVerifier
from registry.auth import Role
from registry.cli.main import main
from registry.services.log import TransparencyLog
from tests.conftest import LiveRegistry
from tests.registry.factories import T0, WINDOW, World, add_operator, make_world, ok
from tests.registry.logtools import wait_checkpoint

Run = Callable[..., tuple[int, str, str]]
AS_OF = T0 + 4 * WINDOW + (WINDOW * 2) / 3


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    a, b = w.enroll("NV-A"), w.enroll("NV-B")
    assert ok(w.post([a.report(), b.report()]))["accepted"] == 2
    for _ in range(3):
        assert ok(w.post([a.report()]))["accepted"] == 1
    with live_registry.client(live_registry.token(Role.INSPECTOR)) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()}))
    return w


def query(capsys: pytest.CaptureFixture[str], registry: str, *args: str) -> tuple[int, str, str]:
    code = main(["query", "--registry", registry, *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def as_inspector(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Run:
    monkeypatch.setenv("CHIPREG_TOKEN", world.registry.token(Role.INSPECTOR))

    def run(*args: str) -> tuple[int, str, str]:
        return query(capsys, world.registry.url, *args)

    return run


def test_resources_and_formats(world: World, as_inspector: Run) -> None:
    code, out, _ = as_inspector("-o", "json", "chips", "--country", "US")
    assert code == 0 and json.loads(out)["total"] == 2
    code, out, _ = as_inspector("-o", "csv", "chips")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["chip_id"] for r in rows] == ["NV-A", "NV-B"]
    assert rows[0]["operator_name"] == "Abilene Compute"
    code, out, _ = as_inspector("chips")
    assert code == 0 and "NV-A" in out and "(2 of 2)" in out
    code, out, _ = as_inspector("chip", "NV-A")
    assert code == 0 and "custody:" in out and "Abilene Compute" in out
    code, out, _ = as_inspector("-o", "json", "facilities")
    assert [f["operator_name"] for f in json.loads(out)] == ["Abilene Compute"]
    code, out, _ = as_inspector("facility", str(world.facility_id))
    assert code == 0 and "chip_count" in out
    code, out, _ = as_inspector("-o", "json", "findings", "--kind", "chip_silent")
    [finding] = json.loads(out)["findings"]
    assert finding["subject_id"] == "NV-B"
    code, out, _ = as_inspector("-o", "csv", "finding", str(finding["id"]))
    assert code == 0 and "evidence," in out
    code, out, _ = as_inspector("findings")
    assert code == 0 and "silent since" in out


def test_exit_codes(
    world: World,
    as_inspector: Run,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert as_inspector("chip", "NOPE")[0] == 1
    assert as_inspector("facility", "999")[0] == 1
    assert as_inspector("finding", "999")[0] == 1
    # A wrong token, and a right token reading what it may not: 77.
    monkeypatch.setenv("CHIPREG_TOKEN", "chipreg_wrong")
    code, _, err = as_inspector("chips")
    assert code == 77 and "invalid_token" in err
    _, other_token, _ = add_operator(world.registry, "Toronto Compute", country="CA")
    monkeypatch.setenv("CHIPREG_TOKEN", other_token)
    code, _, err = as_inspector("chip", "NV-A")
    assert code == 77 and "not_your_chip" in err
    # Nothing listens on this port: 2.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = query(capsys, f"http://127.0.0.1:{port}", "chips")
    assert code == 2 and "cannot reach" in err
    monkeypatch.delenv("CHIPREG_TOKEN")
    code, _, err = as_inspector("chips")
    assert code == 2 and "no token" in err
    with pytest.raises(SystemExit) as usage:
        main(["query", "chips", "--status", "lost"])
    assert usage.value.code == 2
    capsys.readouterr()


def test_token_from_file_and_profile(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHIPREG_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text(world.operator_token + "\n")
    assert (
        main(
            [
                "query",
                "--registry",
                world.registry.url,
                "--token-file",
                str(token_file),
                "-o",
                "json",
                "chips",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["total"] == 2
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(f'[ops]\nregistry = "{world.registry.url}"\ntoken_file = "{token_file}"\n')
    assert main(["query", "--profile", "ops", "--profiles-file", str(profiles), "chips"]) == 0
    assert "NV-A" in capsys.readouterr().out
    assert main(["query", "--profile", "nope", "--profiles-file", str(profiles), "chips"]) == 2
    capsys.readouterr()


def test_signed_export_then_audit(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reg = world.registry
    monkeypatch.setenv("CHIPREG_TOKEN", reg.token(Role.INSPECTOR))
    with reg.client() as http:
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
        with reg.context.sessions() as s:
            size, _ = TransparencyLog(s, reg.context.log_signer).head()
        wait_checkpoint(http, NoteVerifier.from_vkey(vkey), size)
    out = tmp_path / "inventory.json"
    assert (
        main(
            ["query", "--registry", reg.url, "-o", "json", "export", "inventory", "--out", str(out)]
        )
        == 0
    )
    assert out.exists() and (tmp_path / "inventory.json.sig").exists()
    assert main(["query", "--registry", reg.url, "export", "findings"]) == 2  # -o table
    capsys.readouterr()
    assert main(["audit", "--export", str(out), "--log-vkey", vkey]) == 0
    assert "PASS" in capsys.readouterr().out
