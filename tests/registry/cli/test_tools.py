"""The manufacturer's, operator's and deployer's commands as real subprocesses: ``admin init``
and ``admin tokens``, ``vendor init-root|endorse|enroll``, ``operator keygen|declare`` and the
agent's start-up checks. The full production flow on PostgreSQL is
``test_production_bootstrap.py``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from attestation.certs import verify_chip_certificate
from attestation.dsse import Envelope, verify_envelope
from attestation.keys import PrivateKey, PublicKey
from attestation.records import ClusterDeclaration, InstallationDeclaration
from registry.auth import Role
from registry.db.engine import make_engine, make_session_factory
from registry.db.models import TokenEvent
from registry.services.accounts import DIRECT_ACTOR
from tests.conftest import LiveRegistry
from tests.registry.cli.test_commands import chipreg
from tests.registry.factories import add_operator, key, make_world


def sqlite_env(tmp_path: Path) -> dict[str, str]:
    return {
        "CHIPREG_DATABASE_URL": f"sqlite:///{tmp_path / 'r.sqlite3'}",
        "CHIPREG_LOG_KEY_FILE": str(tmp_path / "keys" / "log-key"),
        "CHIPREG_LOG_ORIGIN": "tools.test/log",
    }


def test_admin_init_then_tokens_create_list_revoke(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    init = chipreg("admin", "init", env=env)
    assert init.returncode == 0, init.stderr
    doc = json.loads(init.stdout)
    assert doc["log_verifier_key"].startswith("tools.test/log+")
    assert (tmp_path / "keys" / "log-key").stat().st_mode & 0o777 == 0o600
    key_before = (tmp_path / "keys" / "log-key").read_bytes()

    again = chipreg("admin", "init", env=env)
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr and again.stdout == ""
    assert (tmp_path / "keys" / "log-key").read_bytes() == key_before
    # Nor does a new key path make an initialised database a fresh one.
    elsewhere = {**env, "CHIPREG_LOG_KEY_FILE": str(tmp_path / "other-key")}
    forked = chipreg("admin", "init", env=elsewhere)
    assert forked.returncode == 2 and "initialised already" in forked.stderr
    assert not (tmp_path / "other-key").exists()

    made = chipreg("admin", "tokens", "create", "--name", "audit", "--role", "inspector", env=env)
    assert made.returncode == 0, made.stderr
    made_doc = json.loads(made.stdout)
    listed = chipreg("admin", "tokens", "list", env=env)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["name"], r["role"], r["revoked_at"]) for r in rows] == [
        ("admin", "admin", None),
        ("audit", "inspector", None),
    ]
    # Secrets are printed once, at creation, never by list.
    assert doc["admin_token"] not in listed.stdout and made_doc["token"] not in listed.stdout

    revoked = chipreg(
        "admin", "tokens", "revoke", str(made_doc["id"]), "--reason", "rotated", env=env
    )
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["revoked_at"] is not None
    twice = chipreg("admin", "tokens", "revoke", str(made_doc["id"]), "--reason", "x", env=env)
    assert twice.returncode == 2 and json.loads(twice.stdout)["error"] == "token_already_revoked"

    engine = make_engine(env["CHIPREG_DATABASE_URL"])
    with make_session_factory(engine)() as s:
        events = [(e.token_id, e.action, e.actor_name) for e in s.scalars(select(TokenEvent))]
    engine.dispose()
    assert events == [
        (1, "created", DIRECT_ACTOR),
        (2, "created", DIRECT_ACTOR),
        (2, "revoked", DIRECT_ACTOR),
    ]


def test_admin_init_works_in_production_mode_where_the_key_is_missing(tmp_path: Path) -> None:
    # Production refuses SQLite before anything is created: nothing is left behind.
    env = {**sqlite_env(tmp_path), "CHIPREG_ENVIRONMENT": "production"}
    run = chipreg("admin", "init", env=env)
    assert run.returncode == 2 and "PostgreSQL" in run.stderr
    assert not (tmp_path / "keys").exists()
    # Every other command still refuses production without the key, and names the command.
    served = chipreg("verify", env={**env, "CHIPREG_DATABASE_URL": "postgresql+psycopg://x/y"})
    assert served.returncode == 2 and "chipreg admin init" in served.stderr


def test_vendor_init_root_and_endorse(tmp_path: Path) -> None:
    made = chipreg(
        "vendor", "init-root", "--name", "NVIDIA",
        "--key-file", str(tmp_path / "root.key"), "--cert-file", str(tmp_path / "root.pem"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["name"] == "NVIDIA"
    assert (tmp_path / "root.key").stat().st_mode & 0o777 == 0o600
    refused = chipreg(
        "vendor", "init-root", "--name", "NVIDIA",
        "--key-file", str(tmp_path / "root.key"), "--cert-file", str(tmp_path / "other.pem"),
    )  # fmt: skip
    assert refused.returncode == 1 and "refusing to overwrite" in refused.stderr
    assert not (tmp_path / "other.pem").exists()

    chips = [
        {"chip_id": f"GPU-{i}", "model": "H100", "public_key": key(f"c{i}").public_key.to_b64()}
        for i in range(3)
    ]
    (tmp_path / "chips.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chips))
    root = ["--root-key", str(tmp_path / "root.key"), "--root-cert", str(tmp_path / "root.pem")]
    many = chipreg("vendor", "endorse", *root, "--in", str(tmp_path / "chips.jsonl"))
    assert many.returncode == 0, many.stderr
    out = [json.loads(line) for line in many.stdout.splitlines()]
    root_pem = (tmp_path / "root.pem").read_bytes()
    for chip, line in zip(chips, out, strict=True):
        assert {k: line[k] for k in chip} == chip
        endorsed = verify_chip_certificate(
            line["certificate_pem"].encode(), root_pem, at=datetime.now(UTC)
        )
        assert endorsed.chip_id == chip["chip_id"]
        assert endorsed.public_key == PublicKey.from_b64(chip["public_key"])

    one = chipreg(
        "vendor", "endorse", *root, "--chip-id", "GPU-9", "--model", "H100",
        "--public-key", key("c9").public_key.to_b64(),
    )  # fmt: skip
    assert one.returncode == 0 and json.loads(one.stdout)["chip_id"] == "GPU-9"

    # A bad line is named; nothing is written.
    bad = [*chips[:2], {"chip_id": "GPU-X", "model": "H100", "public_key": "short"}]
    (tmp_path / "bad.jsonl").write_text("".join(json.dumps(c) + "\n" for c in bad))
    out_file = tmp_path / "endorsed.jsonl"
    failed = chipreg(
        "vendor", "endorse", *root, "--in", str(tmp_path / "bad.jsonl"), "--out", str(out_file)
    )
    assert failed.returncode == 1 and "line 3:" in failed.stderr
    assert not out_file.exists()


def test_vendor_enroll_names_refused_chips_by_input_line(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    world = make_world(live_registry)
    lines = [
        {"certificate_pem": world.certificate(f"GPU-E{i}", key(f"e{i}")).decode()} for i in range(4)
    ]
    lines.append(lines[1])  # the same chip twice: line 5
    (tmp_path / "endorsed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    args = ["vendor", "enroll", "--vendor-id", str(world.vendor_id)]
    args += ["--in", str(tmp_path / "endorsed.jsonl"), "--registry", live_registry.url]
    env = {"CHIPREG_VENDOR_TOKEN": world.vendor_token}
    refused = chipreg(*args, "--peak-tflops-bf16", "989", "--tdp-watts", "700", env=env)
    assert refused.returncode == 1
    head, *items = refused.stderr.splitlines()
    assert "422 batch_rejected: 1 of 5 chips refused" in head
    assert [(i["line"], i["index"], i["code"]) for i in map(json.loads, items)] == [
        (5, 4, "duplicate_in_batch")
    ]
    missing = chipreg(*args, env=env)
    assert missing.returncode == 1 and "line 1: peak_tflops_bf16 missing" in missing.stderr

    (tmp_path / "endorsed.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:4]))
    done = chipreg(*args, "--peak-tflops-bf16", "989", "--tdp-watts", "700", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chip_ids"] == [f"GPU-E{i}" for i in range(4)]


def test_operator_keygen_and_dry_run_prints_the_exact_signed_bytes(tmp_path: Path) -> None:
    key_file = tmp_path / "op.key"
    made = chipreg("operator", "keygen", "--key-file", str(key_file))
    assert made.returncode == 0, made.stderr
    public = PublicKey.from_b64(json.loads(made.stdout)["public_key"])
    assert PrivateKey.from_pem(key_file.read_bytes()).public_key == public
    assert chipreg("operator", "keygen", "--key-file", str(key_file)).returncode == 1

    common = ["--facility-id", "3", "--key-file", str(key_file), "--dry-run"]
    run = chipreg(
        "operator", "declare", "installation", *common, "--chip-id", "GPU-1",
        "--chip-id", "GPU-2", "--installed-at", "2026-03-01T00:00:00Z",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    envelopes = [Envelope.from_json(line) for line in run.stdout.splitlines()]
    assert [e.to_json().decode() for e in envelopes] == run.stdout.splitlines()
    for chip_id, envelope in zip(["GPU-1", "GPU-2"], envelopes, strict=True):
        verify_envelope(envelope, public)
        assert InstallationDeclaration.payload_fields(envelope) == {
            "chip_id": chip_id,
            "facility_id": 3,
            "installed_at": "2026-03-01T00:00:00Z",
        }
    cluster = chipreg(
        "operator", "declare", "cluster", *common, "--name", "c", "--chip-id", "B",
        "--chip-id", "A", "--start", "2026-03-01T00:00:00Z", "--end", "2026-04-01T00:00:00Z",
    )  # fmt: skip
    envelope = Envelope.from_json(cluster.stdout.strip())
    verify_envelope(envelope, public)
    assert ClusterDeclaration.from_envelope(envelope).chip_ids == ("A", "B")
    bad = chipreg(
        "operator", "declare", "cluster", *common, "--name", "c", "--chip-id", "A",
        "--start", "yesterday", "--end", "2026-04-01T00:00:00Z",
    )  # fmt: skip
    assert bad.returncode == 1 and "--start" in bad.stderr


@pytest.mark.parametrize("registry", ["registry.example.org", "ftp://registry.example.org"])
def test_agent_refuses_a_registry_url_without_http_scheme(registry: str, tmp_path: Path) -> None:
    run = chipreg(
        "agent", "run", "--backend", "simulated", "--state-dir", str(tmp_path),
        "--registry", registry, env={"CHIPREG_AGENT_TOKEN": "chipreg_x"},
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.strip() == (
        f"chipreg agent: registry URL {registry!r} must be absolute with an http:// or "
        "https:// scheme, e.g. https://registry.example.org"
    )


def test_agent_refuses_at_start_a_token_or_facility_the_registry_refuses(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    world = make_world(live_registry)
    base = ["agent", "run", "--backend", "simulated", "--state-dir", str(tmp_path)]
    base += ["--registry", live_registry.url]

    def start(token: str, facility: int) -> tuple[int, str]:
        run = chipreg(
            *base, "--facility-id", str(facility), env={"CHIPREG_AGENT_TOKEN": token}, timeout=60
        )
        assert run.stderr.count("\n") == 1, run.stderr  # one line
        return run.returncode, run.stderr

    code, line = start("chipreg_wrong", world.facility_id)
    assert code == 1 and "refused the token in $CHIPREG_AGENT_TOKEN: 401 invalid_token" in line
    inspector = live_registry.token(Role.INSPECTOR)
    code, line = start(inspector, world.facility_id)
    assert code == 1 and "403 not_an_operator_token" in line
    code, line = start(world.operator_token, 999)
    assert code == 1 and "refused facility 999: 404 unknown_facility" in line
    _, _, other_facility = add_operator(live_registry, "Other")
    code, line = start(world.operator_token, other_facility)
    assert code == 1 and f"refused facility {other_facility}: 403 not_your_operator" in line
