"""Property: the registry's findings equal those a partner re-derives from the log, for random
worlds driven over real HTTP (issue 10).

Each seed builds a small world in a live registry and then takes random steps: reports (on
the chain, replayed by the same operator, copied through another operator's account, a second
report for an accepted sequence number), installation declarations, two-signature transfers
both ways, transfer conditions, cluster declarations, budgets and notices (every declared time
in one of the forms the API accepts: ``Z`` or ``z``, a lower-case ``t``, a numeric offset,
fractions of a second), decommissions, and verifier runs at random instants and periods. At
the end the log is replayed and every run's findings are re-derived: they must be identical.
Seeded ``random``, bounded: a few dozen steps per seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.dsse import Envelope
from attestation.logentries import CLUSTER, INSTALLATION
from attestation.records import VerifierRunRecord
from attestation.transfer import Transfer, sign_transfer
from audit.facts import snapshot_at
from audit.records import Logged
from registry.auth import Role
from registry.services.verification import VerificationService
from tests.registry.factories import (
    T0,
    WINDOW,
    SimChip,
    World,
    add_operator,
    link,
    make_world,
    ok,
    operator_key,
    signed,
)
from tests.registry.test_custody import audit_matches, replay_log

SEEDS = (1, 2)
STEPS = 28
COUNTRIES = ("US", "CA", "DE", "FR")


def declared(at: datetime, rng: random.Random) -> str:
    """``at`` written in one of the forms a declaration may use (the same instant)."""
    form = rng.randrange(5)
    if form == 0:
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == 1:
        return at.strftime("%Y-%m-%dt%H:%M:%Sz")
    if form == 2:
        offset = timedelta(hours=rng.choice((-5, 2, 9)), minutes=rng.choice((0, 30)))
        return (at + offset).strftime("%Y-%m-%dT%H:%M:%S") + _offset(offset)
    if form == 3:
        return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond:06d}+00:00"


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@dataclass
class Holding:
    """Who holds a chip from when: ``[(since, operator)]``, operator 0 = A, 1 = B."""

    stays: list[tuple[datetime, int]] = field(default_factory=list)

    def at(self, instant: datetime) -> int:
        return [op for since, op in self.stays if since <= instant][-1]


@dataclass
class Fleet:
    world: World
    rng: random.Random
    now: list[datetime]
    tokens: tuple[str, str]
    facilities: tuple[list[int], list[int]]
    keys: tuple[Any, Any]
    chips: dict[str, SimChip]
    holding: dict[str, Holding]
    sent: dict[str, list[Envelope]] = field(default_factory=dict)
    retired: set[str] = field(default_factory=set)
    clusters: list[int] = field(default_factory=list)
    runs: int = 0

    @property
    def clock(self) -> datetime:
        return self.now[0]

    def client(self, token: str) -> Any:
        return self.world.registry.client(token)

    def holder(self, chip_id: str) -> int:
        return self.holding[chip_id].at(self.clock)

    # -- steps -----------------------------------------------------------------------------
    def report(self, chip_id: str) -> None:
        chip = self.chips[chip_id]
        for _ in range(self.rng.randint(1, 3)):
            if chip.window_end + WINDOW > self.clock:
                return
            who = self.holding[chip_id].at(chip.window_end)
            peers = tuple(link(p) for p in self.rng.sample(sorted(self.chips), 2) if p != chip_id)
            envelope = chip.report(
                utilization=self.rng.uniform(0.1, 0.95),
                peers=peers,
                facility_id=self.rng.choice((None, self.facilities[who][0])),
            )
            self.post([envelope], who)
            self.sent.setdefault(chip_id, []).append(envelope)

    def post(self, envelopes: list[Envelope], who: int) -> list[dict[str, Any]]:
        response = self.world.post(envelopes, token=self.tokens[who])
        assert response.status_code < 500, response.text
        return list(response.json().get("results", []))

    def replay(self, chip_id: str) -> None:
        if not self.sent.get(chip_id):
            return
        envelope = self.rng.choice(self.sent[chip_id])
        self.post([envelope], self.rng.randrange(2))  # a retry, or a copy through the other

    def reuse(self, chip_id: str) -> None:
        """A second, different report for the chip's last accepted sequence number."""
        chip = self.chips[chip_id]
        if chip.seq == 0 or not self.sent.get(chip_id):
            return
        # Refused before the hash chain is looked at: its prev_digest does not matter.
        twin = replace(chip, seq=chip.seq - 1, window_end=chip.window_end - WINDOW)
        self.post([twin.report(utilization=0.01)], self.holder(chip_id))

    def move(self, chip_id: str) -> None:
        """An installation declaration: the holder moves the chip to another of its sites."""
        who = self.holder(chip_id)
        at = self.clock - timedelta(minutes=self.rng.randint(1, 10))
        if at <= self.holding[chip_id].stays[-1][0]:
            return
        with self.client(self.tokens[who]) as http:
            r = http.post(
                "/v1/installations",
                json=signed(
                    INSTALLATION,
                    {
                        "chip_id": chip_id,
                        "facility_id": self.rng.choice(self.facilities[who]),
                        "installed_at": declared(at, self.rng),
                    },
                    self.keys[who],
                ),
            )
        assert r.status_code in (201, 409, 422), r.text
        if r.status_code == 201:
            self.holding[chip_id].stays.append((at, who))

    def transfer(self, chip_id: str) -> None:
        giver = self.holder(chip_id)
        receiver = 1 - giver
        at = self.clock - timedelta(minutes=self.rng.randint(1, 10))
        if at <= self.holding[chip_id].stays[-1][0]:
            return
        with self.client(self.world.registry.admin_token) as http:
            detail = ok(http.get(f"/v1/chips/{chip_id}"))
        deal = Transfer(
            chip_id, detail["facility"]["id"], self.rng.choice(self.facilities[receiver]), at
        )
        envelope = sign_transfer(deal, self.keys[giver], self.keys[receiver])
        with self.client(self.tokens[receiver]) as http:
            ok(http.post("/v1/transfers", json=envelope.to_dict()), 201)
        self.holding[chip_id].stays.append((at, receiver))

    def condition(self, chip_id: str) -> None:
        allowed = self.rng.sample(COUNTRIES, self.rng.randint(0, 3))
        body: dict[str, Any] = {"allowed_countries": allowed}
        if self.rng.random() < 0.7:
            at = self.clock - timedelta(minutes=self.rng.randint(0, 600))
            body["effective_from"] = declared(at, self.rng)
        with self.client(self.world.vendor_token) as http:
            ok(http.post(f"/v1/chips/{chip_id}/transfer-conditions", json=body), 201)

    def cluster(self) -> None:
        members = self.rng.sample(sorted(self.chips), 3)
        start = T0 + timedelta(minutes=self.rng.randint(0, 120), microseconds=500_000)
        end = start + timedelta(hours=self.rng.randint(1, 48))
        with self.client(self.tokens[0]) as http:
            r = http.post(
                "/v1/clusters",
                json=signed(
                    CLUSTER,
                    {
                        "facility_id": self.facilities[0][0],
                        "name": f"run {len(self.clusters)}",
                        "purpose": "pretraining",
                        "chip_ids": members,
                        "start": declared(start, self.rng),
                        "end": declared(end, self.rng),
                    },
                    self.keys[0],
                ),
            )
        if r.status_code == 201:
            self.clusters.append(int(r.json()["id"]))
        else:
            assert r.status_code in (403, 409, 422), r.text

    def budget_or_notice(self) -> None:
        if not self.clusters:
            return
        cluster_id = self.rng.choice(self.clusters)
        with self.client(self.tokens[0]) as http:
            if self.rng.random() < 0.5:
                budget = {"compute_budget_flop": self.rng.choice((1e18, 5e20, 1e24))}
                r = http.put(f"/v1/clusters/{cluster_id}/budget", json=budget)
            else:
                notice: dict[str, Any] = {"threshold_flop": self.rng.choice((1e18, 1e25))}
                if self.rng.random() < 0.5:
                    stated = self.clock - timedelta(minutes=self.rng.randint(0, 300))
                    notice["notified_at"] = declared(stated, self.rng)
                r = http.post(f"/v1/clusters/{cluster_id}/notifications", json=notice)
        assert r.status_code in (200, 201), r.text

    def decommission(self, chip_id: str) -> None:
        with self.client(self.tokens[self.holder(chip_id)]) as http:
            r = http.post(f"/v1/chips/{chip_id}/decommission", json={"reason": "end of life"})
        assert r.status_code in (200, 201), r.text
        self.retired.add(chip_id)

    def verify(self) -> None:
        as_of = self.clock - timedelta(minutes=self.rng.randint(0, 240))
        body: dict[str, Any] = {"policy": "demo", "as_of": as_of.isoformat()}
        if self.rng.random() < 0.5:
            body["since"] = (as_of - timedelta(hours=self.rng.randint(1, 6))).isoformat()
        with self.client(self.world.registry.token(Role.INSPECTOR)) as http:
            ok(http.post("/v1/verifier/runs", json=body))
        self.runs += 1

    def step(self) -> None:
        live = sorted(set(self.chips) - self.retired)
        chip_id = self.rng.choice(live)
        action = self.rng.choices(
            (
                "report",
                "replay",
                "reuse",
                "move",
                "transfer",
                "condition",
                "cluster",
                "budget_or_notice",
                "decommission",
                "verify",
            ),
            weights=(10, 3, 1, 2, 2, 2, 1, 2, 0.3 if len(live) > 3 else 0, 3),
        )[0]
        if action in ("cluster", "budget_or_notice", "verify"):
            getattr(self, action)()
        else:
            getattr(self, action)(chip_id)
        self.now[0] += timedelta(minutes=self.rng.randint(10, 50))


@pytest.fixture
def fleet_factory(live_registry: Any) -> Iterator[Any]:
    def build(seed: int) -> Fleet:
        rng = random.Random(seed)
        now = [T0 + timedelta(hours=1)]
        live_registry.context.clock = lambda: now[0]
        world = make_world(live_registry)
        b_id, b_token, b_facility = add_operator(live_registry, "Toronto", "CA")
        facilities: tuple[list[int], list[int]] = ([world.facility_id], [b_facility])
        for who, token, operator_id in (
            (0, world.operator_token, world.operator_id),
            (1, b_token, b_id),
        ):
            with live_registry.client(token) as http:
                site = ok(
                    http.post(
                        "/v1/facilities",
                        json={
                            "operator_id": operator_id,
                            "name": f"site 2 of {operator_id}",
                            "country": rng.choice(COUNTRIES),
                            "latitude": 45.0,
                            "longitude": 9.0,
                            "declared_power_kw": 5_000,
                        },
                    ),
                    201,
                )
            facilities[who].append(site["id"])
        chips, holding = {}, {}
        for n in range(rng.randint(4, 6)):
            chip_id = f"NV-{n + 1}"
            chip = world.enroll(chip_id, install=False)
            start = T0 - timedelta(days=1, minutes=rng.randint(0, 60))
            with live_registry.client(world.operator_token) as http:
                ok(
                    http.post(
                        "/v1/installations",
                        json=signed(
                            INSTALLATION,
                            {
                                "chip_id": chip_id,
                                "facility_id": rng.choice(facilities[0]),
                                "installed_at": declared(start, rng),
                            },
                            world.operator_key,
                        ),
                    ),
                    201,
                )
            chips[chip_id] = chip
            holding[chip_id] = Holding([(datetime.min.replace(tzinfo=UTC), 0)])
        return Fleet(
            world=world,
            rng=rng,
            now=now,
            tokens=(world.operator_token, b_token),
            facilities=facilities,
            keys=(world.operator_key, operator_key("Toronto")),
            chips=chips,
            holding=holding,
        )

    yield build


@pytest.mark.parametrize("seed", SEEDS)
def test_registry_findings_equal_the_partners_rederivation(fleet_factory: Any, seed: int) -> None:
    fleet = fleet_factory(seed)
    for _ in range(STEPS):
        fleet.step()
    fleet.verify()
    replay = audit_matches(fleet.world)
    assert len(replay.runs) == fleet.runs
    # The worlds exercise what parity rests on: evidence, custody changes and findings.
    assert replay.reports and any(run.record.findings for run in replay.runs)


def test_chips_and_facilities_are_cut_at_the_runs_log_size(live_registry: Any) -> None:
    # A chip enrolled (or a facility declared) after a run read the log's size is not in its
    # inputs, in the registry as in the partner's replay of the log.
    live_registry.context.clock = lambda: T0 + timedelta(hours=1)
    world = make_world(live_registry)
    world.enroll("NV-1")
    with live_registry.context.sessions() as session:
        service = VerificationService(session, live_registry.context.clock)
        size = service.log.repo.sequenced_size()
    _, _, late_facility = add_operator(live_registry, "Toronto", "CA")
    world.enroll("NV-2", facility_id=world.facility_id)
    as_of = T0 + timedelta(hours=1)
    with live_registry.context.sessions() as session:
        service = VerificationService(session, live_registry.context.clock)
        cut = service.snapshot(as_of, None, size)
        full = service.snapshot(as_of)
    assert set(cut.chips) == {"NV-1"} and late_facility not in cut.facilities
    assert set(full.chips) == {"NV-1", "NV-2"} and late_facility in full.facilities
    replay = replay_log(world)
    run = Logged(
        size,
        VerifierRunRecord(
            as_of=as_of, since=None, policy_id="demo", policy_version="", log_size=size, findings=()
        ),
    )
    partner = snapshot_at(replay, run)
    assert (set(partner.chips), set(partner.facilities)) == (set(cut.chips), set(cut.facilities))
