"""Pre-fork workers for ``chipreg serve --workers N``: import the app once, then fork.

uvicorn's own supervisor *spawns* its workers: each is a fresh interpreter that imports FastAPI,
SQLAlchemy and every route again (seconds on a loaded host) before it can answer, so a restart
after a crash took as long as N cold starts competing for the CPUs, exactly when every agent
retries at once. Here the parent imports everything and binds the socket, and each worker is a
``fork()`` that only builds its app (engine, log signer, publisher) and serves: a worker is up
in well under a second, and one that dies is replaced as fast.

The parent holds no database connection, thread or event loop when it forks (the schema was
migrated by a disposed engine before); each child builds its own. SIGTERM or SIGINT to the parent
stops every worker gracefully.

Start-up follows the idiom of :func:`gc.freeze`'s documentation for pre-fork servers: the caller
may disable the garbage collector while it imports (collections over the ever-growing heap of
modules were a fifth of the parent's start-up CPU time), the parent freezes everything it built
right before each fork, and the collector runs again in the children (which then never touch the
parent's objects: less copy-on-write) and in the parent.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

__all__ = ["serve_prefork"]

_log = logging.getLogger(__name__)
_RESPAWN_PAUSE_S = 1.0  # a worker that keeps failing at start must not spin the parent
# No WebSocket routes: ws="none" spares each worker the WebSocket protocol's import.
_WORKER_CONFIG: dict[str, Any] = {
    "log_config": None,
    "access_log": True,
    "lifespan": "on",
    "ws": "none",
}


def _preload_uvicorn() -> None:
    """Import, once in the parent, what ``uvicorn.Config.load()`` and ``Server.run()`` would
    import in every worker (HTTP protocol, lifespan, event loop factory)."""
    from uvicorn.config import HTTP_PROTOCOLS, LIFESPAN, LOOP_FACTORIES
    from uvicorn.importer import import_from_string

    for target in (HTTP_PROTOCOLS["auto"], LIFESPAN[_WORKER_CONFIG["lifespan"]]):
        import_from_string(target)
    loop_factory = LOOP_FACTORIES["auto"]
    if loop_factory is not None:
        import_from_string(loop_factory)


def _child(app_factory: Callable[[], Any], sock: socket.socket) -> int:
    gc.enable()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    try:
        app = app_factory()
        config = uvicorn.Config(app, **_WORKER_CONFIG)
        uvicorn.Server(config).run(sockets=[sock])
    except BaseException:  # noqa: BLE001 - a forked child must never return into the parent's code
        _log.exception("worker %d failed", os.getpid())
        return 1
    return 0


def serve_prefork(
    app_factory: Callable[[], Any],
    *,
    host: str,
    port: int,
    workers: int,
    on_exit: Callable[[int], None] | None = None,
) -> None:
    """Bind ``host:port``, fork ``workers`` children serving ``app_factory()``, keep them up.

    ``on_exit(pid)`` runs in the parent for every child that ended (metrics clean-up).
    """
    _preload_uvicorn()
    sock = uvicorn.Config(app="unused:app", host=host, port=port, log_config=None).bind_socket()
    children: dict[int, float] = {}
    stopping = False

    def spawn() -> None:
        gc.freeze()  # what the parent built stays out of the children's collections
        pid = os.fork()
        if pid == 0:
            os._exit(_child(app_factory, sock))
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _log.info("Started parent process [%d] on http://%s:%d", os.getpid(), host, port)
        for _ in range(workers):
            spawn()
        gc.enable()  # the caller may have disabled it for its imports
        while children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, time.monotonic())
            if on_exit is not None:
                on_exit(pid)
            if stopping:
                continue
            _log.warning(
                "worker %d ended (%s) after %.0f s; starting another",
                pid,
                os.waitstatus_to_exitcode(status),
                time.monotonic() - started,
            )
            if time.monotonic() - started < _RESPAWN_PAUSE_S:
                time.sleep(_RESPAWN_PAUSE_S)
            if not stopping:
                spawn()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
