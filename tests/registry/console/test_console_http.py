"""The console over real HTTP, on SQLite and PostgreSQL: login to a server-side session,
cookie flags, CSRF on every form, each role's view, the finding lifecycle through a form,
CSV numbers, logout and revocation, and the record of who read what."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from attestation.note import NoteVerifier
from audit.core import TrustPolicy
from audit.exports import cited_indexes, verify_export
from registry.auth import Role
from registry.db.models import ApiToken, ConsoleSession, Finding, FindingTransition
from registry.services.log import TransparencyLog
from tests.conftest import LiveRegistry
from tests.registry.checks import row_counts
from tests.registry.factories import T0, WINDOW, World, add_operator, make_world, ok
from tests.registry.logtools import wait_checkpoint
from tests.registry.test_landmarks_meters import NOW, measure, post, register

AS_OF = T0 + 4 * WINDOW + (WINDOW * 2) / 3


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    a, b = w.enroll("NV-A"), w.enroll("NV-B")
    assert ok(w.post([a.report(utilization=0.25), b.report(utilization=0.75)]))["accepted"] == 2
    for _ in range(3):
        assert ok(w.post([a.report(utilization=0.5)]))["accepted"] == 1
    inspector = live_registry.token(Role.INSPECTOR)
    with live_registry.client(inspector) as http:
        ok(http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()}))
    return w


def browser(registry: LiveRegistry) -> httpx.Client:
    return httpx.Client(base_url=registry.url, follow_redirects=False, timeout=30)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def login(registry: LiveRegistry, token: str) -> tuple[httpx.Client, str]:
    """A logged-in client and its session's CSRF secret."""
    client = browser(registry)
    form = client.get("/console/login")
    r = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": token})
    assert (r.status_code, r.headers["location"]) == (303, "/console"), r.text
    page = client.get("/console")
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)


def silent_finding(registry: LiveRegistry) -> int:
    with registry.context.sessions() as s:
        return int(s.scalar(select(Finding.id).where(Finding.subject_id == "NV-B")) or 0)


def test_login_sets_an_opaque_httponly_session(world: World) -> None:
    reg = world.registry
    with browser(reg) as client:
        assert client.get("/").headers["location"] == "/console"
        assert client.get("/console").headers["location"] == "/console/login"
        form = client.get("/console/login")
        # No CSRF cookie echoed: refused, nothing written.
        before = row_counts(reg)
        fresh = browser(reg)
        refused = fresh.post(
            "/console/login", data={"csrf": csrf_of(form.text), "token": reg.admin_token}
        )
        assert refused.status_code == 403 and "bad_csrf" in refused.text
        assert row_counts(reg) == before
        bad = client.post("/console/login", data={"csrf": csrf_of(form.text), "token": "nope"})
        assert bad.headers["location"] == "/console/login?error=invalid_token"
        assert row_counts(reg) == before
    client, _ = login(reg, world.operator_token)
    cookie = client.cookies["chipreg_console"]
    with reg.context.sessions() as s:
        stored = s.scalars(select(ConsoleSession.id_hash)).all()
    assert len(stored) == 1 and cookie not in stored[0]  # only its hash is kept
    with browser(reg) as again:
        form = again.get("/console/login")
        r = again.post(
            "/console/login", data={"csrf": csrf_of(form.text), "token": reg.admin_token}
        )
        flags = r.headers["set-cookie"].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/console" in flags


def test_inspector_pages_csv_and_the_lifecycle_form(world: World) -> None:
    reg = world.registry
    client, csrf = login(reg, reg.token(Role.INSPECTOR))
    finding_id = silent_finding(reg)
    for path in (
        "/console",
        "/console/findings",
        "/console/findings?severity=medium&status=open&country=US",
        f"/console/findings/{finding_id}",
        "/console/chips",
        "/console/chips/NV-A",
        "/console/facilities",
        f"/console/facilities/{world.facility_id}",
        "/console/log",
        "/console/log/0",
    ):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text)
    assert 'id="ingest">5 reports accepted in the last hour' in client.get("/console").text
    assert client.get("/console/chips/NOPE").status_code == 404
    assert client.get("/console/findings?since=yesterday").status_code == 400
    series = client.get("/console/chips/NV-A/series.csv")
    rows = list(csv.DictReader(io.StringIO(series.text)))
    assert [float(r["utilization"]) for r in rows] == [0.25, 0.5, 0.5, 0.5]
    balance = client.get(f"/console/facilities/{world.facility_id}/power-balance.csv")
    first = next(csv.DictReader(io.StringIO(balance.text)))
    assert float(first["reported_chip_energy_j"]) == pytest.approx((0.25 + 0.75) * 700 * 900)
    found = client.get("/console/log", params={"q": "0"})
    assert found.headers["location"] == "/console/log/0"

    path = f"/console/findings/{finding_id}/transition"
    before = row_counts(reg)
    assert client.post(path, data={"to": "acknowledged", "note": "x"}).status_code == 403
    assert client.post(path, data={"to": "acknowledged", "csrf": "forged"}).status_code == 403
    wrong_type = client.post(path, json={"to": "acknowledged", "csrf": csrf})
    assert wrong_type.status_code == 400
    # Nothing changed but the record of the reads above.
    after = row_counts(reg)
    assert {k: v for k, v in after.items() if k != "read_accesses"} == {
        k: v for k, v in before.items() if k != "read_accesses"
    }
    done = client.post(path, data={"to": "acknowledged", "note": "looking", "csrf": csrf})
    assert (done.status_code, done.headers["location"]) == (303, f"/console/findings/{finding_id}")
    page = client.get(done.headers["location"]).text
    assert 'id="finding-status">acknowledged<' in page and "looking" in page
    with reg.context.sessions() as s:
        [t] = s.scalars(select(FindingTransition)).all()
    assert (t.actor_role, t.note) == ("inspector", "looking")
    no_note = client.post(path, data={"to": "resolved", "note": " ", "csrf": csrf})
    assert no_note.status_code == 422 and "note_required" in no_note.text


def test_operator_sees_only_its_own(world: World) -> None:
    reg = world.registry
    _, other_token, other_facility = add_operator(reg, "Toronto Compute", country="CA")
    client, _ = login(reg, other_token)
    assert client.get("/console/chips/NV-A").status_code == 403
    assert client.get(f"/console/facilities/{world.facility_id}").status_code == 403
    assert client.get(f"/console/findings/{silent_finding(reg)}").status_code == 403
    assert "NV-A" not in client.get("/console/chips").text
    assert "NV-B" not in client.get("/console/findings").text
    assert client.get(f"/console/facilities/{other_facility}").status_code == 200
    own, _ = login(reg, world.operator_token)
    assert own.get("/console/chips/NV-A").status_code == 200
    assert "NV-B" in own.get("/console/findings").text
    # An operator may acknowledge a finding about its facility, not resolve it.
    finding_id = silent_finding(reg)
    own_csrf = csrf_of(own.get(f"/console/findings/{finding_id}").text)
    resolve = own.post(
        f"/console/findings/{finding_id}/transition",
        data={"to": "resolved", "note": "done", "csrf": own_csrf},
    )
    assert resolve.status_code == 403 and "role_not_allowed" in resolve.text


def test_logout_and_revocation_end_the_session(world: World) -> None:
    reg = world.registry
    client, csrf = login(reg, world.operator_token)
    assert client.post("/console/logout", data={"csrf": "forged"}).status_code == 403
    cookie = client.cookies["chipreg_console"]
    out = client.post("/console/logout", data={"csrf": csrf})
    assert out.headers["location"] == "/console/login"
    with browser(reg) as replay:
        replay.cookies.set("chipreg_console", cookie)
        assert replay.get("/console").headers["location"] == "/console/login"
    token = reg.token(Role.INSPECTOR)
    client, _ = login(reg, token)
    with reg.context.sessions() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.name == "test inspector")
            .values(revoked_at=T0 + timedelta(days=1))
        )
        s.commit()
    assert client.get("/console").headers["location"] == "/console/login"


def test_reads_by_inspectors_and_partners_are_recorded(world: World) -> None:
    reg = world.registry
    inspector = reg.token(Role.INSPECTOR)
    partner = reg.token(Role.PARTNER)
    with reg.client(partner) as http:
        ok(http.get("/v1/chips", params={"country": "US"}))
    with reg.client(world.operator_token) as http:
        ok(http.get("/v1/chips"))  # operators read their own data: not recorded
    client, _ = login(reg, inspector)
    client.get("/console/chips/NV-A")
    with reg.client(reg.admin_token) as http:
        page: dict[str, Any] = ok(http.get("/v1/access-log"))
        refused = http.get("/v1/access-log", headers={"Authorization": f"Bearer {inspector}"})
    rows = [(a["actor_role"], a["channel"], a["path"], a["query"]) for a in page["accesses"]]
    assert ("partner", "api", "/v1/chips", "country=US") in rows
    assert ("inspector", "console", "/console/chips/NV-A", "") in rows
    assert all(role in ("inspector", "partner") for role, *_ in rows)
    assert page["total"] == len(rows)
    assert refused.status_code == 403


def test_printable_reports_with_signed_downloads(world: World) -> None:
    reg = world.registry
    with reg.client() as http:
        vkey = ok(http.get("/v1/log/key"))["verifier_key"]
        with reg.context.sessions() as s:
            size, _ = TransparencyLog(s, reg.context.log_signer).head()
        wait_checkpoint(http, NoteVerifier.from_vkey(vkey), size)
    client, _ = login(reg, reg.token(Role.INSPECTOR))
    page = client.get("/console/reports")
    assert page.status_code == 200 and "NV-B" in page.text
    policy = TrustPolicy(NoteVerifier.from_vkey(vkey))
    for kind, fmt in (("findings", "csv"), ("inventory", "json")):
        r = client.get(f"/console/reports/{kind}.{fmt}.zip")
        assert r.status_code == 200, r.text
        with zipfile.ZipFile(io.BytesIO(r.content)) as z:
            names = sorted(z.namelist())
            content, signature = z.read(names[0]), z.read(names[1])
        assert names[1] == names[0] + ".sig"
        cited = cited_indexes(content, kind, fmt)
        assert verify_export(content, signature, policy, log_indexes=cited).ok
        assert not verify_export(content + b" ", signature, policy).ok
    assert client.get("/console/reports/chips.csv.zip").status_code == 422
    operator, _ = login(reg, world.operator_token)
    assert operator.get("/console/reports").status_code == 403


def test_chip_page_checks_location_measurements(live_registry: LiveRegistry) -> None:
    live_registry.context.clock = lambda: NOW
    w = make_world(live_registry)
    w.enroll("NV-1")
    landmark_id, _ = register(w)  # Frankfurt; the chip is declared in Abilene, Texas
    token = live_registry.token(Role.LANDMARK)
    done = ok(
        post(w, "/v1/landmark-measurements", token, measure(w, landmark_id, "NV-1", token)), 201
    )
    client, _ = login(live_registry, live_registry.token(Role.INSPECTOR))
    page = client.get("/console/chips/NV-1").text
    table = page[page.index('id="locations"') :]
    assert "Frankfurt landmark" in table and "4.20" in table and "too far for this RTT" in table
    entry = client.get(f"/console/log/{done['log_index']}").text
    assert "landmark" in entry and "signature verified" in entry


def test_bad_console_input_is_a_4xx_never_a_500(world: World) -> None:
    """Huge ids and offsets, NUL bytes, odd times and digits, broken forms: each a 4xx page
    or problem (on PostgreSQL, ids past 32 bits and NUL in text used to fail the query)."""
    reg = world.registry
    client, csrf = login(reg, reg.token(Role.INSPECTOR))
    finding_id = silent_finding(reg)
    huge = str(2**63)
    before = row_counts(reg)
    for path in (
        f"/console/findings/{2**31}",
        f"/console/findings/{huge}",
        f"/console/facilities/{2**31}",
        f"/console/facilities/{2**31}/power-balance.csv",
        f"/console/clusters/{2**31}",
        f"/console/log/{huge}",
        "/console/log/-1",
        f"/console/findings?offset={huge}",
        f"/console/chips?offset={huge}",
        f"/console/findings?facility_id={2**31}",
        "/console/findings?kind=a%00b",
        "/console/chips?model=a%00b",
        "/console/chips/a%00b",
        "/console/findings?since=0001-01-01T00:00:00%2B01:00",
        "/console/findings?since=9999-12-31T23:59:59-01:00",
        "/console/log?q=%C2%B2",  # a superscript two: isdigit() but not int()
        f"/console/log?q={huge}",
    ):
        r = client.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    path = f"/console/findings/{finding_id}/transition"
    form = {"content-type": "application/x-www-form-urlencoded"}
    for kwargs in (
        {"data": {"to": "no-such-state", "csrf": csrf}},
        {"data": {"to": "", "csrf": csrf}},
        {"data": {"to": "acknowledged", "csrf": csrf, "note": "\x00"}},
        {"content": b"to=%FF%FE&csrf=" + csrf.encode(), "headers": form},
        {"content": b'{"to": "acknowledged", "to": 1}'},  # no content type: strict JSON
        {"content": b"x" * (reg.context.settings.max_request_bytes + 1)},
    ):
        r = client.post(path, **kwargs)  # type: ignore[arg-type]
        assert 400 <= r.status_code < 500, (kwargs, r.status_code, r.text)
    r = client.post(f"/console/findings/{2**31}/transition", data={"to": "resolved", "csrf": csrf})
    assert r.status_code == 422, r.text
    after = row_counts(reg)
    assert {k: v for k, v in after.items() if k != "read_accesses"} == {
        k: v for k, v in before.items() if k != "read_accesses"
    }


def test_facility_page_lists_one_page_of_chips_and_links_to_all(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A campus holds tens of thousands of chips: the facility page shows their number and
    one page of them, and links to the chips list filtered to the facility, which pages on."""
    reg = world.registry
    world.enroll("NV-C")
    monkeypatch.setattr("registry.console.inventory.PAGE", 2)
    client, _ = login(reg, reg.token(Role.INSPECTOR))
    page = client.get(f"/console/facilities/{world.facility_id}").text
    assert 'id="facility-chip-count">3<' in page
    listed = re.findall(r'<td><a href="/console/chips/([^"]+)">', page)
    assert listed == ["NV-A", "NV-B"]
    link = f"/console/chips?facility_id={world.facility_id}"
    assert f'id="facility-all-chips" href="{link}"' in page
    first = client.get(link).text
    assert "Chips (3)" in first
    assert re.findall(r'<td><a href="/console/chips/([^"]+)">', first) == ["NV-A", "NV-B"]
    more = re.search(r'id="next-page" href="(\?[^"]*)"', first)
    assert more, first
    assert more.group(1).endswith("after=NV-B")  # keyset: after the page's last chip
    second = client.get("/console/chips" + more.group(1).replace("&amp;", "&")).text
    assert "Chips (3)" in second
    assert re.findall(r'<td><a href="/console/chips/([^"]+)">', second) == ["NV-C"]
    assert "next-page" not in second
    # Everything on one page: no link.
    monkeypatch.setattr("registry.console.inventory.PAGE", 50)
    assert "facility-all-chips" not in client.get(f"/console/facilities/{world.facility_id}").text
