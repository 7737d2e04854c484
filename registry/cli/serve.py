"""``chipreg serve``: run the registry API with uvicorn.

With several workers, uvicorn *spawns* them (fresh interpreters that each import the app), so
the parent only does what must happen once before they start (migrate, create a development
log key) and does not import the web app itself: on a loaded host every import is on the path
from a restart to the first acknowledged report (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile

import uvicorn

from registry.settings import Settings

__all__ = ["add_parser"]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve",
        help="run the registry API",
        description="Run the registry API. Configuration comes from CHIPREG_* variables "
        "(CHIPREG_DATABASE_URL, CHIPREG_LOG_KEY_FILE, CHIPREG_LOG_ORIGIN, CHIPREG_ENVIRONMENT).",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes (default: one per CPU, %(default)s here). Each verifies "
        "signatures on its own core and group-commits its batches; the log's append lock keeps "
        "them consistent",
    )
    p.add_argument(
        "--verifier",
        action="store_true",
        help="also run continuous verification and webhook delivery in this process "
        "(policy CHIPREG_VERIFIER_POLICY)",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        print("chipreg serve: --workers must be at least 1", file=sys.stderr)
        return 2
    print(f"chipreg registry on http://{args.host}:{args.port}  (API docs: /docs)", flush=True)
    if args.workers == 1 or args.verifier:
        from registry.api.app import create_app
        from registry.worker import VerifierWorker
        from verifier.errors import PolicyError
        from verifier.policy import load_builtin_policy

        app = create_app(settings)
        if args.verifier:
            try:
                policy = load_builtin_policy(settings.verifier_policy)
            except PolicyError as exc:
                print(f"chipreg serve: {exc}", file=sys.stderr)
                return 2
            context = app.state.context
            VerifierWorker(context.sessions, settings, policy, context.clock).start_thread()
    else:
        _prepare(settings)
    if args.workers == 1:
        # log_config=None: uvicorn's error and access loggers go through registry.logconfig.
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=True)
        return 0
    # Migrated (and the development log key created) once above, before the workers start.
    # Workers share metrics through files (prometheus_client multiprocess mode); the variable
    # must be set before they import prometheus_client.
    metrics_dir = tempfile.mkdtemp(prefix="chipreg-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    logging.getLogger(__name__).info(
        "starting %d workers (health-check timeout %d s)",
        args.workers,
        settings.worker_healthcheck_timeout_s,
    )
    try:
        uvicorn.run(
            "registry.api.app:create_worker_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=True,
            # A worker imports FastAPI, SQLAlchemy and the routes before it can answer the
            # supervisor's ping: seconds on a loaded host. uvicorn's 5 s default then kills
            # and respawns workers in a loop and the registry never comes up.
            timeout_worker_healthcheck=settings.worker_healthcheck_timeout_s,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _prepare(settings: Settings) -> None:
    """What must happen once before workers start: schema migrated, log key present."""
    from registry.db.engine import make_engine
    from registry.db.migrate import upgrade
    from registry.logkey import load_log_signer

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    load_log_signer(settings)
