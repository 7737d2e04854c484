"""Signed exports over real HTTP, on SQLite and PostgreSQL: inventory and findings as CSV and
JSON, each verified by ``chipreg audit --export`` with only the log's key; a tampered export,
a signature from another key and a wrong-log signature fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from attestation.note import NoteVerifier
from registry.auth import Role
from registry.services.log import TransparencyLog
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import T0, WINDOW, World, make_world, ok
from tests.registry.logtools import wait_checkpoint

AS_OF = T0 + 4 * WINDOW + (WINDOW * 2) / 3


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry.cli.main", "audit", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    a, b = w.enroll("NV-A"), w.enroll("NV-B")
    w.enroll("NV-X", install=False)
    assert ok(w.post([a.report(), b.report()]))["accepted"] == 2
    for _ in range(3):
        assert ok(w.post([a.report()]))["accepted"] == 1
    with live_registry.client(live_registry.token(Role.INSPECTOR)) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()}))
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
        with live_registry.context.sessions() as s:
            size, _ = TransparencyLog(s, live_registry.context.log_signer).head()
        wait_checkpoint(http, NoteVerifier.from_vkey(vkey), size)
    return w


def fetch(registry: LiveRegistry, token: str, kind: str, fmt: str) -> dict[str, Any]:
    with registry.client(token) as http:
        made: dict[str, Any] = ok(http.get(f"/v1/exports/{kind}", params={"format": fmt}))
    return made


def save(tmp_path: Path, made: dict[str, Any]) -> Path:
    path = tmp_path / made["filename"]
    path.write_text(made["content"], encoding="utf-8")
    path.with_name(path.name + ".sig").write_text(made["signature"], encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_signed_exports_verify_and_tampering_fails(world: World, tmp_path: Path, fmt: str) -> None:
    reg = world.registry
    inspector = reg.token(Role.INSPECTOR)
    with reg.client() as http:
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
    inventory = fetch(reg, inspector, "inventory", fmt)
    findings = fetch(reg, inspector, "findings", fmt)
    if fmt == "json":
        doc = json.loads(inventory["content"])
        assert doc["summary"]["per_country"] == {"US": 2}
        assert [c["chip_id"] for c in doc["chips"]] == ["NV-A", "NV-B", "NV-X"]
        assert doc["checkpoint_size"] == inventory["checkpoint_size"]
        assert [f["subject_id"] for f in json.loads(findings["content"])["findings"]] == ["NV-B"]
    else:
        assert inventory["content"].splitlines()[0].startswith("chip_id,model,vendor,country")
        assert "NV-B" in findings["content"].splitlines()[1]
    for made in (inventory, findings):
        path = save(tmp_path, made)
        good = audit("--export", str(path), "--log-vkey", vkey)
        assert good.returncode == 0, good.stdout + good.stderr
        assert "PASS" in good.stdout

    # One byte changed in the export: the digest no longer matches.
    path = save(tmp_path, inventory)
    path.write_text(inventory["content"].replace("NV-B", "NV-Z"), encoding="utf-8")
    bad = audit("--export", str(path), "--log-vkey", vkey)
    assert bad.returncode == 1 and "[content]" in bad.stdout, bad.stdout
    # A signature that does not verify under the log key.
    path = save(tmp_path, findings)
    forged = json.loads(findings["signature"])
    forged["signatures"][0]["sig"] = forged["signatures"][0]["sig"][::-1]
    path.with_name(path.name + ".sig").write_text(json.dumps(forged), encoding="utf-8")
    bad = audit("--export", str(path), "--log-vkey", vkey)
    assert bad.returncode == 1 and "[signature]" in bad.stdout, bad.stdout
    # A missing signature file is a usage error.
    path.with_name(path.name + ".sig").unlink()
    assert audit("--export", str(path), "--log-vkey", vkey).returncode == 2


def test_export_access(world: World) -> None:
    reg = world.registry
    refused(reg, world.operator_token, "GET", "/v1/exports/inventory", (403, "role_not_allowed"))
    refused(reg, reg.token(Role.INSPECTOR), "GET", "/v1/exports/chips", (422, "invalid_request"))
    refused(
        reg,
        reg.token(Role.INSPECTOR),
        "GET",
        "/v1/exports/findings",
        (422, "invalid_request"),
        params={"format": "xml"},
    )
    partner = reg.token(Role.PARTNER)
    fetch(reg, partner, "inventory", "csv")
    ctx = reg.context
    ctx.settings = ctx.settings.model_copy(update={"partner_aggregates_only": True})
    refused(reg, partner, "GET", "/v1/exports/inventory", (403, "aggregates_only"))
    fetch(reg, partner, "findings", "json")
