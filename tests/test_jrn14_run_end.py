"""The run's end: the frames thread's last frame is made while the last FRAME_LAST generations of a budget run (the
run's end frames those itself), and the last generations' journal lines are built after the stored frame."""

from __future__ import annotations

import threading

import dse.study.runner as runner_mod
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def test_the_end_frames_the_last_generations_only_and_then_journals(tmp_path, monkeypatch):
    cfg = study_file(tmp_path, budget={"trials": 160})  # ten generations of 16
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    monkeypatch.setattr(runner_mod, "FRAME_EVERY", 4)
    monkeypatch.setattr(runner_mod, "FRAME_LAST", 3)
    events: list[tuple] = []
    real_frame, real_flush = runner_mod._stored_frame, StudyRunner._journal_flush

    def stored_frame(frames):
        on_main = threading.current_thread() is threading.main_thread()
        events.append(("frame", on_main, sum(isinstance(f, dict) for f in frames)))
        return real_frame(frames)

    def journal_flush(self, mirror):
        events.append(("journal", len(self.pending)))
        return real_flush(self, mirror)

    monkeypatch.setattr(runner_mod, "_stored_frame", stored_frame)
    monkeypatch.setattr(StudyRunner, "_journal_flush", journal_flush)
    res = StudyRunner(load_study(cfg), tmp_path / "run").run()
    assert res.summary["trials"] == 160
    frames = [e for e in events if e[0] == "frame"]
    # the thread: generations 1-4, 5-7 (when 3 are still to come); the run's end: the last 3 and the thread's frames
    assert [e[2] for e in frames if not e[1]] == [4, 3], frames
    assert [e[2] for e in frames if e[1]] == [3], frames
    # the last generations' lines after the end's stored frame
    assert events[-1][0] == "journal" and events[-1][1] > 0 and events[-2] == frames[-1], events


def test_the_tracked_front_gives_finalize_the_front_flags(tmp_path, monkeypatch):
    """finalize gets the front flags of the stored rows from the front tracked as they were stored (merged by the
    frames thread as the run goes, `FrontTracker.merge_behind`), also after a resume: they equal `front_mask` over
    every stored row."""
    import numpy as np
    import polars as pl

    import dse.runs.writer as writer_mod
    from dse.runs.front import front_mask
    from dse.runs.layout import RESULTS

    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    monkeypatch.setattr(runner_mod, "FRAME_EVERY", 2)  # several merges by the thread
    given: list = []
    real = writer_mod.finalize

    def finalize(*a, **kw):
        given.append(kw.get("front"))
        return real(*a, **kw)

    monkeypatch.setattr(runner_mod, "finalize", finalize)
    for trials in (48, 112):  # the second run resumes the first
        cfg = study_file(tmp_path, budget={"trials": trials})
        study = load_study(cfg)
        StudyRunner(study, tmp_path / "run").run()
        df = pl.read_parquet(tmp_path / "run" / RESULTS)
        assert given[-1] is not None and len(given[-1]) == df.height == trials
        expect = front_mask(df, study.spec.objectives, use_stored=False)
        assert expect.any() and np.array_equal(df["pareto"].to_numpy(), expect)
        assert np.array_equal(given[-1], expect)


def test_the_summary_wall_includes_finalize(tmp_path, monkeypatch):
    """summary.json's wall time and trials/s are the whole run's, finalize's file writes included (a slow disk
    writing results.parquet shows in them)."""
    import json
    import time

    import dse.runs.writer as writer_mod

    cfg = study_file(tmp_path, budget={"trials": 32})
    real = writer_mod.atomic_write_parquet
    slow_s = 0.3

    def slow_write(df, path):
        time.sleep(slow_s)
        return real(df, path)

    monkeypatch.setattr(writer_mod, "atomic_write_parquet", slow_write)
    res = StudyRunner(load_study(cfg), tmp_path / "run").run()
    assert res.summary["wall_time_s"] >= slow_s
    rate = res.summary["trials_this_run"] / res.summary["wall_time_s"]  # (wall rounded to the ms)
    assert abs(res.summary["trials_per_s"] - rate) <= 0.01 * rate
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["wall_time_s"] == res.summary["wall_time_s"]
