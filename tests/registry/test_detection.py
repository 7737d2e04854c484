"""Issue 9: no accepted input can switch detection off. Real registry over HTTP, real signatures.

A report naming a facility that does not exist, a window in the future or before the chip was
installed, a verifier run judging an instant still to come, a chip key used through another
operator's account: each is refused with its own code, and what the verifier needs of it is
kept; a verifier run never fails on what ingest accepted, and a failing run never stops the
continuous worker.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from attestation.dsse import Envelope
from attestation.logentries import REJECTED_REPORT
from attestation.records import RejectedReportRecord
from attestation.report import open_envelope
from attestation.transfer import Transfer, sign_transfer
from registry.db.models import Chip, LogEntry, RejectedSubmission, Report
from registry.services.log import TransparencyLog
from registry.services.verification import VerificationRun
from registry.workers.verifier import VerifierWorker
from tests.conftest import LiveRegistry
from tests.registry.checks import refused
from tests.registry.factories import (
    SimChip,
    World,
    add_operator,
    link,
    make_world,
    ok,
    operator_key,
)
from verifier.policy import load_builtin_policy

UNKNOWN_FACILITY = 987654


@pytest.fixture
def world(live_registry: LiveRegistry) -> World:
    w = make_world(live_registry)
    w.enroll("NV-1")
    w.enroll("NV-2")
    return w


def verifier_run(world: World, **body: Any) -> httpx.Response:
    with world.registry.client(world.registry.admin_token) as http:
        return http.post("/v1/verifier/runs", json={"policy": "demo", **body})


def findings(world: World, kind: str) -> list[dict[str, Any]]:
    with world.registry.client(world.registry.admin_token) as http:
        found: list[dict[str, Any]] = ok(http.get("/v1/findings", params={"kind": kind}))[
            "findings"
        ]
    return found


def only(world: World, envelope: Envelope, token: str | None = None) -> dict[str, Any]:
    """The registry's verdict on one report posted in a batch."""
    [result] = ok(world.post([envelope], token))["results"]
    return dict(result)


def head(world: World, chip_id: str) -> tuple[int, str]:
    with world.registry.context.sessions() as s:
        chip = s.get(Chip, chip_id)
        assert chip is not None
        return chip.last_seq, chip.last_digest


def rewind(chip: SimChip, state: tuple[int, str, datetime]) -> None:
    chip.seq, chip.prev, chip.window_end = state


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def later(world: World) -> str:
    """A judged instant after every receipt so far (the registry's clock has whole seconds and
    evidence counts only when received before ``as_of``): the registry's clock moves there."""
    at = now() + timedelta(seconds=2)
    world.registry.context.clock = lambda: at
    return at.isoformat()


# --- 1. a report naming a facility that does not exist --------------------------------------


def test_report_claiming_an_unknown_facility_is_refused_and_runs_keep_working(
    world: World,
) -> None:
    chip = world.chips["NV-1"]
    state = (chip.seq, chip.prev, chip.window_end)
    result = only(world, chip.report(facility_id=UNKNOWN_FACILITY))
    assert (result["status"], result["http_status"], result["code"]) == (
        "rejected",
        404,
        "unknown_facility",
    )
    assert head(world, "NV-1") == (0, "0" * 64)
    rewind(chip, state)
    assert only(world, chip.report(facility_id=world.facility_id))["status"] == "accepted"
    assert verifier_run(world).status_code == 200


def test_a_finding_naming_a_facility_that_does_not_exist_is_stored(world: World) -> None:
    """Data accepted before the ingest check (or any finding naming a claimed facility) must
    never make a verifier run fail: findings carry no foreign key to facilities."""
    chip = world.chips["NV-1"]
    envelope = chip.report(facility_id=UNKNOWN_FACILITY)
    report = open_envelope(envelope).verify(chip.key.public_key).report
    ctx = world.registry.context
    at = now()
    with ctx.sessions() as s:  # as an older registry accepted it: stored and logged
        log = TransparencyLog(s, ctx.log_signer)
        log.lock()
        index = log.append("usage_report", [envelope.to_json()], at)
        s.add(
            Report(
                chip_id=report.chip_id,
                seq=report.seq,
                digest=chip.prev,
                window_start=report.window_start,
                window_end=report.window_end,
                utilization=report.utilization,
                energy_j=report.energy_j,
                links_json="[]",
                log_index=index,
                received_at=at,
                facility_claim=UNKNOWN_FACILITY,
                source_operator_id=world.operator_id,
            )
        )
        row = s.get(Chip, report.chip_id)
        assert row is not None
        row.last_seq, row.last_digest, row.last_window_end = (
            report.seq,
            chip.prev,
            report.window_end,
        )
        row.last_log_index = index
        s.commit()
    for _ in range(2):  # and again: one run's findings never block the next
        response = verifier_run(world)
        assert response.status_code == 200, response.text
    [wrong] = findings(world, "wrong_facility")
    assert wrong["subject_id"] == "NV-1"
    assert str(UNKNOWN_FACILITY) in json.dumps(wrong["details"])


# --- the continuous worker survives a failing step ------------------------------------------


def test_a_failing_step_does_not_stop_the_verifier_worker(world: World) -> None:
    reg = world.registry
    failures = [RuntimeError("database went away")]
    at = datetime(2026, 3, 1, 2, 5, tzinfo=UTC)

    def clock() -> datetime:
        if failures:
            raise failures.pop()
        return at

    settings = reg.context.settings.model_copy(update={"verifier_interval_s": 0.01})
    judged: list[VerificationRun] = []

    def on_step(runs: list[VerificationRun]) -> None:
        judged.extend(runs)
        worker.stop()

    worker = VerifierWorker(
        reg.context.sessions, settings, load_builtin_policy("demo"), clock, on_step=on_step
    )
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert failures == [] and [r.as_of for r in judged] == [datetime(2026, 3, 1, 2, 0, tzinfo=UTC)]


# --- 2. time bounds -------------------------------------------------------------------------


def test_window_in_the_future_is_refused_and_does_not_block_the_chain(world: World) -> None:
    chip = world.chips["NV-1"]
    assert only(world, chip.report())["status"] == "accepted"
    state = (chip.seq, chip.prev, chip.window_end)
    chip.window_end = datetime(2099, 1, 1, tzinfo=UTC)
    result = only(world, chip.report())
    assert (result["http_status"], result["code"]) == (422, "window_in_future")
    assert head(world, "NV-1")[0] == 1
    with world.registry.context.sessions() as s:  # not evidence: the agent may sign seq 2 again
        assert s.scalar(select(func.count()).select_from(RejectedSubmission)) == 0
    # The next honest report is accepted: one bad clock does not silence the chip.
    rewind(chip, state)
    assert only(world, chip.report())["status"] == "accepted"
    # A window ending within the tolerated skew (120 s) is fine.
    chip.window_end = now() - timedelta(minutes=14)
    assert only(world, chip.report())["status"] == "accepted"


def test_window_before_the_chip_was_installed_is_refused(world: World) -> None:
    chip = world.chips["NV-1"]  # installed 2026-02-01T00:00:00Z
    state = (chip.seq, chip.prev, chip.window_end)
    chip.window_end = datetime(2026, 1, 31, 23, 50, tzinfo=UTC)
    result = only(world, chip.report())
    assert (result["http_status"], result["code"]) == (422, "window_before_installation")
    rewind(chip, state)
    chip.window_end = datetime(2026, 2, 1, tzinfo=UTC)
    assert only(world, chip.report())["status"] == "accepted"


def test_verifier_run_as_of_in_the_future_is_refused(world: World) -> None:
    body = {"policy": "demo", "as_of": (now() + timedelta(days=1)).isoformat()}
    problem = refused(
        world.registry,
        world.registry.admin_token,
        "POST",
        "/v1/verifier/runs",
        (422, "as_of_in_future"),
        json=body,
    )
    assert "after the registry's clock" in problem["detail"]
    assert verifier_run(world, as_of=now().isoformat()).status_code == 200


# --- 4. a chip key used through another operator's account ----------------------------------


def rejected_records(world: World) -> list[dict[str, Any]]:
    with world.registry.context.sessions() as s:
        bodies = s.scalars(
            select(LogEntry.body).where(LogEntry.kind == REJECTED_REPORT).order_by(LogEntry.index)
        ).all()
    return [RejectedReportRecord.from_json(bytes(b)).to_dict() for b in bodies]


def test_a_cloned_key_through_another_account_is_kept_logged_and_found(world: World) -> None:
    _, other_token, other_facility = add_operator(world.registry, "Toronto", "CA")
    chip = world.chips["NV-1"]
    clone = SimChip(chip.chip_id, chip.key, chip.seq, chip.prev, chip.window_end)
    # The clone reports first, claiming the other operator's facility; then the real chip.
    result = only(world, clone.report(facility_id=other_facility, utilization=0.9), other_token)
    assert (result["http_status"], result["code"]) == (403, "forbidden")
    assert only(world, chip.report())["status"] == "accepted"
    [record] = rejected_records(world)
    assert (record["outcome"], record["original"]) == ("forbidden", None)
    assert verifier_run(world, as_of=later(world)).status_code == 200
    [clone_finding] = findings(world, "cloned_identity")
    assert clone_finding["subject_id"] == "NV-1"
    assert {c["why"] for c in clone_finding["details"]["conflicts"]} == {
        "same_seq",
        "outside_custody",
    }


def test_a_report_forwarded_through_another_account_is_a_replay(world: World) -> None:
    other_id, other_token, _ = add_operator(world.registry, "Toronto", "CA")
    chip = world.chips["NV-1"]
    envelope = chip.report()
    accepted = only(world, envelope)
    for _ in range(2):  # logged once per (digest, delivering operator)
        result = only(world, envelope, other_token)
        assert (result["http_status"], result["code"]) == (403, "forbidden")
    [record] = rejected_records(world)
    assert record["outcome"] == "forbidden" and record["operator_id"] == other_id
    assert record["original"]["log_index"] == accepted["log_index"]
    assert verifier_run(world, as_of=later(world)).status_code == 200
    [replay] = findings(world, "replayed_report")
    assert replay["subject_id"] == "NV-1"
    assert replay["details"]["replays"][0]["source"] == f"operator:{other_id}"
    assert findings(world, "cloned_identity") == []


def test_the_previous_custodian_may_deliver_the_last_reports_of_its_stay(world: World) -> None:
    """A chip handed to another operator: reports of windows the giver held it in stay valid."""
    _, other_token, other_facility = add_operator(world.registry, "Toronto", "CA")
    chip = world.chips["NV-2"]
    first = chip.report()  # window 2026-03-01T00:00-00:15, while at the world's facility
    # Custody passes by a transfer both operators sign (PROTOCOL.md 6.2).
    deal = Transfer(
        "NV-2", world.facility_id, other_facility, datetime(2026, 3, 1, 0, 15, tzinfo=UTC)
    )
    agreed = sign_transfer(deal, world.operator_key, operator_key("Toronto"))
    with world.registry.client(other_token) as http:
        ok(http.post("/v1/transfers", json=agreed.to_dict()), 201)
    assert only(world, first)["status"] == "accepted"
    assert only(world, chip.report(), other_token)["status"] == "accepted"
    assert rejected_records(world) == []
    assert head(world, "NV-2")[0] == 2
    # The giver cannot report a window of the receiver's stay.
    result = only(world, chip.report())
    assert (result["http_status"], result["code"]) == (403, "forbidden")


def test_a_link_finding_between_two_longest_chip_ids_is_stored(world: World) -> None:
    """Chip ids may be 64 characters; a link's subject joins two (129): storing it must not
    fail (PostgreSQL enforces column lengths)."""
    longest = "NV-" + "A" * 61
    chip = world.enroll(longest)
    peer = "NV-" + "B" * 61  # not registered: the registry alone hears of it
    assert only(world, chip.report(peers=(link(peer, gbytes=200.0),)))["status"] == "accepted"
    for _ in range(2):
        response = verifier_run(world)
        assert response.status_code == 200, response.text
    [one_sided] = findings(world, "one_sided_link")
    assert one_sided["subject_id"] == f"{longest}|{peer}"
