"""The Optuna mirror written by a child process (large runs) equals the one the runner writes itself (small
runs): same trials, params, values, states, attributes and times; the child leaves no lock behind."""

from __future__ import annotations

from pathlib import Path

import optuna
import polars as pl
import pytest

import dse.study.runner as runner_mod
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def _journal(run: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _key(t: optuna.trial.FrozenTrial) -> tuple:
    return (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs)


@pytest.mark.parametrize("resume", [False, True])
def test_mirror_process_writes_the_same_journal_as_the_runner(tmp_path, monkeypatch, resume):
    cfg = study_file(tmp_path, budget={"trials": 64})
    monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 10**9)  # the runner writes it
    StudyRunner(load_study(cfg), tmp_path / "fg").run()
    monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 0)  # a child process writes it
    if resume:  # half by the runner, the rest by the child after a resume
        monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 10**9)
        StudyRunner(load_study(cfg), tmp_path / "bg", trials=32).run()
        monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 0)
    res = StudyRunner(load_study(cfg), tmp_path / "bg").run()
    assert res.summary["trials"] == 64
    fg, bg = _journal(tmp_path / "fg", "t"), _journal(tmp_path / "bg", "t")
    assert len(bg) == 64 and [t.number for t in bg] == list(range(64))
    assert [_key(t) for t in bg] == [_key(t) for t in fg]
    parts = pl.read_parquet(tmp_path / "bg" / "results.parquet").sort("trial")
    assert [t.datetime_start for t in bg] == parts["datetime_start"].to_list()  # the batch's own times
    assert not (tmp_path / "bg" / "journal.log.lock").exists()
