"""The part log (`parts/generations.dlog`, dse.runs.partlog): records read back as written; a record cut anywhere
by a crash (the log's torn tail) is not part of the log and the next writer cuts it off, so a crash loses at most
that generation; damage followed by more records is an error that says where; a failed append leaves the log
whole; a tombstone hands a part back to its file."""

from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from dse.errors import DseUserError
from dse.runs.colpart import encode_columns
from dse.runs.partlog import PartLog, PartLogError
from dse.runs.writer import PartStore


def _gen(b: int, n: int = 5) -> dict[str, np.ndarray]:
    return {"trial": np.arange(b * n, (b + 1) * n, dtype=np.int64), "x": np.full(n, float(b)),
            "reason": np.array(["", "too hot"] * (n // 2) + [""] * (n % 2))}


def _store(tmp_path, gens: int = 3) -> PartStore:
    store = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
    for b in range(gens):
        store.write_columns(b, _gen(b))
    store.close()
    return store


def test_records_round_trip_and_a_reader_follows_the_writer(tmp_path):
    store = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
    reader = PartStore(tmp_path / "r", create=False)
    assert reader.indices() == [] and reader.read_all() is None
    for b in range(3):
        store.write_columns(b, _gen(b))
        assert reader.indices() == list(range(b + 1))  # in place at once (before its flush)
    store.close()
    assert [p.name for p in (tmp_path / "r" / "parts").iterdir()] == ["generations.dlog"]
    df = PartStore(tmp_path / "r", create=False).read_all()
    assert df["trial"].to_list() == list(range(15)) and df["x"].to_list() == [0.0] * 5 + [1.0] * 5 + [2.0] * 5
    assert df["reason"].to_list()[:2] == ["", "too hot"] and reader.rows() == 15
    assert reader.read(1, ["x"]).columns == ["x"]


def test_a_record_cut_anywhere_is_dropped_and_the_next_writer_cuts_it_off(tmp_path):
    _store(tmp_path, 2)
    path = tmp_path / "r" / "parts" / "generations.dlog"
    whole = path.read_bytes()
    first = len(whole) // 2  # (two records of the same size)
    assert whole[first:first + 8] == b"DSEREC01"
    cuts = sorted({first + 1, first + 8, first + 23, first + 24, first + 100, len(whole) - 8, len(whole) - 1})
    for tail in [whole[first:c] for c in cuts] + [bytes(len(whole) - first), whole[first:-64] + bytes(64)]:
        path.write_bytes(whole[:first] + tail)  # the second record torn (or its end not written: zeros)
        reader = PartStore(tmp_path / "r", create=False)
        assert reader.indices() == [0] and reader.rows() == 5
        writer = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
        writer.write_columns(1, _gen(1))  # the rerun stores that generation again, after the whole records
        writer.close()
        assert path.read_bytes() == whole


def test_damage_followed_by_records_is_an_error_that_says_where(tmp_path):
    _store(tmp_path, 3)
    path = tmp_path / "r" / "parts" / "generations.dlog"
    whole = bytearray(path.read_bytes())
    size = (len(whole)) // 3
    bad = bytearray(whole)
    bad[size:size + 8] = b"garbage!"  # the second record's marker
    path.write_bytes(bytes(bad))
    with pytest.raises(DseUserError, match=rf"generations.dlog: damaged record at byte {size} .*truncate -s {size} "):
        PartStore(tmp_path / "r", create=False).read_all()
    bad = bytearray(whole)
    bad[2 * size - 3:2 * size] = b"xyz"  # the second record's end marker
    path.write_bytes(bytes(bad))
    with pytest.raises(PartLogError) as err:
        PartLog(path).scan()
    assert err.value.offset == size


def test_a_failed_append_leaves_the_log_whole(tmp_path, monkeypatch):
    store = PartStore(tmp_path / "r", fmt="dcol")
    store.write_columns(0, _gen(0))
    real = os.writev

    def full(fd, bufs):
        real(fd, [bytes(b)[:10] for b in bufs])  # part of it written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError, match="No space"):
        store.write_columns(1, _gen(1))
    monkeypatch.setattr(os, "writev", real)
    store.write_columns(1, _gen(1))
    store.close()
    assert PartStore(tmp_path / "r", create=False).read_all()["trial"].to_list() == list(range(10))


def test_the_log_and_older_files_read_together_by_part(tmp_path):
    """A run stored by an earlier version (a `.dcol` file per generation) resumes into the log; a part in both
    reads from the log (its writer removes the file), and a tombstone hands it back to a file."""
    parts = tmp_path / "r" / "parts"
    parts.mkdir(parents=True)
    (parts / "part-000000.dcol").write_bytes(encode_columns(_gen(0)))
    (parts / "part-000001.dcol").write_bytes(encode_columns(_gen(1)))
    store = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
    store.write_columns(1, _gen(1, 7))  # a re-run generation: now in the log, its file removed
    store.write_columns(2, _gen(2))
    store.close()
    assert sorted(p.name for p in parts.iterdir()) == ["generations.dlog", "part-000000.dcol"]
    back = PartStore(tmp_path / "r", create=False)
    assert back.indices() == [0, 1, 2] and back.rows() == 17 and back.read(1).height == 7
    assert back.path(0).name == "part-000000.dcol" and back.path(2).name == "generations.dlog"
