"""When the database goes away the registry answers 503 ``database_unavailable`` with
``Retry-After`` and stores nothing; when it comes back, requests succeed again. A 500 does not
cost the client its kept-alive connection. Real uvicorn, a real PostgreSQL server that is
stopped and restarted (a throwaway cluster of this test's own), and a locked SQLite file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from agents.client import RegistryClient
from agents.errors import Unavailable
from registry.api.app import create_app
from registry.api.context import utc_now
from registry.auth import Role
from registry.server import BackgroundServer, free_port
from registry.services.accounts import AccountService
from registry.settings import Settings
from tests.conftest import LiveRegistry
from tests.registry.checks import PROBLEM_JSON
from tests.registry.factories import key, make_world, ok

RETRY_AFTER_S = 3


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@dataclass
class PgCluster:
    """A PostgreSQL server of this test's own, which the test may stop and start."""

    bin: Path
    data: Path
    port: int
    as_pg: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://chipreg@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_pg, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        sockets = self.data.parent
        options = f"-p {self.port} -k {sockets} -c listen_addresses=127.0.0.1"
        self._ctl("-l", str(sockets / "server.log"), "-w", "-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    pg_bin = _pg_bin()
    if pg_bin is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed in CI (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed")
    # Not under pytest's tmp_path: its parents are closed to the postgres user.
    work = Path(tempfile.mkdtemp(prefix="chipreg-pg-outage."))
    as_pg: list[str] = []
    if os.getuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(work, "postgres", "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
    data = work / "data"
    subprocess.run(
        [*as_pg, str(pg_bin / "initdb"), "-D", str(data), "-U", "chipreg", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    cluster = PgCluster(pg_bin, data, free_port(), as_pg)
    cluster.start()
    try:
        yield cluster
    finally:
        subprocess.run(
            [*as_pg, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def serve(settings: Settings) -> Iterator[LiveRegistry]:
    app = create_app(settings)
    context = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("admin", Role.ADMIN).secret
        session.commit()
    with BackgroundServer(app) as server:
        yield LiveRegistry(url=server.url, context=context, admin_token=admin)
    context.engine.dispose()


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)


def until_ok(send: object, attempts: int = 60) -> httpx.Response:
    """Repeat ``send`` while the registry answers 503 (a pooled connection may be stale)."""
    assert callable(send)
    for _ in range(attempts):
        r: httpx.Response = send()
        if r.status_code != 503:
            return r
        assert_unavailable(r)
        time.sleep(0.25)
    raise AssertionError("the registry did not recover")


def test_postgres_stopped_and_restarted(pg_cluster: PgCluster, tmp_path: Path) -> None:
    settings = Settings(
        database_url=pg_cluster.url,
        log_key_file=tmp_path / "log-key",
        checkpoint_interval_s=0.05,
        database_retry_after_s=RETRY_AFTER_S,
    )
    with serve(settings) as registry:
        world = make_world(registry)
        chip = world.enroll("NV-0001")
        first = chip.report()
        assert ok(world.post([first]))["accepted"] == 1
        second = chip.report()
        with registry.client(registry.admin_token) as admin:
            ok(admin.get(f"/v1/facilities/{world.facility_id}"))

            pg_cluster.stop()
            # Reads, writes and ingest: each a 503 with Retry-After, on the same connection.
            assert_unavailable(admin.get(f"/v1/facilities/{world.facility_id}"))
            assert_unavailable(admin.get("/v1/findings"))
            assert_unavailable(world.post([second]))
            # The agent's client reads it as "retry later", keeping its reports.
            with RegistryClient(registry.url, world.operator_token) as agent:
                with pytest.raises(Unavailable) as info:
                    agent.post_batch([second.to_json()])
                assert info.value.retry_after == RETRY_AFTER_S

            pg_cluster.start()
            until_ok(lambda: admin.get(f"/v1/facilities/{world.facility_id}"))
            done = ok(until_ok(lambda: world.post([second])))
            # Nothing of the refused attempts was stored: seq 2 follows seq 1 without a gap.
            assert done["results"][0]["status"] == "accepted", done
            assert done["results"][0]["seq"] == 2
            detail = ok(admin.get("/v1/chips/NV-0001"))
            assert detail["chip"]["last_seq"] == 2


def test_locked_sqlite_is_unavailable_not_an_error(tmp_path: Path) -> None:
    database = tmp_path / "registry.sqlite3"
    settings = Settings(
        database_url=f"sqlite:///{database}",
        log_key_file=tmp_path / "log-key",
        checkpoint_interval_s=0,
        sqlite_busy_timeout_ms=50,
        database_retry_after_s=RETRY_AFTER_S,
    )
    with serve(settings) as registry:
        body = {"name": "Lab", "country": "US", "public_key": key("op:Lab").public_key.to_b64()}
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with registry.client(registry.admin_token) as admin:
                assert_unavailable(admin.post("/v1/operators", json=body))
                holder.execute("ROLLBACK")
                ok(admin.post("/v1/operators", json=body), 201)
                names = [o["name"] for o in ok(admin.get("/v1/operators"))]
            assert names.count("Lab") == 1
        finally:
            holder.close()


def test_a_500_keeps_the_connection_alive(registry_settings: Settings) -> None:
    """Starlette's last-resort handler re-raises after answering, and uvicorn then closes the
    connection; the registry answers bugs without that, so the client's next request works."""
    app = create_app(registry_settings)

    @app.get("/v1/test-bug", include_in_schema=False)
    def bug() -> None:
        raise RuntimeError("a bug")

    with BackgroundServer(app) as server, httpx.Client(base_url=server.url) as http:
        r = http.get("/v1/test-bug")
        assert (r.status_code, r.json()["code"]) == (500, "internal_error")
        assert r.headers["content-type"] == PROBLEM_JSON
        first_connection = r.extensions["network_stream"].get_extra_info("client_addr")
        r = http.get("/v1/log/key")
        assert r.status_code == 200
        # The same TCP connection served both: it was not dropped after the 500.
        assert r.extensions["network_stream"].get_extra_info("client_addr") == first_connection
    app.state.context.engine.dispose()
