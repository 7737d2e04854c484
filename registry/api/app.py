"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from attestation.cosignature import CosignatureVerifier
from attestation.gpu import load_gpu_root
from registry.api.body import StrictJsonRoute
from registry.api.context import AppContext, utc_now
from registry.api.openapi import install_openapi, operation_id
from registry.api.problems import install_problem_handlers
from registry.api.routes import (
    accounts,
    conditions_budgets,
    custody,
    declarations,
    gpu,
    health,
    inventory,
    landmarks_meters,
    lifecycle,
    log,
    queries,
    reports,
    verifier,
)
from registry.console.routes import install_console
from registry.db.engine import make_engine, make_session_factory
from registry.db.migrate import upgrade
from registry.logconfig import configure_logging
from registry.logkey import load_log_signer
from registry.settings import Settings
from registry.workers.checkpoints import CheckpointPublisher, WitnessEndpoint
from registry.workers.integrator import IntegratorWorker

__all__ = ["create_app", "create_worker_app"]

DESCRIPTION = """\
chipreg records AI accelerators (identities endorsed by their manufacturers), where they are
and who controls them, ingests their signed usage reports into an append-only Merkle log, and
flags what a treaty inspector must see. The wire protocol is specified in docs/PROTOCOL.md.

Authenticate with `Authorization: Bearer <token>` (Authorize button). Errors are RFC 9457
problem documents with a stable `code`.
"""


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or Settings()
    engine = make_engine(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    if migrate:
        upgrade(engine)
    sessions = make_session_factory(engine)
    log_signer = load_log_signer(settings)
    publisher = CheckpointPublisher(
        sessions,
        log_signer,
        utc_now,
        witnesses=[
            WitnessEndpoint(w.url, CosignatureVerifier.from_vkey(w.vkey))
            for w in settings.witnesses
        ],
        interval_s=settings.checkpoint_interval_s,
        witness_timeout_s=settings.witness_timeout_s,
    )
    # The ingest writer's own engine (its own pool: it must never wait for a request's
    # connection); the writer and its thread are made on the first report in each process.
    ingest_engine = make_engine(
        settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms
    )
    context = AppContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        ingest_engine=ingest_engine,
        log_signer=log_signer,
        publisher=publisher,
        gpu_roots=tuple(load_gpu_root(path.read_bytes()) for path in settings.gpu_root_files),
    )

    # Each process runs an integrator (one holds the lease and works): it folds the sequenced
    # entries into the tree and has the publisher sign checkpoints (never per request).
    integrator = IntegratorWorker(
        make_engine(settings.database_url, sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms),
        publisher,
        utc_now,
        interval_s=settings.checkpoint_interval_s,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        integrator.start()
        try:
            yield
        finally:
            integrator.stop()
            publisher.stop()
            ingest_engine.dispose()

    # docs_url=None: the default Swagger UI loads from a CDN; ours is served from the package.
    app = FastAPI(
        title="chipreg registry",
        version="1",
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.router.route_class = StrictJsonRoute  # routes added here (/docs); routers set their own
    app.state.context = context
    install_problem_handlers(app)
    app.add_middleware(log.CompressLog)
    for module in (
        accounts,
        declarations,
        custody,
        conditions_budgets,
        reports,
        landmarks_meters,
        gpu,
        inventory,
        queries,
        lifecycle,
        verifier,
        log,
        health,
    ):
        app.include_router(module.router)

    install_console(app)
    install_openapi(app)

    static = files("fastapi_offline") / "static"
    app.mount("/static/docs", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="chipreg registry API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    return app


def create_worker_app() -> FastAPI:
    """Factory for uvicorn worker processes: ``chipreg serve`` migrated the schema already.

    Workers are separate (spawned) processes: they configure logging from the same settings.
    """
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, migrate=False)
