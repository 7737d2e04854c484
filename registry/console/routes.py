"""The console's pages: server-rendered HTML over the same services (and so the same access
rules) as the API. A session cookie stands for the API token the user logged in with; every
form carries the session's CSRF secret; every page read by an audited role is recorded.

The pages live in one module per page group (``overview``, ``findings``, ``inventory``,
``log``, ``reports``), on the one router of :mod:`registry.console.base`."""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from registry.console import findings, inventory, log, overview, reports
from registry.console.base import router

__all__ = ["install_console"]

# Importing the page modules registers their routes on the router.
_PAGES = (overview, findings, inventory, log, reports)


def install_console(app: FastAPI) -> None:
    """Mount the console, its static assets, and ``/`` -> ``/console``."""
    app.include_router(router)
    static = files("registry.console") / "static"
    app.mount("/console/static", StaticFiles(directory=str(static)), name="console-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console", status_code=307)
