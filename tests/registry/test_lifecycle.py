"""Findings lifecycle with its audit trail, and webhook delivery through the durable outbox to a
real HTTP receiver (Standard Webhooks signatures checked by the independent ``standardwebhooks``
package, retries with exponential backoff)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from registry.api.context import utc_now
from registry.auth import Role
from registry.workers.webhooks import WebhookDeliverer
from tests.registry.factories import (
    World,
    add_operator,
    make_world,
    ok,
    operator_key,
    signed,
)

AS_OF = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


class Receiver:
    """A real HTTP server that records deliveries and fails the first ``fail_first``."""

    def __init__(self, fail_first: int = 0) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                status = 500 if len(outer.received) <= outer.fail_first else 204
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    r.thread.start()
    yield r
    r.server.shutdown()


def hashlib_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def silent_chip_world(world: World) -> tuple[int, str, int]:
    """NV-1 at the world's facility, NV-2 elsewhere: both installed, neither reports."""
    other_id, other_token, other_facility = add_operator(world.registry, "Toronto", "CA")
    world.enroll("NV-1")
    world.enroll("NV-2", install=False)
    with world.registry.client(other_token) as http:
        ok(
            http.post(
                "/v1/installations",
                json=signed(
                    "installation",
                    {
                        "chip_id": "NV-2",
                        "facility_id": other_facility,
                        "installed_at": "2026-03-01T01:00:00Z",
                    },
                    operator_key("Toronto"),
                ),
            ),
            201,
        )
    return other_id, other_token, other_facility


def run(world: World) -> dict[str, Any]:
    with world.registry.client(world.registry.admin_token) as http:
        return ok(
            http.post("/v1/verifier/runs", json={"policy": "demo", "as_of": AS_OF.isoformat()})
        )


def findings(world: World, token: str | None = None) -> list[dict[str, Any]]:
    with world.registry.client(token or world.registry.admin_token) as http:
        return ok(http.get("/v1/findings", params={"kind": "chip_silent"}))["findings"]


def transition(
    world: World, token: str, finding_id: int, to: str, note: str = ""
) -> httpx.Response:
    with world.registry.client(token) as http:
        return http.post(f"/v1/findings/{finding_id}/transitions", json={"to": to, "note": note})


def test_lifecycle_and_audit_trail(world: World) -> None:
    reg = world.registry
    _, other_token, _ = silent_chip_world(world)
    assert run(world)["new_findings"] >= 2
    mine = next(f for f in findings(world) if f["subject_id"] == "NV-1")
    theirs = next(f for f in findings(world) if f["subject_id"] == "NV-2")
    inspector = reg.token(Role.INSPECTOR)

    # The operator may acknowledge a finding about its own facility, not another's, never resolve.
    assert (
        ok(transition(world, world.operator_token, mine["id"], "acknowledged", "looking"))["status"]
        == "acknowledged"
    )
    r = transition(world, world.operator_token, theirs["id"], "acknowledged")
    assert (r.status_code, r.json()["code"]) == (403, "not_your_operator")
    r = transition(world, world.operator_token, mine["id"], "resolved", "fixed")
    assert (r.status_code, r.json()["code"]) == (403, "role_not_allowed")
    r = transition(world, inspector, mine["id"], "resolved")
    assert (r.status_code, r.json()["code"]) == (422, "note_required")
    r = transition(world, inspector, mine["id"], "acknowledged")
    assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")
    r = transition(world, reg.token(Role.PARTNER), theirs["id"], "acknowledged")
    assert (r.status_code, r.json()["code"]) == (403, "role_not_allowed")
    r = transition(world, inspector, 9999, "resolved", "x")
    assert (r.status_code, r.json()["code"]) == (404, "unknown_finding")
    done = ok(transition(world, inspector, mine["id"], "resolved", "agent host was replaced"))
    assert done["status"] == "resolved"
    assert ok(transition(world, inspector, mine["id"], "open", "still silent"))["status"] == "open"

    with reg.client(inspector) as http:
        trail = ok(http.get(f"/v1/findings/{mine['id']}/transitions"))
    assert [(t["from_status"], t["to_status"], t["actor_role"]) for t in trail] == [
        ("open", "acknowledged", "operator"),
        ("acknowledged", "resolved", "inspector"),
        ("resolved", "open", "inspector"),
    ]
    assert trail[1]["note"] == "agent host was replaced"
    with reg.client(other_token) as http:
        r = http.get(f"/v1/findings/{mine['id']}/transitions")
        assert (r.status_code, r.json()["code"]) == (403, "not_your_operator")


def test_transitions_check_the_role_before_the_state(world: World) -> None:
    """A token that may not move a finding hears 403, never its status (409) or existence."""
    reg = world.registry
    _, other_token, _ = silent_chip_world(world)
    assert run(world)["new_findings"] >= 2
    mine = next(f for f in findings(world) if f["subject_id"] == "NV-1")
    assert ok(transition(world, reg.admin_token, mine["id"], "acknowledged"))["status"]
    # acknowledged -> acknowledged is no transition at all: only a caller who may touch the
    # finding may learn that (409); everyone else gets the same 403 as for a valid move.
    for token in (world.vendor_token, reg.token(Role.PARTNER), reg.token(Role.LANDMARK)):
        for to in ("acknowledged", "resolved"):
            r = transition(world, token, mine["id"], to, "x")
            assert (r.status_code, r.json()["code"]) == (403, "role_not_allowed"), r.text
        r = transition(world, token, 987654, "resolved", "x")
        assert (r.status_code, r.json()["code"]) == (403, "role_not_allowed"), r.text
    r = transition(world, other_token, mine["id"], "acknowledged")
    assert (r.status_code, r.json()["code"]) == (403, "not_your_operator")
    # The near misses: those who may touch it hear the state conflict.
    for token in (world.operator_token, reg.token(Role.INSPECTOR)):
        r = transition(world, token, mine["id"], "acknowledged")
        assert (r.status_code, r.json()["code"]) == (409, "invalid_transition")


def test_new_findings_reach_webhooks_with_retries(world: World, receiver: Receiver) -> None:
    reg = world.registry
    silent_chip_world(world)
    with reg.client(reg.admin_token) as http:
        hook = ok(
            http.post(
                "/v1/webhooks", json={"name": "agency", "url": receiver.url, "secret": SECRET}
            ),
            201,
        )
        assert hook["secret"] == SECRET
    created = run(world)["new_findings"]
    assert created >= 2

    now = [utc_now() + timedelta(seconds=1)]
    deliverer = WebhookDeliverer(
        reg.context.sessions, reg.context.settings, lambda: now[0], httpx.Client()
    )
    first = deliverer.deliver_due()
    assert (first.delivered, first.retried) == (created - 2, 2)  # the receiver fails twice
    # Not due yet: the backoff (2 s, then 4 s) holds them back.
    assert deliverer.deliver_due().delivered == 0
    now[0] += timedelta(seconds=2)
    assert deliverer.deliver_due().delivered == 2
    assert deliverer.deliver_due().delivered == 0  # each delivered exactly once

    subjects = set()
    verifier = Webhook(SECRET)  # the off-the-shelf Standard Webhooks verifier
    ids: dict[str, set[str]] = {}
    for headers, body in receiver.received:
        doc = verifier.verify(body, headers)
        assert doc == json.loads(body)
        ids.setdefault(headers["webhook-id"], set()).add(hashlib_digest(body))
        # A tampered body, another secret or another id does not verify.
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body + b" ", headers)
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + base64.b64encode(b"k" * 32).decode()).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            verifier.verify(body, {**headers, "webhook-id": "msg_0"})
        assert doc["event"] == "finding.created"
        subjects.add(doc["finding"]["subject_id"])
    assert {"NV-1", "NV-2"} <= subjects
    # One public form of a finding: the webhook carries what GET /v1/findings shows.
    with reg.client(reg.admin_token) as http:
        listed = {f["id"]: f for f in ok(http.get("/v1/findings"))["findings"]}
    for _, body in receiver.received:
        sent = json.loads(body)["finding"]
        assert sent == listed[sent["id"]]
    # Retries reuse the delivery's webhook-id (receivers deduplicate by it) with the same body.
    assert all(len(bodies) == 1 for bodies in ids.values())
    assert len(ids) == created and len(receiver.received) == created + 2
    with reg.client(reg.admin_token) as http:
        deliveries = ok(http.get(f"/v1/webhooks/{hook['id']}/deliveries"))
    assert len(deliveries) == created
    assert all(d["delivered_at"] for d in deliveries)
    assert sorted(d["attempts"] for d in deliveries)[-1] == 2
    # A second run finds nothing new, so nothing more is queued.
    assert run(world)["new_findings"] == 0
    assert deliverer.deliver_due().delivered == 0


def test_webhook_secrets_are_standard_webhooks_secrets(world: World) -> None:
    with world.registry.client(world.registry.admin_token) as http:
        # Not a Standard Webhooks secret: free-form text, too few bytes, not base64.
        for bad in (
            "s3cret-s3cret-s3cret",
            "whsec_" + base64.b64encode(b"x" * 8).decode(),
            "whsec_!",
        ):
            r = http.post(
                "/v1/webhooks", json={"name": "bad", "url": "http://127.0.0.1:9/", "secret": bad}
            )
            assert (r.status_code, r.json()["code"]) == (422, "bad_webhook_secret"), bad
        # Without a secret the registry generates one and shows it once.
        generated = ok(
            http.post("/v1/webhooks", json={"name": "gen", "url": "http://127.0.0.1:9/"}), 201
        )
        assert generated["secret"].startswith("whsec_")
        assert len(base64.b64decode(generated["secret"][6:])) == 32
        listed = ok(http.get("/v1/webhooks"))
    assert [h["name"] for h in listed] == ["gen"]
    assert all("secret" not in h for h in listed)


def test_failing_receiver_gives_up_after_max_attempts(world: World) -> None:
    reg = world.registry
    silent_chip_world(world)
    with reg.client(reg.admin_token) as http:
        ok(
            http.post(
                "/v1/webhooks",
                json={
                    "name": "dead",
                    "url": "http://127.0.0.1:9/x",
                    "secret": SECRET,
                    "min_severity": "critical",
                },
            ),
            201,
        )
        ok(
            http.post(
                "/v1/webhooks",
                json={"name": "down", "url": "http://127.0.0.1:9/y", "secret": SECRET},
            ),
            201,
        )
    created = run(world)["new_findings"]
    settings = reg.context.settings.model_copy(update={"webhook_max_attempts": 2})
    now = [utc_now() + timedelta(seconds=1)]
    deliverer = WebhookDeliverer(reg.context.sessions, settings, lambda: now[0], httpx.Client())
    # "down" gets every finding, "dead" only the critical ones; nobody answers.
    with reg.client(reg.admin_token) as http:
        critical = len(ok(http.get("/v1/findings", params={"severity": "critical"}))["findings"])
    assert deliverer.deliver_due().retried == created + critical
    now[0] += timedelta(seconds=2)
    assert deliverer.deliver_due().failed == created + critical
    assert deliverer.deliver_due() == type(deliverer.deliver_due())()


@pytest.fixture
def world(live_registry: Any) -> World:
    return make_world(live_registry)


def test_follow_judges_each_closed_window_once_and_resumes(world: World) -> None:
    from registry.workers.verifier import VerifierWorker
    from verifier.policy import load_builtin_policy

    reg = world.registry
    silent_chip_world(world)
    now = [datetime(2026, 3, 1, 2, 5, tzinfo=UTC)]
    settings = reg.context.settings.model_copy(update={"verifier_settle_s": 120})
    worker = VerifierWorker(
        reg.context.sessions, settings, load_builtin_policy("demo"), lambda: now[0]
    )
    runs, _ = worker.step()
    assert [r.as_of for r in runs] == [datetime(2026, 3, 1, 2, 0, tzinfo=UTC)]
    assert worker.step()[0] == []  # nothing new has closed
    now[0] += timedelta(minutes=31)  # 02:36: windows ending 02:15 and 02:30 have settled
    runs, _ = worker.step()
    assert [r.as_of.strftime("%H:%M") for r in runs] == ["02:15", "02:30"]
    assert {f.subject_id for r in runs for f in r.findings} >= {"NV-1", "NV-2"}
