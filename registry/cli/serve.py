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
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    app = create_app(settings)
    print(f"chipreg registry on http://{args.host}:{args.port}  (API docs: /docs)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
