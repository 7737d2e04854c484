"""The inventory read API over real HTTP, on SQLite and PostgreSQL: chips and clusters by
filter with totals and operator names, each role's view, a chip's series, a facility's power
balance against a signed meter reading, and decoded log entries with their checked signers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from attestation.meter import MeterReading, sign_reading
from registry.api.schemas.declarations import ChipPublic
from registry.api.schemas.inventory import ChipListItem, ChipsPage
from registry.auth import Role
from registry.repositories.inventory import InventoryRepository
from registry.services.entries import EntryDecoder
from registry.services.log import TransparencyLog
from registry.workers.rollup import roll_up_totals
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import (
    T0,
    WINDOW,
    World,
    add_operator,
    key,
    make_world,
    ok,
    operator_key,
    signed,
)

METER_KEY = key("meter:abilene")


def get(registry: LiveRegistry, token: str, path: str, **params: Any) -> Any:
    with registry.client(token) as http:
        return ok(http.get(path, params=params))


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    live_registry.context.clock = lambda: T0 + timedelta(hours=6)
    w = make_world(live_registry)
    other_id, other_token, other_facility = add_operator(live_registry, "Espoo AI", "FI")
    w.other = (other_id, other_token, other_facility)  # type: ignore[attr-defined]
    for n in range(3):
        w.enroll(f"NV-A{n}")
    w.enroll("NV-X", install=False)
    w.enroll("NV-F", install=False)
    with live_registry.client(other_token) as http:
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": "NV-F",
                        "facility_id": other_facility,
                        "installed_at": "2026-02-01T00:00:00Z",
                    },
                    operator_key("Espoo AI"),
                ),
            ),
            201,
        )
        ok(
            http.post(
                "/v1/clusters",
                json=signed(
                    "cluster",
                    {
                        "facility_id": other_facility,
                        "name": "espoo run",
                        "purpose": "pretraining",
                        "chip_ids": ["NV-F"],
                        "start": "2026-03-01T00:00:00Z",
                        "end": "2026-04-01T00:00:00Z",
                    },
                    operator_key("Espoo AI"),
                ),
            ),
            201,
        )
    # Two windows of reports from the Abilene chips.
    for _ in range(2):
        envelopes = [w.chips[f"NV-A{n}"].report(utilization=0.25 * (n + 1)) for n in range(3)]
        assert ok(w.post(envelopes))["accepted"] == 3
    return w


def test_chips_filtered_paginated_with_operator_names(world: World) -> None:
    reg = world.registry
    inspector = reg.token(Role.INSPECTOR)
    page = get(reg, inspector, "/v1/chips")
    assert page["total"] == 5
    by_id = {c["chip_id"]: c for c in page["chips"]}
    assert by_id["NV-A0"]["operator_name"] == "Abilene Compute"
    assert by_id["NV-A0"]["country"] == "US" and by_id["NV-A0"]["vendor"] == "NVIDIA"
    assert by_id["NV-F"]["operator_name"] == "Espoo AI"
    assert by_id["NV-X"]["facility_id"] is None
    assert [c["chip_id"] for c in get(reg, inspector, "/v1/chips", country="FI")["chips"]] == [
        "NV-F"
    ]
    second = get(reg, inspector, "/v1/chips", limit=2, offset=2)
    assert (second["total"], [c["chip_id"] for c in second["chips"]]) == (5, ["NV-A2", "NV-F"])
    assert get(reg, inspector, "/v1/chips", status="uninstalled")["total"] == 1
    assert get(reg, inspector, "/v1/chips", facility_id=world.facility_id)["total"] == 3
    assert get(reg, inspector, "/v1/chips", operator_id=world.operator_id)["total"] == 3
    assert get(reg, inspector, "/v1/chips", model="H100-SXM5-80GB")["total"] == 5
    assert get(reg, inspector, "/v1/chips", model="MI300X")["total"] == 0


def test_each_role_sees_what_the_access_rules_allow(world: World) -> None:
    reg = world.registry
    other_id, other_token, _ = world.other  # type: ignore[attr-defined]
    mine = get(reg, world.operator_token, "/v1/chips")
    assert [c["chip_id"] for c in mine["chips"]] == ["NV-A0", "NV-A1", "NV-A2"]
    assert mine["total"] == 3
    refused(
        reg,
        world.operator_token,
        "GET",
        "/v1/chips",
        (403, "not_your_operator"),
        params={"operator_id": other_id},
    )
    assert get(reg, world.vendor_token, "/v1/chips")["total"] == 5
    refused(reg, reg.token(Role.METER), "GET", "/v1/chips", (403, "role_not_allowed"))
    refused(reg, None, "GET", "/v1/chips", (401, "unauthenticated"))
    refused(
        reg,
        world.operator_token,
        "GET",
        "/v1/chips",
        (422, "invalid_request"),
        params={"status": "lost"},
    )
    # Clusters: the inspector sees all, each operator its own, a vendor none.
    inspector = reg.token(Role.INSPECTOR)
    clusters = get(reg, inspector, "/v1/clusters")
    assert clusters["total"] == 1
    [c] = clusters["clusters"]
    assert (c["operator_name"], c["country"], c["chip_ids"]) == ("Espoo AI", "FI", ["NV-F"])
    assert get(reg, world.operator_token, "/v1/clusters")["total"] == 0
    assert get(reg, other_token, "/v1/clusters")["total"] == 1
    refused(reg, world.vendor_token, "GET", "/v1/clusters", (403, "role_not_allowed"))
    # Series and power balance follow the chip's and the facility's rules.
    refused(reg, other_token, "GET", "/v1/chips/NV-A0/series", (403, "not_your_chip"))
    refused(
        reg,
        other_token,
        "GET",
        f"/v1/facilities/{world.facility_id}/power-balance",
        (403, "not_your_operator"),
    )
    refused(reg, inspector, "GET", "/v1/chips/NOPE/series", (404, "unknown_chip"))
    refused(reg, inspector, "GET", "/v1/facilities/999/power-balance", (404, "unknown_facility"))
    # A facility names its operator.
    facility = get(reg, inspector, f"/v1/facilities/{world.facility_id}")
    assert facility["facility"]["operator_name"] == "Abilene Compute"


def test_chip_series_in_window_order(world: World) -> None:
    reg = world.registry
    series = get(reg, world.operator_token, "/v1/chips/NV-A1/series")
    points = series["points"]
    assert [p["seq"] for p in points] == [1, 2]
    assert [p["utilization"] for p in points] == [0.5, 0.5]
    assert points[0]["energy_j"] == pytest.approx(0.5 * 700 * WINDOW.total_seconds())
    assert (
        get(reg, world.operator_token, "/v1/chips/NV-A1/series", limit=1)["points"][0]["seq"] == 2
    )


def test_power_balance_against_a_meter_reading(world: World) -> None:
    reg = world.registry
    with reg.client(reg.admin_token) as http:
        meter = ok(
            http.post(
                "/v1/meters",
                json={
                    "name": "Abilene main meter",
                    "facility_id": world.facility_id,
                    "public_key": METER_KEY.public_key.to_b64(),
                },
            ),
            201,
        )
    reading = MeterReading(meter["id"], world.facility_id, T0, T0 + WINDOW, 9e8)
    with reg.client(reg.token(Role.METER)) as http:
        ok(http.post("/v1/meter-readings", json=sign_reading(reading, METER_KEY).to_dict()), 201)
    balance = get(
        reg, reg.token(Role.INSPECTOR), f"/v1/facilities/{world.facility_id}/power-balance"
    )
    assert balance["operator_name"] == "Abilene Compute"
    first, second = balance["windows"]
    seconds = WINDOW.total_seconds()
    reported = (0.25 + 0.5 + 0.75) * 700 * seconds
    assert first["reports"] == 3
    assert first["reported_chip_energy_j"] == pytest.approx(reported)
    assert first["expected_j"] == pytest.approx(reported * balance["pue"] + 0)
    assert first["metered_j"] == pytest.approx(9e8)
    assert first["capacity_j"] == pytest.approx(20_000 * 1000 * seconds * balance["pue"])
    assert second["metered_j"] is None


def test_decoded_entries_name_and_check_their_signers(world: World) -> None:
    reg = world.registry
    with reg.client() as http:
        entries = ok(http.get("/v1/log/entries", params={"start": 0, "end": 100}))["entries"]
        kinds: dict[str, int] = {}
        for e in entries:
            kinds.setdefault(e["kind"], e["index"])
        report = ok(http.get(f"/v1/log/entries/{kinds['usage_report']}/decoded"))
        install = ok(http.get(f"/v1/log/entries/{kinds['installation']}/decoded"))
        operator = ok(http.get(f"/v1/log/entries/{kinds['operator']}/decoded"))
        missing = http.get("/v1/log/entries/100000/decoded")
    assert report["payload_type"] == "application/vnd.in-toto+json"
    assert report["fields"]["subject"] == ["chip:NV-A0"] and report["fields"]["seq"] == 1
    [signer] = report["signers"]
    assert (signer["holder_type"], signer["holder_id"], signer["verified"]) == (
        "chip",
        "NV-A0",
        True,
    )
    assert install["signers"][0]["holder_type"] == "operator"
    assert install["signers"][0]["holder_name"] == "Abilene Compute"
    assert install["signers"][0]["verified"] is True
    assert operator["signers"] == [] and operator["fields"]["name"] == "Abilene Compute"
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_entry")


def test_decoding_many_entries_at_once_matches_one_by_one(world: World) -> None:
    """The console decodes a finding's evidence with decode_many (one query for the entries,
    three for all their signers): the same views as decoding each entry on its own, in the
    order asked, skipping indexes past the end of the log."""
    reg = world.registry
    with reg.context.sessions() as s:
        log = TransparencyLog(s, reg.context.log_signer)
        # Every stored entry decodes, integrated into the tree yet or not.
        size = log.sequenced_size()
        indexes = [size - 1, 0, *range(1, size - 1, 2), size + 5]
        one_by_one = [EntryDecoder(s).decode(log.entries(i, i + 1)[0]) for i in indexes[:-1]]
        many = EntryDecoder(s).decode_many(indexes)
    assert many == one_by_one
    signed_by = {v.holder_type for d in many for v in d.signers if v.verified}
    assert signed_by == {"chip", "operator"}


def test_partners_limited_to_aggregates_by_policy(world: World) -> None:
    reg = world.registry
    partner = reg.token(Role.PARTNER)
    inspector = reg.token(Role.INSPECTOR)
    assert get(reg, partner, "/v1/chips")["total"] == 5  # the default policy: full detail
    ctx = reg.context
    ctx.settings = ctx.settings.model_copy(update={"partner_aggregates_only": True})
    for path in (
        "/v1/chips",
        "/v1/chips/NV-A0",
        "/v1/chips/NV-A0/series",
        f"/v1/facilities/{world.facility_id}",
    ):
        refused(reg, partner, "GET", path, (403, "aggregates_only"))
        get(reg, inspector, path)  # inspectors keep the detail
    totals = get(reg, partner, "/v1/inventory/aggregates")
    by_facility = {f["facility_name"]: f for f in totals["facilities"]}
    assert by_facility["Abilene Compute site 1"]["chips"] == 3
    assert by_facility["Abilene Compute site 1"]["peak_tflops_bf16"] == pytest.approx(3 * 989.0)
    assert by_facility["Espoo AI site 1"]["chips"] == 1
    assert [(c["country"], c["facilities"], c["chips"]) for c in totals["countries"]] == [
        ("FI", 1, 1),
        ("US", 1, 3),
    ]
    get(reg, partner, f"/v1/facilities/{world.facility_id}/power-balance")  # an aggregate
    mine = get(reg, world.operator_token, "/v1/inventory/aggregates")
    assert [f["facility_name"] for f in mine["facilities"]] == ["Abilene Compute site 1"]


def test_chip_totals_count_each_chip_once_whatever_the_filters(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The total is counted by its own query, joining only what the filters need: it must
    equal the rows listed for every filter, also for a chip moved between two facilities
    (its past installation must not count twice)."""
    reg = world.registry
    with reg.client(world.operator_token) as http:
        second = ok(
            http.post(
                "/v1/facilities",
                json={
                    "operator_id": world.operator_id,
                    "name": "Abilene Campus 2",
                    "country": "US",
                    "latitude": 32.45,
                    "longitude": -99.73,
                    "declared_power_kw": 20_000,
                },
            ),
            201,
        )["id"]
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": "NV-A0",
                        "facility_id": second,
                        "installed_at": "2026-03-02T00:00:00Z",
                    },
                    world.operator_key,
                ),
            ),
            201,
        )
    inspector = reg.token(Role.INSPECTOR)
    other_id, _, other_facility = world.other  # type: ignore[attr-defined]
    expected = {
        (): ["NV-A0", "NV-A1", "NV-A2", "NV-F", "NV-X"],
        (("country", "US"),): ["NV-A0", "NV-A1", "NV-A2"],
        (("country", "FI"),): ["NV-F"],
        (("facility_id", world.facility_id),): ["NV-A1", "NV-A2"],
        (("facility_id", second),): ["NV-A0"],
        (("facility_id", other_facility), ("country", "FI")): ["NV-F"],
        (("operator_id", world.operator_id),): ["NV-A0", "NV-A1", "NV-A2"],
        (("operator_id", other_id), ("status", "installed")): ["NV-F"],
        (("status", "installed"),): ["NV-A0", "NV-A1", "NV-A2", "NV-F"],
        (("status", "uninstalled"),): ["NV-X"],
        (("status", "uninstalled"), ("country", "US")): [],
        (("model", "H100-SXM5-80GB"), ("country", "US")): ["NV-A0", "NV-A1", "NV-A2"],
    }
    # Up to _MERGED_FACILITIES facilities, a page is merged from each one's index; above, the
    # current installations are walked in chip id order: both ways give the same pages.
    for merged in (64, 1):
        monkeypatch.setattr("registry.repositories.inventory._MERGED_FACILITIES", merged)
        for filters, chips in expected.items():
            page = get(reg, inspector, "/v1/chips", limit=1000, **dict(filters))
            assert [c["chip_id"] for c in page["chips"]] == chips, filters
            assert page["total"] == len(chips), filters
            assert get(reg, inspector, "/v1/chips", limit=1, **dict(filters))["total"] == len(chips)
            # Keyset paging (after=the last chip id of a page) walks the same chips, same total.
            walked, after = [], None
            while True:
                params = dict(filters) | ({"after": after} if after else {})
                page = get(reg, inspector, "/v1/chips", limit=2, **params)
                assert page["total"] == len(chips), filters
                if not page["chips"]:
                    break
                walked += [c["chip_id"] for c in page["chips"]]
                after = page["chips"][-1]["chip_id"]
            assert walked == chips, filters
            # Offset paging too (each page's ids read from an index, several facilities merged).
            for offset in range(len(chips) + 1):
                page = get(reg, inspector, "/v1/chips", limit=2, offset=offset, **dict(filters))
                assert [c["chip_id"] for c in page["chips"]] == chips[offset : offset + 2], filters
                assert (page["total"], page["offset"]) == (len(chips), offset), filters
        # After a chip id, with an offset on top, across the two US facilities.
        page = get(reg, inspector, "/v1/chips", country="US", after="NV-A0", limit=1, offset=1)
        assert [c["chip_id"] for c in page["chips"]] == ["NV-A2"]


def test_chip_list_is_byte_for_byte_the_models_rendering(world: World) -> None:
    """GET /v1/chips renders its page from plain rows with orjson: the same bytes as the
    ChipsPage model renders from the chips' ORM objects (the response model of the route),
    for each kind of filter, with a decommissioned, a revoked and an uninstalled chip."""
    reg = world.registry
    with reg.client(world.operator_token) as http:
        ok(http.post("/v1/chips/NV-A1/decommission", json={"reason": "rack \u00e9 retired"}))
    with reg.client(world.vendor_token) as http:
        ok(http.post("/v1/chips/NV-A2/revoke", json={"reason": "key extracted"}))
    inspector = reg.token(Role.INSPECTOR)
    other_id, _, other_facility = world.other  # type: ignore[attr-defined]
    cases: list[dict[str, Any]] = [
        {},
        {"country": "US"},
        {"country": "FI", "status": "installed"},
        {"facility_id": world.facility_id, "limit": 2, "offset": 1},
        {"operator_id": other_id},
        {"status": "uninstalled"},
        {"model": "H100-SXM5-80GB", "after": "NV-A0"},
        {"facility_id": other_facility, "country": "US"},
    ]
    for params in cases:
        with reg.client(inspector) as http:
            response = http.get("/v1/chips", params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        limit, offset = params.get("limit", 100), params.get("offset", 0)
        status = params.get("status")
        with reg.context.sessions() as s:
            repo = InventoryRepository(s)
            rows, total = repo.chips(
                country=params.get("country"),
                facility_id=params.get("facility_id"),
                operator_id=params.get("operator_id"),
                model=params.get("model"),
                installed=None if status is None else status == "installed",
                after=params.get("after"),
                limit=limit,
                offset=offset,
            )
            names = repo.operator_names(
                [r.installation.facility.operator_id for r in rows if r.installation]
            )
            items = []
            for r in rows:
                inst = r.installation
                op = inst.facility.operator_id if inst else None
                items.append(
                    ChipListItem(
                        **ChipPublic.model_validate(r.chip).model_dump(),
                        vendor=r.chip.vendor.name,
                        facility_id=inst.facility_id if inst else None,
                        facility_name=inst.facility.name if inst else None,
                        country=inst.facility.country if inst else None,
                        operator_id=op,
                        operator_name=names[op] if op else None,
                        installed_at=inst.installed_at if inst else None,
                    )
                )
            model = ChipsPage(total=total, limit=limit, offset=offset, chips=items)
        assert response.content == model.model_dump_json().encode(), params
    listed = get(reg, inspector, "/v1/chips")["chips"]
    by_id = {c["chip_id"]: c for c in listed}
    assert by_id["NV-A1"]["decommission_reason"] == "rack \u00e9 retired"
    assert by_id["NV-A2"]["revoked_at"] is not None


def test_facility_detail_pages_its_chips_with_their_number(world: World) -> None:
    """GET /v1/facilities/{id} is bounded: one page of chips (keyset ``after``), with the
    number and total peak of every chip there; the same before and after a roll-up step."""
    reg = world.registry
    inspector = reg.token(Role.INSPECTOR)
    path = f"/v1/facilities/{world.facility_id}"
    for rolled in (False, True):
        if rolled:
            roll_up_totals(reg.context.sessions, reg.context.clock)
        first = get(reg, inspector, path, limit=2)
        assert (first["chip_count"], first["limit"], first["next_after"]) == (3, 2, "NV-A1")
        assert first["peak_tflops_bf16_total"] == pytest.approx(3 * 989.0)
        assert [c["chip_id"] for c in first["chips"]] == ["NV-A0", "NV-A1"]
        rest = get(reg, inspector, path, limit=2, after=first["next_after"])
        assert [c["chip_id"] for c in rest["chips"]] == ["NV-A2"]
        assert (rest["chip_count"], rest["next_after"]) == (3, None)
        assert [c["chip_id"] for c in get(reg, world.operator_token, path)["chips"]] == [
            "NV-A0",
            "NV-A1",
            "NV-A2",
        ]
    for params in ({"limit": 0}, {"limit": 1001}, {"after": "bad id"}):
        refused(reg, inspector, "GET", path, (422, "invalid_request"), params=params)
