"""Process logging: one configuration for every chipreg process, with secrets masked.

Every process (``chipreg serve`` and its workers, ``verify --follow``, the witness, the agent)
calls :func:`configure_logging` once with its settings: records go to stderr with a UTC
timestamp, the level and the logger name, as text or as one JSON object per line
(``CHIPREG_LOG_LEVEL``, ``CHIPREG_LOG_FORMAT``). uvicorn is started with ``log_config=None`` so
its error and access loggers flow through the same handler.

Whatever a record carries, :func:`redact` runs over the formatted line: a database URL's
password, a bearer token, a chipreg API token or a signed-note private key never reaches a log.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import TextIO

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging", "redact"]

_MASK = "***"
_SECRETS = (
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), rf"\g<1>{_MASK}@"),
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), rf"\g<1>{_MASK}"),
    (re.compile(r"chipreg_[A-Za-z0-9_-]{8,}"), f"chipreg_{_MASK}"),
    (re.compile(r"PRIVATE\+KEY\+[^\s\"']+"), f"PRIVATE+KEY+{_MASK}"),
    (re.compile(r"(?i)(password=)[^\s&;]+"), rf"\g<1>{_MASK}"),
)


def redact(text: str) -> str:
    """``text`` with every secret it may carry masked (passwords in URLs, tokens, keys)."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _utc_time(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """``2026-12-03T20:10:11.123Z INFO registry.workers.verifier: message`` (exceptions follow)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc_time(record)} {record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message`` (and ``exc``)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": _utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(doc, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every record at ``level`` or above to ``stream`` (stderr) in format ``fmt``.

    Replaces the handlers of the root logger and of uvicorn's loggers (which then propagate to
    the root), so calling it again, e.g. in a worker process, does not duplicate lines.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
        uvicorn_logger.setLevel(logging.NOTSET)
    # httpx logs every request at INFO, with its URL: keep that for DEBUG.
    quiet = logging.DEBUG if root.level <= logging.DEBUG else logging.WARNING
    logging.getLogger("httpx").setLevel(quiet)
    # Alembic announces each of its plugins at INFO on every start; the upgrades it runs stay.
    logging.getLogger("alembic.runtime.plugins").setLevel(quiet)
