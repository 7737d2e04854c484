"""Failures a command cannot recover from, said in one line instead of a traceback.

An operator who points ``CHIPREG_DATABASE_URL`` at a server that is down, or mistypes it, needs
to read what is wrong and where, not 117 lines of SQLAlchemy internals. The URL is shown with
its password masked; a driver message is cut to its first line and passed through
:func:`registry.logconfig.redact`.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from registry.logconfig import redact

if TYPE_CHECKING:
    from registry.settings import Settings

__all__ = ["describe_failure", "masked_url"]


def masked_url(url: str) -> str:
    """A database URL safe to print: the password, if any, replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return redact(url)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)


def describe_failure(exc: BaseException, settings: Settings) -> str | None:
    """One line for a database or configuration failure; None for anything else (a bug)."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError

    where = masked_url(settings.database_url)
    if isinstance(exc, (OperationalError, InterfaceError)):
        return f"cannot use the database at {where}: {_first_line(exc)}"
    if isinstance(exc, (ArgumentError, NoSuchModuleError)):
        return f"invalid CHIPREG_DATABASE_URL {where}: {_first_line(exc)}"
    return None
