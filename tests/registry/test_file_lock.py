"""The SQLite write lock's claim: the integrator goes before writers that queue after it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from registry.ingest import writer
from registry.ingest.writer import file_lock


def test_a_claim_is_removed_once_its_holder_has_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "db.ingest-lock"
    with file_lock(lock, claim=True, holder="integrator"):
        assert not Path(f"{lock}.claim").exists()


def test_a_stale_claim_delays_a_writer_but_does_not_stop_it(tmp_path: Path) -> None:
    lock = tmp_path / "db.ingest-lock"
    Path(f"{lock}.claim").touch()  # left by an integrator killed while it waited
    taken = []
    with file_lock(lock):
        taken.append("writer")
    assert taken == ["writer"]


def test_the_claimant_takes_the_lock_before_a_writer_that_came_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "CLAIM_DEFER_S", 30.0)  # the order, not the timing, is tested
    lock = tmp_path / "db.ingest-lock"
    claim = Path(f"{lock}.claim")
    order: list[str] = []
    writer_deferring = threading.Event()

    def take(name: str, *, claims: bool) -> None:
        with file_lock(lock, claim=claims, holder=name):
            order.append(name)

    with file_lock(lock):  # a writer's group holds it
        integrator = threading.Thread(target=take, args=("integrator",), kwargs={"claims": True})
        integrator.start()
        while not claim.exists():
            threading.Event().wait(0.001)
        late = threading.Thread(
            target=lambda: (writer_deferring.set(), take("writer", claims=False))
        )
        late.start()
        writer_deferring.wait()
    integrator.join(10)
    late.join(10)
    assert order == ["integrator", "writer"]
