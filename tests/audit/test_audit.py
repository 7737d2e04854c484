"""``chipreg audit`` against a live registry over HTTP: a clean log passes; an altered, deleted
or reordered entry, invented or suppressed findings, a fork without cosignatures and a
history rewritten since the last audit all fail, with a non-zero exit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from attestation.logentries import VERIFIER_RUN
from attestation.note import NoteVerifier
from attestation.records import VerifierRunRecord
from audit.bundle import verify_bundle
from audit.core import TrustPolicy
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.cli import audit as audit_cli
from registry.cli.main import main
from registry.repositories.log import LogRepository
from registry.server import BackgroundServer
from registry.services import log as log_service
from registry.services.accounts import AccountService
from registry.services.log import LogAppender
from registry.settings import Settings, WitnessSetting
from tests.conftest import LiveRegistry
from tests.registry.factories import World, link, make_world, ok, operator_key, signed
from tests.registry.logtools import wait_checkpoint
from tests.registry.test_witness import ORIGIN, WitnessServer, write_log_key

AS_OF = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


@dataclass
class Audited:
    registry: LiveRegistry
    world: World
    witness: WitnessServer
    vkey: str
    tmp: Path

    def audit(self, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
        code = main(
            [
                "audit",
                "--registry",
                self.registry.url,
                "--log-vkey",
                self.vkey,
                "--witness-vkey",
                self.witness.signer.verifier_key(),
                "--vendor-root",
                str(self.tmp / "root.pem"),
                "--state-file",
                str(self.tmp / "audit-state.json"),
                "--quiet",
                *extra,
            ]
        )
        out = capsys.readouterr().out
        return code, out

    def size(self) -> int:
        with self.registry.context.sessions() as s:
            return LogRepository(s).sequenced_size()

    def settle(self) -> None:
        """Wait until the published, cosigned checkpoint covers the whole log."""
        with self.registry.client() as http:
            wait_checkpoint(http, NoteVerifier.from_vkey(self.vkey), self.size())

    def sql(self, statement: str, **params: object) -> None:
        with self.registry.context.engine.begin() as conn:
            conn.execute(text(statement), params)


def registry_app(database_url: str, tmp: Path, witness: WitnessServer) -> tuple[object, str]:
    settings = Settings(
        database_url=database_url,
        log_key_file=tmp / "log-key",
        log_origin=ORIGIN,
        checkpoint_interval_s=0.05,
        witnesses=[WitnessSetting(url=witness.server.url, vkey=witness.signer.verifier_key())],
    )
    app = create_app(settings)
    with app.state.context.sessions() as s:
        admin = AccountService(s, utc_now).create_token("admin", Role.ADMIN).secret
        s.commit()
    return app, admin


def populate(world: World) -> None:
    """Chips, reports with a hidden cluster and a silent chip, a declared cluster, a run."""
    chips = [world.enroll(f"NV-H100-{i:04d}") for i in range(6)]
    with world.registry.client(world.operator_token) as http:
        ok(
            http.post(
                "/v1/clusters",
                json=signed(
                    "cluster",
                    {
                        "facility_id": world.facility_id,
                        "name": "run 1",
                        "purpose": "pretraining",
                        "chip_ids": ["NV-H100-0000", "NV-H100-0001"],
                        "start": "2026-02-01T00:00:00Z",
                        "end": "2026-04-01T00:00:00Z",
                    },
                    operator_key("Abilene Compute"),
                ),
            ),
            201,
        )
    for _ in range(3):
        batch = [
            chips[0].report(peers=(link("NV-H100-0001"),)),
            chips[1].report(peers=(link("NV-H100-0000"),)),
            chips[2].report(peers=(link("NV-H100-0003", 500),)),
            chips[3].report(peers=(link("NV-H100-0002", 500),)),
        ]
        ok(world.post(batch))
    inspector = world.registry.token(Role.INSPECTOR)
    with world.registry.client(inspector) as http:
        run = ok(
            http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()})
        )
    assert run["findings"] >= 1


@pytest.fixture
def audited(database_url: str, tmp_path: Path) -> Iterator[Audited]:
    log = write_log_key(tmp_path / "log-key")
    witness = WitnessServer(tmp_path, log.verifier())
    with witness.server:
        app, admin = registry_app(database_url, tmp_path, witness)
        with BackgroundServer(app) as server:  # type: ignore[arg-type]
            registry = LiveRegistry(server.url, app.state.context, admin)  # type: ignore[attr-defined]
            world = make_world(registry)
            (tmp_path / "root.pem").write_bytes(world.root_pem)
            populate(world)
            a = Audited(registry, world, witness, log.verifier_key(), tmp_path)
            a.settle()
            yield a
        registry.context.engine.dispose()


def test_clean_log_passes_and_the_state_file_remembers_it(
    audited: Audited, capsys: pytest.CaptureFixture[str]
) -> None:
    partner = audited.registry.token(Role.PARTNER)
    code, out = audited.audit(capsys, "--token", partner)
    assert code == 0, out
    assert "VERDICT: PASS" in out
    for row in ("entries: usage_report", "entries: cluster", "verifier runs re-derived"):
        assert row in out
    assert "witness.test/w1" in out
    state = json.loads((audited.tmp / "audit-state.json").read_text())
    assert state["logs"][ORIGIN]["size"] == audited.size()
    # Again, after the log grew: consistent with the remembered checkpoint.
    chip = audited.world.chips["NV-H100-0004"]
    ok(audited.world.post([chip.report()]))
    audited.settle()
    code, out = audited.audit(capsys)
    assert code == 0, out


def test_entries_are_fetched_in_pages_the_registry_serves(
    audited: Audited, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real log of more than 1,000 entries takes minutes to build here; a small page makes
    # this one span many requests, and the page may never exceed what the registry serves.
    assert audit_cli.PAGE <= log_service.MAX_ENTRIES
    monkeypatch.setattr(audit_cli, "PAGE", 3)
    assert audited.size() > 3 * audit_cli.PAGE
    code, out = audited.audit(capsys)
    assert code == 0, out
    assert "VERDICT: PASS" in out


@pytest.mark.parametrize("tamper", ["alter", "delete", "reorder"])
def test_tampered_entries_fail_the_audit(
    audited: Audited, capsys: pytest.CaptureFixture[str], tamper: str
) -> None:
    size = audited.size()
    victim = size - 3  # a usage report
    if tamper == "alter":
        audited.sql(
            'UPDATE log_entries SET body = :b WHERE "index" = :i',
            b=b'{"payload":"e30=","payloadType":"x","signatures":[{"keyid":"","sig":"AA=="}]}',
            i=victim,
        )
    elif tamper == "delete":
        audited.sql('DELETE FROM log_entries WHERE "index" = :i', i=victim)
    else:
        audited.sql('UPDATE log_entries SET "index" = -1 WHERE "index" = :i', i=victim)
        audited.sql(
            'UPDATE log_entries SET "index" = :i WHERE "index" = :j', i=victim, j=victim + 1
        )
        audited.sql('UPDATE log_entries SET "index" = :j WHERE "index" = -1', j=victim + 1)
    code, out = audited.audit(capsys)
    assert code == 1, out
    assert "VERDICT: FAIL" in out
    assert "do not hash to the checkpoint's root" in out or "entries, the checkpoint says" in out
    assert not (audited.tmp / "audit-state.json").exists()


def test_suppressed_findings_are_caught_by_re_derivation(
    audited: Audited, capsys: pytest.CaptureFixture[str]
) -> None:
    """A registry that logs a verifier run with a finding dropped (properly appended and
    signed: the tree is fine) is caught by re-deriving the findings from the log."""
    with audited.registry.context.sessions() as s:
        repo = LogRepository(s)
        [(_, _, body)] = [e for e in repo.entries_of_kinds([VERIFIER_RUN], 10**9)][-1:]
        run = VerifierRunRecord.from_json(body)
        assert run.findings
        LogAppender(s).append_record(replace(run, findings=run.findings[1:]), utc_now())
        s.commit()
    audited.settle()
    code, out = audited.audit(capsys)
    assert code == 1, out
    assert "re-derived but not published" in out


def test_findings_served_but_never_logged_fail(
    audited: Audited, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finding the registry shows inspectors but kept out of the log is caught."""
    audited.sql(
        "UPDATE findings SET fingerprint = :fp WHERE id = (SELECT MIN(id) FROM findings)",
        fp="f" * 64,
    )
    code, out = audited.audit(capsys, "--token", audited.registry.token(Role.PARTNER))
    assert code == 1, out
    assert "is served but never logged" in out


def test_forked_registry_gets_no_cosignature_and_fails(
    audited: Audited, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _ = audited.audit(capsys)  # the partner has seen the real log
    assert code == 0
    # The operator runs a second registry with the same log key and a different history.
    fork_dir = tmp_path / "fork"
    fork_dir.mkdir()
    (fork_dir / "log-key").write_text((tmp_path / "log-key").read_text())
    fork_app, fork_admin = registry_app(
        f"sqlite:///{fork_dir / 'fork.sqlite3'}", fork_dir, audited.witness
    )
    with BackgroundServer(fork_app) as server:  # type: ignore[arg-type]
        fork = LiveRegistry(server.url, fork_app.state.context, fork_admin)  # type: ignore[attr-defined]
        world = make_world(fork)
        for i in range(30):
            world.enroll(f"FORK-{i:04d}")
        forked = Audited(fork, world, audited.witness, audited.vkey, tmp_path)
        forked.settle()
        with fork.client() as http:
            note = http.get("/v1/log/checkpoint").text
        assert "witness.test/w1" not in note  # the witness refused the fork
        code, out = forked.audit(capsys)
        assert code == 1, out
        assert "0 trusted witness cosignatures, the policy needs 1" in out
        assert "history was rewritten" in out  # and it contradicts what the partner saw
        fork.context.engine.dispose()


def test_signed_bundle_verifies_offline_and_tampering_fails(
    audited: Audited, capsys: pytest.CaptureFixture[str]
) -> None:
    with audited.registry.client() as http:
        r = http.get(
            "/v1/log/bundle",
            params={"facility_id": audited.world.facility_id, "start": "2026-03-01T00:00:00Z"},
        )
        assert r.status_code == 200, r.text
    data = r.content
    policy = TrustPolicy(
        NoteVerifier.from_vkey(audited.vkey), [audited.witness.signer.verifier()], 1
    )
    result = verify_bundle(data, policy)
    assert result.ok, result.problems
    assert result.replay is not None and result.replay.counts["usage_report"] == 12
    assert result.proofs_ok == result.entries
    path = audited.tmp / "bundle.json"
    path.write_bytes(data)
    code = main(
        [
            "audit",
            "--bundle",
            str(path),
            "--log-vkey",
            audited.vkey,
            "--witness-vkey",
            audited.witness.signer.verifier_key(),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "VERDICT: PASS" in out
    # One changed byte anywhere breaks the log's signature over the bundle.
    doc = json.loads(data)
    doc["signatures"][0]["sig"] = doc["signatures"][0]["sig"][:-4] + "AAA="
    assert not verify_bundle(json.dumps(doc).encode(), policy).ok
