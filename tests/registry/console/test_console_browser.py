"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright; no
browser download): an inspector follows the planted undeclared cluster from the overview to a
decoded signed report and its inclusion proof, opens the chip and facility pages with their
charts and acknowledges the finding; an operator sees only its own data; a partner reads but
cannot act. Screenshots of every page go to ``var/screenshots/`` (or
``$CHIPREG_SCREENSHOT_DIR``); the path is printed."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.api.app import create_app
from registry.api.context import AppContext, utc_now
from registry.auth import Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.console.world import SimWorld, build, wait_published

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ.get("CHIPREG_SCREENSHOT_DIR", "var/screenshots")).resolve()


def _need_browser() -> Any:
    """Playwright's sync API, or skip (locally) / fail (CI) without a browser."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        from playwright import sync_api
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the console's browser tests must run in CI: {missing}")
        pytest.skip(missing)
    return sync_api


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimWorld]:
    tmp = tmp_path_factory.mktemp("console")
    app = create_app(
        Settings(
            database_url=f"sqlite:///{tmp / 'registry.sqlite3'}",
            log_key_file=tmp / "log-key",
            log_origin="test.chipreg.local/log",
            checkpoint_interval_s=0.05,
        )
    )
    context: AppContext = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("test admin", Role.ADMIN).secret
        session.commit()
    with BackgroundServer(app) as server:
        registry = LiveRegistry(url=server.url, context=context, admin_token=admin)
        built = build(registry, tmp / "spool")
        wait_published(registry)
        yield built
    context.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = _need_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(browser: Any, world: SimWorld, token: str) -> Any:
    page = browser.new_page(viewport={"width": 1366, "height": 800})
    page.goto(world.registry.url + "/")  # / -> /console -> login
    assert page.url.endswith("/console/login")
    shot(page, "00-login")
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url("**/console")
    return page


def test_inspector_follows_a_finding_to_its_signed_evidence(browser: Any, world: SimWorld) -> None:
    print(f"\nconsole screenshots: {SCREENSHOTS}")
    page = login(browser, world, world.inspector)
    assert "(inspector)" in page.inner_text("#whoami")
    assert int(page.inner_text("#count-countries")) == 3
    shot(page, "01-overview")

    page.click("#undeclared a.finding-link")
    page.wait_for_url(f"**/console/findings/{world.undeclared_finding_id}")
    assert page.inner_text("#finding-kind") == "undeclared_cluster"
    assert page.inner_text("#finding-status") == "open"
    shot(page, "02-finding")
    finding_url = page.url

    page.click("#evidence a.evidence-link >> nth=0")
    page.wait_for_selector("#proof-status")
    signers = page.inner_text("#signers")
    assert "chip" in signers and "signature verified" in signers
    decoded = page.inner_text("#decoded")
    assert "utilization" in decoded and "energy_j" in decoded
    assert page.inner_text("#proof-status").startswith("Verified")
    shot(page, "03-evidence-report-and-proof")

    page.goto(finding_url)
    page.click("a.chip-link >> nth=0")
    page.wait_for_selector("#chip-charts")
    assert page.locator("#chip-charts svg").count() == 2
    assert page.locator("#reports tr").count() > 1
    # The chip is a member of the undeclared cluster: the finding is listed on its page.
    assert (
        page.locator(
            f"#chip-findings a[href='/console/findings/{world.undeclared_finding_id}']"
        ).count()
        == 1
    )
    shot(page, "04-chip")

    page.goto(finding_url)
    page.click("#finding-facility")
    page.wait_for_selector("#power-chart svg")
    assert page.locator("#power-table tr").count() > 1
    shot(page, "05-facility")

    page.goto(finding_url)
    page.fill("#note", "seen; asking the operator for the declaration")
    page.click("#acknowledge")
    page.wait_for_selector("#finding-status")
    assert page.inner_text("#finding-status") == "acknowledged"
    trail = page.inner_text("#trail")
    assert "asking the operator" in trail and "inspector" in trail
    shot(page, "06-finding-acknowledged")

    [cluster_id] = world.provisioned.cluster_ids.values()
    page.goto(world.registry.url + f"/console/clusters/{cluster_id}")
    assert page.locator("#cluster-chart svg").count() == 1
    assert page.locator("#cluster-compute tr").count() > 1
    shot(page, "07-cluster")

    page.goto(world.registry.url + "/console/log")
    assert "test.chipreg.local/log" in page.inner_text("#checkpoint")
    shot(page, "07b-log")
    # The list pages too, so a reviewer sees every page.
    page.goto(world.registry.url + "/console/findings")
    assert page.locator("#findings a").count() >= 1
    shot(page, "07c-findings")
    page.goto(world.registry.url + "/console/chips")
    assert page.locator("#chips a").count() >= 1
    shot(page, "07d-chips")
    page.goto(world.registry.url + "/console/facilities")
    assert "FI" in page.inner_text("#countries")
    shot(page, "07e-facilities")
    page.goto(world.registry.url + "/console/reports")
    assert page.locator("#downloads a").count() >= 1
    shot(page, "07f-reports")
    page.click("text=Log out")
    page.wait_for_url("**/console/login")
    page.goto(world.registry.url + "/console")
    assert page.url.endswith("/console/login")  # the session ended on the server
    page.close()


def test_operator_sees_only_its_own_data(browser: Any, world: SimWorld) -> None:
    reg = world.registry
    page = login(browser, world, world.other_operator)
    with reg.client(world.other_operator) as http:
        own = http.get("/v1/chips", params={"limit": 1000}).json()
    page.goto(reg.url + "/console/chips")
    listed = page.locator("#chips td:first-child").all_inner_texts()
    assert sorted(listed) == sorted(c["chip_id"] for c in own["chips"])
    assert not any(c.startswith("H200") for c in listed)  # the Finnish chips are not theirs
    shot(page, "08-operator-chips")
    page.goto(reg.url + f"/console/findings/{world.undeclared_finding_id}")
    assert "not_your_operator" in page.inner_text("h1")
    page.goto(reg.url + f"/console/facilities/{world.hidden_facility_id}")
    assert "not_your_operator" in page.inner_text("h1")
    shot(page, "09-operator-refused")
    page.close()


def test_partner_reads_but_cannot_act(browser: Any, world: SimWorld) -> None:
    page = login(browser, world, world.partner)
    page.goto(world.registry.url + f"/console/findings/{world.undeclared_finding_id}")
    assert page.inner_text("#finding-kind") == "undeclared_cluster"
    assert page.locator("#acknowledge, #resolve, #reopen").count() == 0
    shot(page, "10-partner-finding")
    # With the policy limiting partners to aggregates: counts per facility and country only.
    ctx = world.registry.context
    default = ctx.settings
    ctx.settings = default.model_copy(update={"partner_aggregates_only": True})
    try:
        page.click("a.chip-link >> nth=0")
        assert "aggregates_only" in page.inner_text("h1")
        page.goto(world.registry.url + f"/console/facilities/{world.hidden_facility_id}")
        assert page.locator("#no-detail").count() == 1
        assert page.locator("#facility-chips a").count() == 0
        assert page.locator("#power-chart svg").count() == 1
        page.goto(world.registry.url + "/console/facilities")
        assert "FI" in page.inner_text("#countries")
        shot(page, "11-partner-aggregates")
    finally:
        ctx.settings = default
    page.close()
