"""The Optuna mirror written by a child process (large runs) equals the one the runner writes itself (small
runs): same trials, params, values, states, attributes and times; the child leaves no lock behind."""

from __future__ import annotations

from pathlib import Path

import optuna
import polars as pl
import pytest

import dse.study.runner as runner_mod
from dse.study.runner import StudyRunner, mirror_in_background
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
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")  # the runner writes it
    StudyRunner(load_study(cfg), tmp_path / "fg").run()
    if resume:  # half by the runner, the rest by the child after a resume
        StudyRunner(load_study(cfg), tmp_path / "bg", trials=32).run()
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "always")  # a child process writes it
    res = StudyRunner(load_study(cfg), tmp_path / "bg").run()
    assert res.summary["trials"] == 64
    fg, bg = _journal(tmp_path / "fg", "t"), _journal(tmp_path / "bg", "t")
    assert len(bg) == 64 and [t.number for t in bg] == list(range(64))
    assert [_key(t) for t in bg] == [_key(t) for t in fg]
    parts = pl.read_parquet(tmp_path / "bg" / "results.parquet").sort("trial")
    assert [t.datetime_start for t in bg] == parts["datetime_start"].to_list()  # the batch's own times
    assert not (tmp_path / "bg" / "journal.log.lock").exists()


def test_when_the_mirror_goes_to_a_child(monkeypatch):
    monkeypatch.delenv("DSE_MIRROR_PROCESS", raising=False)
    monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 5000)
    monkeypatch.setattr(runner_mod.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    monkeypatch.setattr(runner_mod.os, "cpu_count", lambda: 2)
    assert not mirror_in_background(4999) and mirror_in_background(5000) and mirror_in_background(None)
    monkeypatch.setattr(runner_mod.os, "getloadavg", lambda: (1.5, 1.0, 1.0))  # no idle CPU: no gain
    assert not mirror_in_background(10**6)
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "always")
    assert mirror_in_background(1)
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    assert not mirror_in_background(None)
