"""Transfer conditions and cluster budgets over real HTTP, on SQLite and PostgreSQL: chips'
transfer conditions (admin and vendor, accumulating by intersection), declared clusters' compute
budgets and threshold notifications (the owning operator), and facilities' declared non-IT load.
Every refusal is checked for its status, its stable ``code``, and that it wrote nothing; what is
accepted is checked down to the facts the verifier is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from attestation.certs import create_vendor_root
from attestation.logentries import CLUSTER
from registry.auth import Role
from registry.repositories.conditions_budgets import ConditionsBudgetsRepository
from registry.services.verification import VerificationService
from tests.registry.checks import refused
from tests.registry.factories import (
    VALID_FROM,
    VALID_TO,
    World,
    add_operator,
    key,
    make_world,
    ok,
    operator_key,
    signed,
)
from verifier.facts import Snapshot

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(live_registry: Any) -> World:
    live_registry.context.clock = lambda: NOW
    return make_world(live_registry)


def snapshot(world: World, as_of: datetime) -> Snapshot:
    with world.registry.context.sessions() as session:
        return VerificationService(session, world.registry.context.clock).snapshot(as_of)


def declare_cluster(world: World, chip_ids: list[str]) -> int:
    with world.registry.client(world.operator_token) as http:
        created = ok(
            http.post(
                "/v1/clusters",
                json=signed(
                    CLUSTER,
                    {
                        "facility_id": world.facility_id,
                        "name": "training run 7",
                        "purpose": "pretraining",
                        "chip_ids": chip_ids,
                        "start": "2026-03-01T00:00:00Z",
                        "end": "2026-04-01T00:00:00Z",
                    },
                    operator_key("Abilene Compute"),
                ),
            ),
            201,
        )
    return int(created["id"])


def another_vendor(world: World, name: str = "AMD") -> str:
    """A second vendor's token."""
    root_pem = create_vendor_root(
        name, key(f"vendor:{name}"), not_before=VALID_FROM, not_after=VALID_TO
    )
    with world.registry.client(world.registry.admin_token) as http:
        vendor = ok(
            http.post(
                "/v1/vendors", json={"name": name, "root_certificate_pem": root_pem.decode()}
            ),
            201,
        )
    return world.registry.token(Role.VENDOR, vendor_id=vendor["id"])


# -- transfer conditions ---------------------------------------------------------------------


def test_vendor_and_admin_conditions_accumulate_by_intersection(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    world.enroll("NV-2")
    path = "/v1/chips/NV-1/transfer-conditions"
    with reg.client(world.vendor_token) as http:
        at_enrollment = ok(http.post(path, json={"allowed_countries": ["US", "DE", "US"]}), 201)
    assert at_enrollment["allowed_countries"] == ["DE", "US"]  # sorted, each once
    assert at_enrollment["declared_role"] == "vendor"
    assert at_enrollment["effective_from"] == "2026-03-10T12:00:00Z"  # default: now
    later = "2026-03-20T00:00:00Z"
    with reg.client(reg.admin_token) as http:
        at_transfer = ok(
            http.post(path, json={"allowed_countries": ["US", "FR"], "effective_from": later}), 201
        )
        # An empty list allows no country at all.
        ok(http.post("/v1/chips/NV-2/transfer-conditions", json={"allowed_countries": []}), 201)
    assert at_transfer["declared_role"] == "admin"
    for token in (
        reg.admin_token,
        world.vendor_token,
        reg.token(Role.INSPECTOR),
        reg.token(Role.PARTNER),
    ):
        with reg.client(token) as http:
            listed = ok(http.get(path))
        assert [c["id"] for c in listed] == [at_enrollment["id"], at_transfer["id"]]
        assert [c["allowed_countries"] for c in listed] == [["DE", "US"], ["FR", "US"]]
    # The verifier sees the intersection of every condition in force at the judged instant.
    before = snapshot(world, datetime(2026, 3, 15, tzinfo=UTC))
    assert before.chips["NV-1"].allowed_countries == frozenset({"DE", "US"})
    after = snapshot(world, datetime(2026, 3, 21, tzinfo=UTC))
    assert after.chips["NV-1"].allowed_countries == frozenset({"US"})
    assert after.chips["NV-2"].allowed_countries == frozenset()
    # Not yet in force: no restriction at all.
    assert snapshot(world, NOW - timedelta(days=1)).chips["NV-1"].allowed_countries is None


def test_transfer_condition_refusals_write_nothing(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    other_vendor = another_vendor(world)
    path = "/v1/chips/NV-1/transfer-conditions"
    body = {"allowed_countries": ["US"]}
    for token, expected in (
        (world.operator_token, (403, "role_not_allowed")),
        (reg.token(Role.INSPECTOR), (403, "role_not_allowed")),
        (reg.token(Role.PARTNER), (403, "role_not_allowed")),
        (other_vendor, (403, "not_your_vendor")),
        (None, (401, "unauthenticated")),
        ("chipreg_not-a-token", (401, "invalid_token")),
    ):
        refused(reg, token, "POST", path, expected, json=body)
    for bad in (
        {"allowed_countries": ["us"]},
        {"allowed_countries": ["USA"]},
        {"allowed_countries": "US"},
        {},
        {"allowed_countries": ["US"], "effective_from": "2026-03-01T00:00:00"},
        {"allowed_countries": ["US"], "extra": 1},
        {"allowed_countries": ["US"] * 251},
    ):
        refused(reg, reg.admin_token, "POST", path, (422, "invalid_request"), json=bad)
    refused(
        reg,
        reg.admin_token,
        "POST",
        "/v1/chips/NV-9/transfer-conditions",
        (404, "unknown_chip"),
        json=body,
    )
    refused(
        reg,
        reg.admin_token,
        "POST",
        "/v1/chips/-bad-/transfer-conditions",
        (422, "invalid_request"),
        json=body,
    )
    # Reading: the operator may not, another vendor may not, an unknown chip is not found.
    refused(reg, world.operator_token, "GET", path, (403, "role_not_allowed"))
    refused(reg, other_vendor, "GET", path, (403, "not_your_vendor"))
    refused(
        reg, reg.admin_token, "GET", "/v1/chips/NV-9/transfer-conditions", (404, "unknown_chip")
    )
    with reg.client(reg.admin_token) as http:
        listed = http.get(path)
    assert (listed.status_code, listed.json()) == (200, [])


# -- cluster budgets and threshold notifications ----------------------------------------------


def test_owning_operator_sets_and_revises_the_budget(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    cluster_id = declare_cluster(world, ["NV-1"])
    with reg.client(reg.token(Role.INSPECTOR)) as http:
        empty = ok(http.get(f"/v1/clusters/{cluster_id}/obligations"))
    assert empty == {"cluster_id": cluster_id, "budget": None, "notifications": []}
    with reg.client(world.operator_token) as http:
        first = ok(
            http.put(f"/v1/clusters/{cluster_id}/budget", json={"compute_budget_flop": 5e24})
        )
    assert first == {
        "cluster_id": cluster_id,
        "compute_budget_flop": 5e24,
        "declared_at": "2026-03-10T12:00:00Z",
    }
    reg.context.clock = lambda: NOW + timedelta(hours=1)
    with reg.client(reg.admin_token) as http:
        revised = ok(
            http.put(f"/v1/clusters/{cluster_id}/budget", json={"compute_budget_flop": 8e24})
        )
    assert (revised["compute_budget_flop"], revised["declared_at"]) == (
        8e24,
        "2026-03-10T13:00:00Z",
    )
    for token in (
        world.operator_token,
        reg.admin_token,
        reg.token(Role.INSPECTOR),
        reg.token(Role.PARTNER),
    ):
        with reg.client(token) as http:
            seen = ok(http.get(f"/v1/clusters/{cluster_id}/obligations"))
        assert seen["budget"]["compute_budget_flop"] == 8e24  # the latest revision
    fact = next(c for c in snapshot(world, NOW + timedelta(days=1)).clusters)
    assert (fact.cluster_id, fact.compute_budget_flop) == (cluster_id, 8e24)
    # Every revision is kept, and a run cut at a log size between them (an audit of an older
    # run) judges by the revision logged by then, as a partner replaying the log does.
    with reg.context.sessions() as s:
        revisions = ConditionsBudgetsRepository(s).budget_revisions(cluster_id)
        assert [(r.compute_budget_flop, r.declared_by) for r in revisions] == [
            (5e24, "test operator"),
            (8e24, "test admin"),
        ]
        first_logged = revisions[0].log_index
        assert first_logged is not None
        cut = VerificationService(s, reg.context.clock).snapshot(
            NOW + timedelta(days=1), log_size=first_logged + 1
        )
    assert [c.compute_budget_flop for c in cut.clusters] == [5e24]


def test_operator_files_threshold_notifications(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    cluster_id = declare_cluster(world, ["NV-1"])
    path = f"/v1/clusters/{cluster_id}/notifications"
    with reg.client(world.operator_token) as http:
        first = ok(http.post(path, json={"threshold_flop": 1e25, "note": "  crossed 1e25  "}), 201)
        stated = ok(
            http.post(path, json={"threshold_flop": 1e26, "notified_at": "2026-03-09T08:00:00Z"}),
            201,
        )
    assert (first["threshold_flop"], first["note"], first["notified_at"]) == (
        1e25,
        "crossed 1e25",
        "2026-03-10T12:00:00Z",
    )
    assert first["declared_by"] == "test operator"
    # The operator may state an earlier notice, but the registry records when it received it.
    assert (stated["notified_at"], stated["created_at"]) == (
        "2026-03-09T08:00:00Z",
        "2026-03-10T12:00:00Z",
    )
    with reg.client(reg.token(Role.PARTNER)) as http:
        seen = ok(http.get(f"/v1/clusters/{cluster_id}/obligations"))
    assert [n["id"] for n in seen["notifications"]] == [first["id"], stated["id"]]
    # The verifier judges notices by receipt: a backdated one does not count before it was filed.
    assert snapshot(world, NOW - timedelta(minutes=1)).clusters[0].notifications == ()
    facts = snapshot(world, NOW + timedelta(minutes=1)).clusters[0].notifications
    assert sorted((n.threshold_flop, n.received_at) for n in facts) == [(1e25, NOW), (1e26, NOW)]


def test_budget_and_notification_refusals_write_nothing(world: World) -> None:
    reg = world.registry
    world.enroll("NV-1")
    cluster_id = declare_cluster(world, ["NV-1"])
    _, other_operator, _ = add_operator(reg, "Other Compute")
    budget = f"/v1/clusters/{cluster_id}/budget"
    notify = f"/v1/clusters/{cluster_id}/notifications"
    obligations = f"/v1/clusters/{cluster_id}/obligations"
    inspector, partner = reg.token(Role.INSPECTOR), reg.token(Role.PARTNER)
    for method, path, body in (
        ("PUT", budget, {"compute_budget_flop": 1e24}),
        ("POST", notify, {"threshold_flop": 1e25}),
    ):
        for token, expected in (
            (other_operator, (403, "not_your_operator")),
            (world.vendor_token, (403, "role_not_allowed")),
            (inspector, (403, "role_not_allowed")),
            (partner, (403, "role_not_allowed")),
            (None, (401, "unauthenticated")),
        ):
            refused(reg, token, method, path, expected, json=body)
        unknown = path.replace(f"/{cluster_id}/", "/999/")
        refused(reg, world.operator_token, method, unknown, (404, "unknown_cluster"), json=body)
    for bad in (
        {"compute_budget_flop": 0},
        {"compute_budget_flop": -1e24},
        {"compute_budget_flop": 1e41},
        {"compute_budget_flop": "lots"},
        {},
        {"compute_budget_flop": 1e24, "extra": 1},
    ):
        refused(reg, world.operator_token, "PUT", budget, (422, "invalid_request"), json=bad)
    bad_notices: tuple[dict[str, object], ...] = (
        {"threshold_flop": 0},
        {"threshold_flop": 1e41},
        {},
        {"threshold_flop": 1e25, "note": "x" * 2001},
        {"threshold_flop": 1e25, "notified_at": "2026-03-09T08:00:00"},
        {"threshold_flop": 1e25, "extra": 1},
    )
    for bad_notice in bad_notices:
        refused(
            reg, world.operator_token, "POST", notify, (422, "invalid_request"), json=bad_notice
        )
    refused(
        reg,
        world.operator_token,
        "POST",
        notify,
        (422, "notification_in_future"),
        json={"threshold_flop": 1e25, "notified_at": "2026-03-10T12:00:01Z"},
    )
    refused(
        reg,
        world.operator_token,
        "PUT",
        "/v1/clusters/not-a-number/budget",
        (422, "invalid_request"),
        json={"compute_budget_flop": 1e24},
    )
    # Reading the obligations: another operator and a vendor may not; unknown cluster.
    refused(reg, other_operator, "GET", obligations, (403, "not_your_operator"))
    refused(reg, world.vendor_token, "GET", obligations, (403, "role_not_allowed"))
    refused(reg, reg.token(Role.METER), "GET", obligations, (403, "role_not_allowed"))
    refused(reg, inspector, "GET", "/v1/clusters/999/obligations", (404, "unknown_cluster"))
    with reg.client(inspector) as http:
        assert ok(http.get(obligations)) == {
            "cluster_id": cluster_id,
            "budget": None,
            "notifications": [],
        }


# -- facilities' declared non-IT load ---------------------------------------------------------


def test_facility_declares_pue_and_non_it_load(world: World) -> None:
    reg = world.registry
    body = {
        "operator_id": world.operator_id,
        "name": "Abilene site 2",
        "country": "US",
        "latitude": 32.45,
        "longitude": -99.73,
        "declared_power_kw": 5_000,
        "pue": 1.2,
        "non_it_load_kw": 350.5,
    }
    with reg.client(world.operator_token) as http:
        created = ok(http.post("/v1/facilities", json=body), 201)
        detail = ok(http.get(f"/v1/facilities/{created['id']}"))
    assert (created["pue"], created["non_it_load_kw"]) == (1.2, 350.5)
    assert detail["facility"]["non_it_load_kw"] == 350.5
    facts = snapshot(world, NOW).facilities
    assert (facts[created["id"]].pue, facts[created["id"]].non_it_load_kw) == (1.2, 350.5)
    # Left out, the non-IT load is zero (all overhead is in the PUE).
    assert facts[world.facility_id].non_it_load_kw == 0.0
    for bad in ({"non_it_load_kw": -1}, {"non_it_load_kw": "some"}, {"pue": 0.9}):
        refused(
            reg,
            world.operator_token,
            "POST",
            "/v1/facilities",
            (422, "invalid_request"),
            json={**body, "name": "Abilene site 3", **bad},
        )
