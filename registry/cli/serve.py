"""``chipreg serve``: run the registry API with uvicorn.

With several workers the parent migrates once, imports the app once and forks the workers
(:mod:`registry.prefork`): a worker only builds its app, so start-up and the replacement of a
dead worker cost no imports. On a loaded host every import is on the path from a restart to the
first acknowledged report (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import shutil
import sys
import tempfile
from typing import TYPE_CHECKING

import uvicorn

from registry.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

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


def create_app(settings: Settings) -> FastAPI:
    from registry.api.app import create_app as create

    return create(settings)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        print("chipreg serve: --workers must be at least 1", file=sys.stderr)
        return 2
    print(f"chipreg registry on http://{args.host}:{args.port}  (API docs: /docs)", flush=True)
    # No garbage collection while the app is imported and built: collections over the growing
    # heap of new modules were a fifth of start-up. Everything built is then frozen (kept out of
    # later collections) and the collector runs again: gc.freeze()'s idiom for servers that
    # fork (registry.prefork).
    gc.disable()
    try:
        if args.workers > 1:
            # Workers share metrics through files (prometheus_client multiprocess mode): the
            # variable must be set before anything imports prometheus_client.
            metrics_dir = tempfile.mkdtemp(prefix="chipreg-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
            try:
                return _serve_workers(args, settings)
            finally:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        app = create_app(settings)
        if args.verifier and _start_verifier(app, settings) != 0:
            return 2
        gc.freeze()
        gc.enable()
        # log_config=None: uvicorn's error and access loggers go through registry.logconfig.
        uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=True)
        return 0
    finally:
        gc.enable()


def _start_verifier(app: FastAPI, settings: Settings) -> int:
    from registry.workers.verifier import VerifierWorker
    from verifier.errors import PolicyError
    from verifier.policy import load_builtin_policy

    try:
        policy = load_builtin_policy(settings.verifier_policy)
    except PolicyError as exc:
        print(f"chipreg serve: {exc}", file=sys.stderr)
        return 2
    context = app.state.context
    VerifierWorker(context.sessions, settings, policy, context.clock).start()
    return 0


def _serve_workers(args: argparse.Namespace, settings: Settings) -> int:
    """Migrate once, import the app once, then fork the workers (registry.prefork)."""
    from prometheus_client import multiprocess

    from registry.api.app import create_worker_app
    from registry.prefork import serve_prefork

    if args.verifier:
        # The verifier thread runs in the parent; the forked workers build their own engines
        # and never touch the parent's.
        if _start_verifier(create_app(settings), settings) != 0:
            return 2
    else:
        _prepare(settings)
    logging.getLogger(__name__).info("starting %d forked workers", args.workers)
    serve_prefork(
        create_worker_app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        on_exit=multiprocess.mark_process_dead,
    )
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
