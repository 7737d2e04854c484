"""What the app holds for its lifetime: settings, database, log identity, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from attestation.gpu import GpuRoot
from registry.services.log import LogSigner
from registry.settings import Settings
from registry.workers.checkpoints import CheckpointPublisher

__all__ = ["AppContext", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class AppContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    # The ingest writer's (registry.ingest.writer): apart from the requests' pool.
    ingest_engine: Engine
    log_signer: LogSigner
    clock: Callable[[], datetime] = utc_now
    publisher: CheckpointPublisher | None = None
    gpu_roots: tuple[GpuRoot, ...] = ()  # read once from settings.gpu_root_files
