"""The run's journal file is appended once per batch without an fsync (the parts are the system of record) and
flushed to disk once, when the mirror closes at the end of the run; what it holds is what Optuna reads."""

from __future__ import annotations

import os

import optuna

import dse.study.storage as storage_mod
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def test_journal_is_synced_once_at_close(tmp_path, monkeypatch):
    cfg = study_file(tmp_path, budget={"trials": 64})  # several batches
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    synced: list[str] = []
    real_fsync = storage_mod.os.fsync
    closes: list[int] = []
    real_close = storage_mod.OptunaMirror.close

    def fsync(fd):  # (os.fsync of every module: the journal's are told apart by the file's name)
        if os.readlink(f"/proc/self/fd/{fd}").endswith("journal.log"):
            synced.append(len(closes))  # how many mirror closes had begun when this fsync ran
        return real_fsync(fd)

    def close(self):
        closes.append(1)
        return real_close(self)

    monkeypatch.setattr(storage_mod.os, "fsync", fsync)
    monkeypatch.setattr(storage_mod.OptunaMirror, "close", close)
    res = StudyRunner(load_study(cfg), tmp_path / "run").run()
    assert res.summary["trials"] == 64
    # one fsync of the appended lines, during the close; none per batch (Optuna's own appends of the study's
    # attributes, before the first batch, fsync as Optuna writes them)
    assert synced and synced[-1] == 1 and synced.count(1) == 1, synced
    batches = len(list((tmp_path / "run" / "parts").iterdir()))
    assert batches >= 4 and synced.count(0) < batches, synced  # not one per batch
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "run" / "journal.log")))
    trials = optuna.load_study(study_name="t", storage=storage).get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(64))
