"""Inspector queries over real HTTP, on SQLite and PostgreSQL: chips with custody and reports,
facilities, and the findings of an on-demand verifier run over a fleet with planted silence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from attestation.certs import create_vendor_root
from registry.auth import Role
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import (
    T0,
    VALID_FROM,
    VALID_TO,
    WINDOW,
    World,
    add_operator,
    key,
    make_world,
    ok,
    operator_key,
    signed,
)

# Chip A reports four windows (to T0+1h); B reports one (to T0+15m); C, at another operator in
# another country, never reports. At AS_OF the demo policy's 45-minute grace has run out for B
# (silent 55 minutes) and C (silent since February), not for A (silent 10 minutes).
AS_OF = T0 + 4 * WINDOW + (WINDOW * 2) / 3
SILENT_KIND = "chip_silent"


@dataclass
class Fleet:
    world: World
    other_operator_id: int
    other_token: str
    other_facility_id: int
    first_run: dict[str, Any]


def get(registry: LiveRegistry, token: str, path: str, **params: Any) -> Any:
    with registry.client(token) as http:
        return ok(http.get(path, params=params))


def run_verifier(registry: LiveRegistry, token: str, policy: str = "demo") -> dict[str, Any]:
    with registry.client(token) as http:
        result: dict[str, Any] = ok(
            http.post("/v1/verifier/runs", json={"policy": policy, "as_of": AS_OF.isoformat()})
        )
    return result


def finding_subjects(registry: LiveRegistry, token: str, **filters: Any) -> list[str]:
    page = get(registry, token, "/v1/findings", **filters)
    return sorted(f["subject_id"] for f in page["findings"])


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    return make_world(live_registry)


@pytest.fixture
def fleet(world: World) -> Fleet:
    reg = world.registry
    other_id, other_token, other_facility = add_operator(reg, "Toronto Compute", country="CA")
    a, b = world.enroll("NV-A"), world.enroll("NV-B")
    world.enroll("NV-C", install=False)
    with reg.client(other_token) as http:
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": "NV-C",
                        "facility_id": other_facility,
                        # Silent past the 45-minute grace period, not yet unaccounted for (6 h).
                        "installed_at": "2026-03-01T00:00:00Z",
                    },
                    operator_key("Toronto Compute"),
                ),
            ),
            201,
        )
    result = ok(world.post([a.report() for _ in range(4)] + [b.report()]))
    assert result["accepted"] == 5
    first = run_verifier(reg, reg.token(Role.INSPECTOR))
    return Fleet(world, other_id, other_token, other_facility, first)


# -- chips ---------------------------------------------------------------------------------


def test_chip_detail_shows_vendor_custody_and_latest_reports(world: World) -> None:
    chip = world.enroll("NV-0001")
    posted = ok(world.post([chip.report(utilization=u) for u in (0.25, 0.5, 0.75)]))
    digests = [r["digest"] for r in posted["results"]]
    detail = get(world.registry, world.operator_token, "/v1/chips/NV-0001")

    assert detail["vendor"] == "NVIDIA"
    assert detail["chip"]["vendor_id"] == world.vendor_id
    assert detail["chip"]["last_seq"] == 3
    assert detail["facility"]["id"] == world.facility_id
    assert detail["facility"]["name"] == "Abilene Compute site 1"
    current = detail["current_installation"]
    assert (current["facility_id"], current["removed_at"]) == (world.facility_id, None)
    assert [i["id"] for i in detail["custody"]] == [current["id"]]
    reports = detail["latest_reports"]
    assert [r["seq"] for r in reports] == [3, 2, 1]
    assert [r["digest"] for r in reports] == digests[::-1]
    assert [r["utilization"] for r in reports] == [0.75, 0.5, 0.25]
    indexes = [r["log_index"] for r in reports]
    assert indexes == [indexes[2] + 2, indexes[2] + 1, indexes[2]]
    assert reports[0]["window_end"].startswith("2026-03-01T00:45:00")

    limited = get(world.registry, world.operator_token, "/v1/chips/NV-0001", reports=1)
    assert [r["seq"] for r in limited["latest_reports"]] == [3]


def test_chip_readers_are_its_vendor_custodian_and_inspectors(world: World) -> None:
    reg = world.registry
    world.enroll("NV-0001")
    _, other_token, _ = add_operator(reg, "Other Compute")
    refused(reg, other_token, "GET", "/v1/chips/NV-0001", (403, "not_your_chip"))
    for token in (world.vendor_token, reg.token(Role.INSPECTOR), reg.token(Role.PARTNER)):
        assert get(reg, token, "/v1/chips/NV-0001")["chip"]["chip_id"] == "NV-0001"


def test_another_vendor_may_not_read_the_chip(world: World) -> None:
    reg = world.registry
    world.enroll("NV-0001")
    root = create_vendor_root("AMD", key("vendor:AMD"), not_before=VALID_FROM, not_after=VALID_TO)
    with reg.client(reg.admin_token) as http:
        amd = ok(
            http.post("/v1/vendors", json={"name": "AMD", "root_certificate_pem": root.decode()}),
            201,
        )
    amd_token = reg.token(Role.VENDOR, vendor_id=amd["id"])
    refused(reg, amd_token, "GET", "/v1/chips/NV-0001", (403, "not_your_chip"))


def test_unknown_or_malformed_chip_id(world: World) -> None:
    reg = world.registry
    refused(reg, reg.admin_token, "GET", "/v1/chips/NV-9999", (404, "unknown_chip"))
    for bad in ("-leading-dash", "x" * 65, "has space", "semi;colon"):
        problem = refused(reg, reg.admin_token, "GET", f"/v1/chips/{bad}", (422, "invalid_request"))
        assert problem["errors"][0]["loc"] == ["path", "chip_id"]
    refused(
        reg,
        reg.admin_token,
        "GET",
        "/v1/chips/NV-9999",
        (422, "invalid_request"),
        params={"reports": 101},
    )


# -- facilities ----------------------------------------------------------------------------


def test_facility_list_and_detail(world: World) -> None:
    reg = world.registry
    other_id, other_token, other_facility = add_operator(reg, "Toronto Compute", country="CA")
    for chip_id in ("NV-0001", "NV-0002", "NV-0003"):
        world.enroll(chip_id)
    inspector = reg.token(Role.INSPECTOR)

    assert [f["id"] for f in get(reg, inspector, "/v1/facilities", country="US")] == [
        world.facility_id
    ]
    assert [f["id"] for f in get(reg, inspector, "/v1/facilities", country="CA")] == [
        other_facility
    ]
    assert get(reg, inspector, "/v1/facilities", country="FR") == []
    assert len(get(reg, inspector, "/v1/facilities")) == 2
    # An operator lists only its own facilities, whatever the filter.
    assert get(reg, other_token, "/v1/facilities", country="US") == []
    refused(
        reg, inspector, "GET", "/v1/facilities", (422, "invalid_request"), params={"country": "us"}
    )

    detail = get(reg, inspector, f"/v1/facilities/{world.facility_id}")
    assert detail["facility"]["country"] == "US"
    assert detail["operator"] == "Abilene Compute"
    assert detail["chip_count"] == 3
    assert detail["peak_tflops_bf16_total"] == pytest.approx(3 * 989.0)
    assert [c["chip_id"] for c in detail["chips"]] == ["NV-0001", "NV-0002", "NV-0003"]
    empty = get(reg, other_token, f"/v1/facilities/{other_facility}")
    assert (empty["chip_count"], empty["peak_tflops_bf16_total"], empty["chips"]) == (0, 0, [])
    assert empty["facility"]["operator_id"] == other_id

    refused(
        reg, other_token, "GET", f"/v1/facilities/{world.facility_id}", (403, "not_your_operator")
    )
    refused(reg, world.vendor_token, "GET", "/v1/facilities", (403, "role_not_allowed"))
    refused(
        reg, inspector, "GET", f"/v1/facilities/{other_facility + 100}", (404, "unknown_facility")
    )


# -- findings ------------------------------------------------------------------------------


def test_verifier_run_flags_the_silent_chips(fleet: Fleet) -> None:
    run = fleet.first_run
    assert (run["policy_id"], run["policy_version"]) == ("demo", "2026.3")
    assert run["as_of"].startswith("2026-03-01T01:10:00")
    assert (run["reports_examined"], run["findings"], run["new_findings"]) == (5, 2, 2)

    reg = fleet.world.registry
    page = get(reg, reg.admin_token, "/v1/findings")["findings"]
    by_chip = {f["subject_id"]: f for f in page}
    assert sorted(by_chip) == ["NV-B", "NV-C"]
    for f in page:
        assert f["rule_id"] == "chip.silent"
        assert (f["policy_id"], f["policy_version"]) == ("demo", "2026.3")
        assert (f["kind"], f["severity"], f["status"]) == (SILENT_KIND, "high", "open")
        assert "45 minutes" in f["citation"]
        assert isinstance(f["evidence"], list)
    b, c = by_chip["NV-B"], by_chip["NV-C"]
    # B's last report (logged after A's four) is the evidence; C never reported.
    b_detail = get(reg, reg.admin_token, "/v1/chips/NV-B")
    assert b["evidence"] == [b_detail["latest_reports"][0]["log_index"]]
    assert (b["details"]["last_seq"], b["details"]["silent_for_seconds"]) == (1, 55 * 60)
    assert c["evidence"] == []
    assert c["details"]["never_reported"] is True
    assert (b["facility_id"], b["country"]) == (fleet.world.facility_id, "US")
    assert (c["facility_id"], c["country"]) == (fleet.other_facility_id, "CA")


def test_findings_filters(fleet: Fleet) -> None:
    reg = fleet.world.registry
    token = reg.token(Role.PARTNER)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["NV-B", "NV-C"]),
        ({"facility_id": fleet.world.facility_id}, ["NV-B"]),
        ({"facility_id": fleet.other_facility_id}, ["NV-C"]),
        ({"facility_id": fleet.other_facility_id + 100}, []),
        ({"country": "US"}, ["NV-B"]),
        ({"country": "CA"}, ["NV-C"]),
        ({"country": "FR"}, []),
        ({"kind": SILENT_KIND}, ["NV-B", "NV-C"]),
        ({"kind": "cluster_undeclared"}, []),
        ({"severity": "high"}, ["NV-B", "NV-C"]),
        ({"severity": "critical"}, []),
        ({"status": "open"}, ["NV-B", "NV-C"]),
        ({"status": "resolved"}, []),
        ({"country": "CA", "severity": "high", "status": "open"}, ["NV-C"]),
        ({"limit": 1}, ["NV-B"]),
        ({"limit": 1, "offset": 1}, ["NV-C"]),
    ]
    for filters, expected in cases:
        assert finding_subjects(reg, token, **filters) == expected, filters


def test_findings_reject_bad_filters(fleet: Fleet) -> None:
    reg = fleet.world.registry
    for params in (
        {"severity": "urgent"},
        {"status": "closed"},
        {"country": "usa"},
        {"facility_id": "one"},
        {"limit": 0},
        {"offset": -1},
    ):
        problem = refused(
            reg, reg.admin_token, "GET", "/v1/findings", (422, "invalid_request"), params=params
        )
        assert problem["errors"][0]["loc"] == ["query", *params]


def test_findings_readers(fleet: Fleet) -> None:
    reg = fleet.world.registry
    for role in (Role.INSPECTOR, Role.PARTNER):
        assert finding_subjects(reg, reg.token(role)) == ["NV-B", "NV-C"]
    # An operator sees the findings at its own facilities only.
    assert finding_subjects(reg, fleet.world.operator_token) == ["NV-B"]
    assert finding_subjects(reg, fleet.other_token) == ["NV-C"]
    refused(reg, fleet.world.vendor_token, "GET", "/v1/findings", (403, "role_not_allowed"))


def test_verifier_runs_are_for_inspectors_and_admins(fleet: Fleet) -> None:
    reg = fleet.world.registry
    body = {"policy": "demo", "as_of": AS_OF.isoformat()}
    for token in (fleet.world.vendor_token, fleet.world.operator_token, reg.token(Role.PARTNER)):
        refused(reg, token, "POST", "/v1/verifier/runs", (403, "role_not_allowed"), json=body)
    refused(
        reg,
        reg.admin_token,
        "POST",
        "/v1/verifier/runs",
        (422, "unknown_policy"),
        json={"policy": "lenient", "as_of": AS_OF.isoformat()},
    )
    for bad in ({"policy": "Demo!"}, {"policy": "demo", "as_of": "2026-03-01T01:00:00"}, {"x": 1}):
        refused(
            reg, reg.admin_token, "POST", "/v1/verifier/runs", (422, "invalid_request"), json=bad
        )


def test_second_run_adds_no_findings(fleet: Fleet) -> None:
    reg = fleet.world.registry
    before = get(reg, reg.admin_token, "/v1/findings")["findings"]
    again = run_verifier(reg, reg.admin_token)
    assert (again["findings"], again["new_findings"]) == (fleet.first_run["findings"], 0)
    after = get(reg, reg.admin_token, "/v1/findings")["findings"]
    assert [(f["id"], f["fingerprint"]) for f in after] == [
        (f["id"], f["fingerprint"]) for f in before
    ]
