"""The run's journal file gets its lines in bulk (at most every JOURNAL_EVERY_TRIALS trials or JOURNAL_EVERY_S), each
append flushed to disk by the writer thread that makes it (fdatasync; the parts are the system of record), not
once per batch, and nothing is left to flush when the mirror closes at the end of the run; what it holds is what
Optuna reads."""

from __future__ import annotations

import os

import optuna

import dse.study.runner as runner_mod
from dse.runs.writer import PartStore
import dse.study.storage as storage_mod
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def test_journal_appends_are_synced_as_they_come_and_not_per_batch(tmp_path, monkeypatch):
    cfg = study_file(tmp_path, budget={"trials": 64})  # several batches
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    monkeypatch.setattr(runner_mod, "JOURNAL_EVERY_TRIALS", 32)  # two appends of the trials' lines
    monkeypatch.setattr(runner_mod, "JOURNAL_EVERY_S", 1e9)  # (however slow the machine)
    synced: list[tuple[str, int]] = []
    real_fsync, real_fdatasync = storage_mod.os.fsync, storage_mod.os.fdatasync
    closes: list[int] = []
    real_close = storage_mod.OptunaMirror.close

    def spy(name, real):
        def sync(fd):  # (os's of every module: the journal's are told apart by the file's name)
            if os.readlink(f"/proc/self/fd/{fd}").endswith("journal.log"):
                synced.append((name, len(closes)))  # how many mirror closes had begun when this sync ran
            return real(fd)
        return sync

    def close(self):
        closes.append(1)
        return real_close(self)

    monkeypatch.setattr(storage_mod.os, "fsync", spy("fsync", real_fsync))
    monkeypatch.setattr(storage_mod.os, "fdatasync", spy("fdatasync", real_fdatasync))
    monkeypatch.setattr(storage_mod.OptunaMirror, "close", close)
    res = StudyRunner(load_study(cfg), tmp_path / "run").run()
    assert res.summary["trials"] == 64
    # one fdatasync per append of the trials' lines (by the writer thread), none per batch, and no fsync of the
    # journal at the close (Optuna's own appends of the study's attributes, before the first batch, fsync as
    # Optuna writes them)
    batches = len(PartStore(tmp_path / "run", create=False).indices())
    assert batches >= 4 and [s[0] for s in synced].count("fdatasync") == 2, synced
    assert ("fsync", 1) not in synced, synced
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "run" / "journal.log")))
    trials = optuna.load_study(study_name="t", storage=storage).get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(64))


def test_one_append_more_keeps_the_last_one_small(tmp_path, monkeypatch):
    """A run with a budget of trials appends once more when the trials still to come fit in JOURNAL_LAST_TRIALS, so
    that its last append (which the run's end waits for) holds at most that many lines; without a budget no such
    append is made."""
    cfg = study_file(tmp_path, budget={"trials": 96})  # six generations of 16
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    monkeypatch.setattr(runner_mod, "JOURNAL_EVERY_TRIALS", 1000)
    monkeypatch.setattr(runner_mod, "JOURNAL_EVERY_S", 1e9)
    monkeypatch.setattr(runner_mod, "JOURNAL_LAST_TRIALS", 40)
    appended: list[int] = []
    real = storage_mod.GroupCommitBackend.append_lines

    def append_lines(self, lines, *, sync=False, count=None):
        appended.append(len(lines) if count is None else count)  # (lines as append_lines counts them)
        return real(self, lines, sync=sync, count=count)

    monkeypatch.setattr(storage_mod.GroupCommitBackend, "append_lines", append_lines)
    res = StudyRunner(load_study(cfg), tmp_path / "run").run()
    assert res.summary["trials"] == 96
    # after the 4th generation 32 trials are to come (<= 40), after the 3rd 48: the 4th one's append holds 64 lines,
    # the last one 32
    assert appended == [64, 32], appended
    appended.clear()
    monkeypatch.setattr(runner_mod, "JOURNAL_LAST_TRIALS", 0)  # (as a run without a budget: no append more)
    res = StudyRunner(load_study(cfg), tmp_path / "run2").run()
    assert appended == [96], appended
