"""``chipreg serve``: run the registry API with uvicorn."""

from __future__ import annotations

import argparse

import uvicorn

from registry.api.app import create_app
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
        default=1,
        help="uvicorn worker processes (the log's append lock keeps them consistent)",
    )
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1:
        print("chipreg serve: --workers must be at least 1")
        return 2
    print(f"chipreg registry on http://{args.host}:{args.port}  (API docs: /docs)", flush=True)
    if args.workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
        return 0
    # Migrate (and create the development log key) once, before the workers start.
    create_app(settings).state.context.engine.dispose()
    uvicorn.run(
        "registry.api.app:create_worker_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
    )
    return 0
