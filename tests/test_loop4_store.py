"""The study loop's cheaper storage paths give what the paths they replace gave: journal lines built as bytes by
polars, normalized columns passed on, coded texts written as before, finalize of rows in trial order or not."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dse.runs import Objective, RunMeta
from dse.runs.colpart import Coded, encode_columns, read_columns
from dse.runs.writer import finalize
from dse.study.cache import Normalized
from dse.study.evaluator import normalize
from dse.study.execution import evaluate_jointly
from dse.study.storage import GroupCommitBackend, TrialRecords, _journal_head
from test_study_mirror import _batch_case


@pytest.mark.parametrize("n_obj", [1, 3])
@pytest.mark.parametrize("n", [1, 7, 100])
def test_batch_journal_lines_are_the_records_with_their_head(n_obj, n):
    """`TrialRecords.batch(head=...)` is the bytes of `head + record[1:]` per record, each line ended by a
    newline, for the records `batch` writes (text for text `record`'s, tests/test_study_mirror.py)."""
    rng = np.random.default_rng(n * 10 + n_obj)
    dists, knobs, failed, Y, sys_attrs, feasible, reasons, km = _batch_case(rng, n, n_obj)
    rec = TrialRecords(dists)
    start, complete = "2026-01-02T03:04:05.678901+00:00", "2026-01-02T03:04:06.000000+00:00"
    texts = rec.batch(knobs, failed, Y, sys_attrs, feasible, reasons, km, start, complete)
    head = _journal_head(3, "worker-ü")
    lines = rec.batch(knobs, failed, Y, sys_attrs, feasible, reasons, km, start, complete, head=head)
    assert isinstance(lines, list) and all(type(x) is bytes for x in lines)
    assert lines == [(head + t[1:] + "\n").encode("utf-8") for t in texts]
    # the plain records are still built after the journal lines were (each form has its own cached expression)
    assert rec.batch(knobs, failed, Y, sys_attrs, feasible, reasons, km, start, complete) == texts


def test_journal_append_of_bytes_is_the_append_of_the_lines(tmp_path):
    """`append_lines` of the lines as bytes (in one piece or one per line) writes the file the list of lines
    writes, and counts its lines."""
    lines = ['{"op_code":4,"a":1}', '{"op_code":4,"b":"ü"}']
    files = {}
    for how in ("list", "bytes", "joined"):
        path = tmp_path / f"{how}.log"
        backend = GroupCommitBackend(path)
        before = backend._n_file
        data = lines if how == "list" else [(x + "\n").encode() for x in lines]
        if how == "joined":
            data = [b"".join(data)]
        backend.append_lines(data, sync=True, count=None if how == "list" else 2)
        backend.append_lines(data, count=2)
        assert backend._n_file == before + 4
        files[how] = path.read_bytes()
    assert files["list"] == files["bytes"] == files["joined"]


def test_normalize_passes_normalized_columns_on():
    """`normalize`'s result is `Normalized` and is passed on as it is; a plain dict of the same columns is
    normalized to equal columns; slices of a `Normalized` chunk (several batches evaluated together) stay so."""
    raw = {"x": [1.0, 2.0, 3.0], "feasible": [1, 0, 1], "reason": ["", 5, "r"], "k": 2.0}
    out = normalize(raw, 3)
    assert type(out) is Normalized and normalize(out, 3) is out
    again = normalize(dict(out), 3)
    assert type(again) is Normalized and again is not out
    for k in out:
        assert np.array_equal(again[k], out[k]) and again[k].dtype == out[k].dtype
    assert out["reason"].tolist() == ["", "5", "r"] and out["feasible"].dtype == bool
    assert out["k"].tolist() == [2.0, 2.0, 2.0]

    def evaluate(cols):
        n = len(cols["x"])
        return [(slice(0, n), normalize({"y": cols["x"] * 2}, n))]

    got = evaluate_jointly(evaluate, [{"x": np.arange(3.0)}, {"x": np.arange(2.0)}])
    assert [type(r) for mine in got for _, r in mine] == [Normalized, Normalized]
    assert got[1][0][1]["y"].tolist() == [0.0, 2.0]


def test_coded_text_columns_are_written_as_their_texts():
    """A `Coded` column of texts (codes of any integer type) is stored as the same column of texts given row by
    row, and reads back so; other coded values (lists) keep their JSON dictionary."""
    n = 6
    texts = np.array(["a", "b", "a", "c", "b", "a"], dtype=object)
    for codes in (np.array([0, 1, 0, 2, 1, 0], dtype=np.int64), np.array([0, 1, 0, 2, 1, 0], dtype=np.int32)):
        coded = encode_columns({"t": Coded(["a", "b", "c"], codes), "x": np.arange(n, dtype=float)})
        assert coded == encode_columns({"t": texts, "x": np.arange(n, dtype=float)})
        assert read_columns(coded)["t"].to_list() == texts.tolist()
    lists = encode_columns({"p": Coded([["a", "b"], ["c"]], np.array([0, 1, 1, 0, 0, 1])), "x": np.arange(n)})
    assert read_columns(lists)["p"].to_list() == [["a", "b"], ["c"], ["c"], ["a", "b"], ["a", "b"], ["c"]]


def test_finalize_sorts_rows_that_are_not_in_trial_order(tmp_path):
    """finalize writes results.parquet in trial order whether the rows come in order (kept as they are) or not."""
    rng = np.random.default_rng(5)
    n = 30
    df = pl.DataFrame({"trial": np.arange(n), "batch": np.arange(n) // 10, "state": ["COMPLETE"] * n,
                       "y1": rng.random(n), "y2": rng.random(n), "feasible": rng.random(n) > 0.2,
                       "reason": [""] * n})
    objs = [Objective(metric="y1", direction="maximize"), Objective(metric="y2", direction="minimize")]
    out = {}
    for how, rows in (("sorted", df), ("shuffled", df.sample(fraction=1.0, shuffle=True, seed=1))):
        run = tmp_path / how
        run.mkdir()
        summary = finalize(run, RunMeta(name="toy", objectives=objs, knobs=[]), wall_time_s=1.0,
                           trials_this_run=n, parts=rows)
        summary.pop("finished_at")
        out[how] = (summary, pl.read_parquet(run / "results.parquet"), pl.read_parquet(run / "pareto.parquet"))
    assert out["sorted"][1]["trial"].to_list() == list(range(n))
    assert out["sorted"][0] == out["shuffled"][0]
    assert out["sorted"][1].equals(out["shuffled"][1]) and out["sorted"][2].equals(out["shuffled"][2])


def test_journal_append_of_many_pieces_writes_them_all_in_order(tmp_path, monkeypatch):
    """More pieces than one writev takes (`_IOV_MAX`), and a writev that writes only part (a full disk's short
    write, then room again): the file holds every piece once, in order."""
    from dse.study import storage

    pieces = [f'{{"op_code":4,"i":{i}}}\n'.encode() for i in range(2 * storage._IOV_MAX + 7)]
    backend = GroupCommitBackend(tmp_path / "a.log")
    before = backend._n_file
    backend.append_lines(pieces)
    assert (tmp_path / "a.log").read_bytes().endswith(b"".join(pieces)) and backend._n_file == before + len(pieces)
    real = storage.os.writev
    monkeypatch.setattr(storage.os, "writev", lambda fd, bufs: real(fd, [bytes(bufs[0][:5])]))
    backend = GroupCommitBackend(tmp_path / "b.log")
    backend.append_lines(pieces)
    assert (tmp_path / "b.log").read_bytes().endswith(b"".join(pieces))
