"""The run's own Optuna journal, written in bulk from the parts' columns (issue 15): a journal rebuilt from the
parts (a rerun after a kill, or after the journal was lost) is line for line the one the live run wrote, from
parts of this version (constraint vectors, no records) and of earlier ones (each trial's journal record)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl

from dse.runs.layout import CONSTRAINTS_COLUMN
from dse.runs.writer import PartStore, atomic_write_ipc
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from dse.study.storage import json_number_series, json_number_texts
from _spaces import study_file


def _lines(run: Path) -> list[str]:
    """The journal's lines, without the writer's id (one per process that wrote them)."""
    return [re.sub(r'"worker_id":"[^"]*"', "", x) for x in (run / "journal.log").read_text().splitlines()]


def _trial_lines(run: Path) -> list[str]:
    return [x for x in _lines(run) if x.startswith('{"op_code":4,')]


def test_a_journal_rebuilt_from_the_parts_is_the_live_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    cfg = study_file(tmp_path, budget={"trials": 48})
    run = tmp_path / "r"
    StudyRunner(load_study(cfg), run).run()
    live = _trial_lines(run)
    assert len(live) == 48
    parts = PartStore(run, create=False).read_all()
    assert CONSTRAINTS_COLUMN in parts.columns and "_optuna" not in parts.columns
    (run / "journal.log").unlink()
    StudyRunner(load_study(cfg), run).run()  # nothing left to run: the journal is rebuilt from the parts
    assert _trial_lines(run) == live


def test_parts_with_journal_records_still_resume_and_mirror(tmp_path, monkeypatch):
    """Parts of an earlier version (each trial's journal record in `_optuna`, no constraint vectors) give the
    same journal, and a run resumed from them goes on as before."""
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    cfg = study_file(tmp_path, budget={"trials": 48})
    ref = tmp_path / "ref"
    StudyRunner(load_study(cfg), ref).run()
    run = tmp_path / "r"
    runner = StudyRunner(load_study(cfg), run, trials=32)
    runner.run()
    store = PartStore(run, create=False)
    for i, path in zip(store.indices(), store.paths()):  # rewritten as an earlier version wrote them
        part = store.read(i)
        old = part.with_columns(pl.Series("_optuna", runner.stored_records(part), dtype=pl.String),
                                pl.Series("_study_attrs", [None] * part.height, dtype=pl.String)
                                ).drop(CONSTRAINTS_COLUMN)
        atomic_write_ipc(old, path.with_suffix(".arrows"))
        path.unlink()
    (run / "journal.log").unlink()
    StudyRunner(load_study(cfg), run).run()
    def untimed(run: Path) -> list[str]:  # the two runs ran at other times
        return [re.sub(r'"datetime_(start|complete)":"[^"]*"', "", x) for x in _trial_lines(run)]

    assert untimed(run) == untimed(ref)
    a = pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete")
    b = pl.read_parquet(ref / "results.parquet").drop("datetime_start", "datetime_complete")
    assert a.equals(b)


def test_json_number_series_is_json_for_every_magnitude():
    rng = np.random.default_rng(5)
    with np.errstate(over="ignore"):
        a = rng.normal(size=5000) * 10.0 ** rng.integers(-320, 309, 5000)
    a[:12] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, 1e-4, 9.999999999999999e-05, 1e16, 1e15, 5e-324, 1e308]
    assert json_number_series(a).to_list() == json_number_texts(a) == [json.dumps(x) for x in a.tolist()]
