"""A partner's audit re-derives every finding of the full verifier from the log alone.

A scenario world with the independent channels (landmarks, meters, transfer conditions, a
budgeted cluster) is provisioned into a live registry over real HTTP, with planted violations:
a smuggled chip (location), ghost chips (meter), a transfer into a forbidden country, a late
replay, a cluster over its compute budget, a chip key used through another operator's account
and another operator's report forwarded through it (both refused ``forbidden`` but kept). The
registry's verifier runs through the API; then ``chipreg audit`` replays the log and must
re-derive exactly the published findings, the new rules' included. Hiding an input from the
verifier, or altering a logged input, fails the audit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from attestation.note import NoteVerifier
from attestation.report import sign_report
from registry.auth import Role
from registry.cli.main import main
from registry.repositories.log import LogRepository
from registry.server import BackgroundServer
from simulator.artifacts import Delivery
from simulator.catalog import H100, MI300X, PLACES, SITES
from simulator.provision import (
    deliver,
    honest_chips,
    measure_locations,
    provision_world,
)
from simulator.world import World
from tests.audit.test_audit import registry_app
from tests.conftest import LiveRegistry
from tests.registry.factories import ok
from tests.registry.logtools import wait_checkpoint
from tests.registry.test_witness import WitnessServer, write_log_key
from tests.simulator.test_channels_end_to_end import EPOCH, GHOST_CHIPS, GHOST_W, WINDOW, WINDOWS

ASHBURN, HAMINA, DUBLIN, FRANKFURT = SITES[0], SITES[2], SITES[3], SITES[4]
END = EPOCH + WINDOWS * WINDOW
REPLAY_AT = END + timedelta(hours=7)  # beyond the 6 h an agent's retry can explain
AS_OF = REPLAY_AT + timedelta(minutes=5)  # (every chip is silent by then: more to re-derive)


@dataclass
class Planted:
    world: World
    smuggled: str
    forbidden: str
    replayed: str
    us: int
    de: int
    cloned: str
    forwarded: str


def planted_world() -> Planted:
    world = World(seed=5, epoch=EPOCH, window=WINDOW, windows=WINDOWS)
    us = world.add_facility(ASHBURN).facility_id
    de = world.add_facility(FRANKFURT).facility_id
    us_chips = world.add_chips(us, H100, 16)
    de_chips = world.add_chips(de, MI300X, 16, allowed=frozenset({"DE"}))
    world.training(us_chips[:8])
    # A budget a third of what the run uses, and no notification: over budget.
    world.declare_cluster(
        "ashburn-pretrain", us, us_chips[:8], budget_flop=world.projected_flop(us_chips[:8]) / 3
    )
    world.inference_nodes(de_chips[:8])
    # A chip leaves Ashburn for Shenzhen; its reports still claim Ashburn.
    smuggled = us_chips[12]
    world.move(smuggled, to=PLACES[0])
    # Ghost chips draw power at Frankfurt from window 2.
    world.at(2, lambda _w: setattr(world.facilities[de], "ghost_w", GHOST_CHIPS * GHOST_W))
    # A chip allowed only in Finland is moved by its operator to Dublin from window 2.
    fi = world.add_facility(HAMINA).facility_id
    ie = world.add_facility(DUBLIN).facility_id
    forbidden = world.add_chips(fi, H100, 4, allowed=frozenset({"FI"}))[0]
    world.add_chips(ie, H100, 4)
    world.reinstall(forbidden, ie, 2)

    def transfer(_w: int) -> None:
        world.move(forbidden, to=world.facilities[ie])
        world.chips[forbidden].facility_id = ie

    world.at(2, transfer)
    # An old report of a Frankfurt chip sent again by its operator, hours after the original.
    replayed = de_chips[13]
    world.chips[replayed].history = {}

    def replay(w: int) -> Iterable[Delivery]:
        history = world.chips[replayed].history
        assert history is not None
        src = world.chips[replayed].source
        return [Delivery(REPLAY_AT, world.next_order(), history[w - 3], src)]

    world.deliver(4, replay)
    # Through the Frankfurt operator's account: a second signer of an Ashburn chip's key, and
    # a copy of another Ashburn chip's report. Both refused (forbidden), both evidence.
    cloned, forwarded = us_chips[14], us_chips[15]
    world.chips[forwarded].history = {}
    foreign_source = world.chips[de_chips[0]].source

    def foreign(w: int) -> Iterable[Delivery]:
        chip = world.chips[cloned]
        assert chip.last is not None
        forged = replace(chip.last, utilization=0.05, energy_j=round(chip.last.energy_j / 4, 1))
        history = world.chips[forwarded].history
        assert history is not None
        at = world.window_start(w + 1) + timedelta(seconds=150)
        return [
            Delivery(
                at, world.next_order(), sign_report(forged, chip.key).to_json(), foreign_source
            ),
            Delivery(at, world.next_order(), history[w - 2], foreign_source),
        ]

    world.deliver(4, foreign)
    return Planted(world, smuggled, forbidden, replayed, us, de, cloned, forwarded)


@dataclass
class Setup:
    registry: LiveRegistry
    vkey: str
    witness: WitnessServer
    tmp: Path
    planted: Planted

    def audit(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = main(
            [
                "audit",
                "--registry",
                self.registry.url,
                "--log-vkey",
                self.vkey,
                "--witness-vkey",
                self.witness.signer.verifier_key(),
                "--state-file",
                str(self.tmp / "audit-state.json"),
                "--quiet",
            ]
        )
        return code, capsys.readouterr().out

    def verify(self) -> list[dict[str, Any]]:
        # The registry refuses to judge an instant after its own clock.
        self.registry.context.clock = lambda: AS_OF
        with self.registry.client(self.registry.token(Role.INSPECTOR)) as http:
            ok(http.post("/v1/verifier/runs", json={"as_of": AS_OF.isoformat()}))
            found: list[dict[str, Any]] = ok(http.get("/v1/findings"))["findings"]
        self.settle()
        return found

    def settle(self) -> None:
        with self.registry.context.sessions() as s:
            size = LogRepository(s).sequenced_size()
        with self.registry.client() as http:
            wait_checkpoint(http, NoteVerifier.from_vkey(self.vkey), size)

    def sql(self, statement: str) -> None:
        with self.registry.context.engine.begin() as conn:
            conn.execute(text(statement))


@pytest.fixture
def setup(database_url: str, tmp_path: Path) -> Iterator[Setup]:
    log = write_log_key(tmp_path / "log-key")
    witness = WitnessServer(tmp_path, log.verifier())
    with witness.server:
        app, admin = registry_app(database_url, tmp_path, witness)
        with BackgroundServer(app) as server:  # type: ignore[arg-type]
            registry = LiveRegistry(server.url, app.state.context, admin)  # type: ignore[attr-defined]

            def set_time(at: datetime) -> None:
                registry.context.clock = lambda: at

            planted = planted_world()
            world = planted.world
            artifacts = world.simulate()
            provisioned = provision_world(world, registry.url, admin, set_time=set_time)
            stats = deliver(provisioned, artifacts, set_time=set_time)
            # A replay is acknowledged as a resent copy; the foreign account is refused.
            assert stats.rejected == {"forbidden": 2}
            set_time(END + timedelta(minutes=1))
            honest = [c for c in honest_chips(world) if c != planted.smuggled]
            measured = [planted.smuggled, *honest[:4], *honest[-4:]]
            assert measure_locations(provisioned, measured) == len(measured) * 2 * 3
            yield Setup(registry, log.verifier_key(), witness, tmp_path, planted)
        registry.context.engine.dispose()


def test_audit_re_derives_every_rule_from_the_log(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    found = setup.verify()
    p = setup.planted
    by_kind: dict[str, set[object]] = {}
    for f in found:
        by_kind.setdefault(f["kind"], set()).add(f["subject_id"])
    assert p.smuggled in by_kind["location_mismatch"]
    assert p.forbidden in by_kind["forbidden_country"]
    assert p.replayed in by_kind["replayed_report"]
    assert p.cloned in by_kind["cloned_identity"]
    assert p.forwarded in by_kind["replayed_report"]
    assert "ghost_chips" in by_kind
    assert any("budget" in k for k in by_kind), sorted(by_kind)

    code, out = setup.audit(capsys)
    assert code == 0, out
    assert "VERDICT: PASS" in out
    for kind in (
        "transfer_condition",
        "cluster_budget",
        "landmark",
        "meter",
        "landmark_measurement",
        "meter_reading",
        "rejected_report",
    ):
        assert f"entries: {kind}" in out, kind
    assert "verifier runs re-derived" in out and f"{len(found)} findings" in out


def test_an_input_hidden_from_the_verifier_fails_the_audit(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    # The registry drops a logged transfer condition from what its verifier sees: the run
    # published no forbidden-country finding, but the log says there must be one.
    setup.sql("DELETE FROM transfer_conditions")
    found = setup.verify()
    assert not [f for f in found if f["kind"] == "forbidden_country"]
    code, out = setup.audit(capsys)
    assert code == 1
    assert "re-derived but not published" in out
    assert "VERDICT: FAIL" in out


def test_an_altered_transfer_condition_record_fails_the_audit(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.verify()
    # Rewrite the logged condition to allow Ireland: the entries no longer hash to the root.
    pg = setup.registry.context.engine.dialect.name == "postgresql"
    rewritten = (
        "convert_to(replace(convert_from(body, 'UTF8'), '[\"FI\"]', '[\"IE\"]'), 'UTF8')"
        if pg
        else "CAST(REPLACE(CAST(body AS TEXT), '[\"FI\"]', '[\"IE\"]') AS BLOB)"
    )
    setup.sql(f"UPDATE log_entries SET body = {rewritten} WHERE kind = 'transfer_condition'")
    code, out = setup.audit(capsys)
    assert code == 1, out
    assert "VERDICT: FAIL" in out
    assert "do not hash to the checkpoint" in out
