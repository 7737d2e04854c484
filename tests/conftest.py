"""Fixtures shared by the whole suite: real databases and a real registry over real HTTP.

Every registry test runs twice, on SQLite and on PostgreSQL. PostgreSQL comes from
CHIPREG_TEST_POSTGRES_URL (``scripts/with-postgres.sh`` provides one for ``make test``); when it
is not set the PostgreSQL half is skipped locally and fails under CI=true.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from registry.api.app import create_app
from registry.api.context import AppContext, utc_now
from registry.auth import Role
from registry.server import BackgroundServer
from registry.services.accounts import AccountService
from registry.settings import Settings

SHARED_VECTORS = Path(__file__).resolve().parents[2] / "shared" / "vectors"
POSTGRES_ENV = "CHIPREG_TEST_POSTGRES_URL"


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{POSTGRES_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{POSTGRES_ENV} not set (run the suite with `make test`)")
    engine = create_engine(url)
    with engine.begin() as conn:
        # A fresh schema per test: the migrations run from scratch every time.
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    return _postgres_url()


@dataclass
class LiveRegistry:
    """A registry app served by uvicorn on a loopback port, with an admin token."""

    url: str
    context: AppContext
    admin_token: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def token(
        self, role: Role, *, vendor_id: int | None = None, operator_id: int | None = None
    ) -> str:
        with self.context.sessions() as session:
            issued = AccountService(session, utc_now).create_token(
                f"test {role.value}", role, vendor_id=vendor_id, operator_id=operator_id
            )
            session.commit()
            return issued.secret


@pytest.fixture
def registry_settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        log_key_file=tmp_path / "log-key",
        log_origin="test.chipreg.local/log",
        checkpoint_interval_s=0.05,
    )


@pytest.fixture
def live_registry(registry_settings: Settings) -> Iterator[LiveRegistry]:
    app = create_app(registry_settings)
    context: AppContext = app.state.context
    with context.sessions() as session:
        admin = AccountService(session, utc_now).create_token("test admin", Role.ADMIN).secret
        session.commit()
    with BackgroundServer(app) as server:
        yield LiveRegistry(url=server.url, context=context, admin_token=admin)
    context.engine.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the load-test smoke tests last: importing locust monkey-patches this process with
    gevent (threads become greenlets), and a registry's background log integrator
    waiting on a SQLite lock would then block the whole process."""
    items.sort(key=lambda item: "tests/loadtests/" in item.nodeid.replace("\\", "/"))
