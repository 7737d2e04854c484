"""Spool: atomic writes, ordering, ack/reject, chip ids with ':'."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agents.errors import SpoolError
from agents.spool import Spool, write_atomic


def test_put_writes_named_file_and_reads_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    item = spool.put("NV-1", 7, b'{"x":1}')
    assert item.path.name == "NV-1.000000000007.json"
    assert item.read() == b'{"x":1}'
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["NV-1.000000000007.json"]


def test_chip_ids_with_colon_and_dots_are_encoded_and_parsed_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    item = spool.put("GPU:ab.cd-1", 3, b"{}")
    assert ":" not in item.path.name
    (pending,) = spool.pending()
    assert (pending.chip_id, pending.seq) == ("GPU:ab.cd-1", 3)
    latest = spool.latest("GPU:ab.cd-1")
    assert latest is not None
    assert latest.seq == 3


def test_invalid_chip_id_refused(tmp_path: Path) -> None:
    with pytest.raises(SpoolError):
        Spool(tmp_path).put("../etc", 1, b"{}")


def test_same_seq_different_content_is_refused_same_content_is_idempotent(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.put("A", 1, b"one")
    spool.put("A", 1, b"one")
    with pytest.raises(SpoolError, match="different report"):
        spool.put("A", 1, b"two")
    assert spool.pending()[0].read() == b"one"


def test_pending_is_seq_ordered_per_chip_even_if_mtimes_disagree(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    a2 = spool.put("A", 2, b"a2")
    a1 = spool.put("A", 1, b"a1")
    b1 = spool.put("B", 1, b"b1")
    # Make a2 look oldest: pending must still give A1 before A2.
    os.utime(a2.path, ns=(1, 1))
    os.utime(a1.path, ns=(5, 5))
    os.utime(b1.path, ns=(3, 3))
    order = [(i.chip_id, i.seq) for i in spool.pending()]
    assert order == [("A", 1), ("B", 1), ("A", 2)]
    assert [(i.chip_id, i.seq) for i in spool.pending(limit=2)] == [("A", 1), ("B", 1)]


def test_ack_deletes_and_reject_moves_aside_with_reason(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ok = spool.put("A", 1, b"a1")
    bad = spool.put("A:x", 2, b"a2")
    spool.ack(ok)
    moved = spool.reject(bad, "sequence_gap", "missing seq 1")
    assert spool.pending() == []
    assert moved.path.parent == tmp_path / "rejected"
    assert moved.read() == b"a2"
    sidecar = moved.path.with_name(moved.path.name.removesuffix(".json") + ".error.json")
    err = json.loads(sidecar.read_bytes())
    assert (err["code"], err["detail"], err["chip_id"], err["seq"]) == (
        "sequence_gap",
        "missing seq 1",
        "A:x",
        2,
    )
    assert [(i.chip_id, i.seq) for i in spool.rejected()] == [("A:x", 2)]
    # A rejected seq still counts as used: it cannot be re-spooled with other bytes.
    with pytest.raises(SpoolError):
        spool.put("A:x", 2, b"other")


def test_latest_considers_highest_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.latest("A") is None
    for seq in (1, 3, 2):
        spool.put("A", seq, b"x%d" % seq)
    spool.put("AB", 9, b"other chip with same prefix")
    latest = spool.latest("A")
    assert latest is not None
    assert latest.seq == 3
    assert {c: i.seq for c, i in spool.latest_by_chip().items()} == {"A": 3, "AB": 9}


def test_write_atomic_leaves_no_temp_files_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_write_atomic_failure_keeps_old_content(tmp_path: Path) -> None:
    target = tmp_path / "d"
    target.mkdir()  # os.replace of a file onto a directory fails
    with pytest.raises(SpoolError):
        write_atomic(target, b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["d"]
    assert list(target.iterdir()) == []


def test_stray_files_are_ignored(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / ".tmp-abc.part").write_bytes(b"half")
    (tmp_path / "notes.txt").write_bytes(b"x")
    assert spool.pending() == []
