"""One flush per model call (issue 15): the runner writes the parts of the generations one model call evaluated
together one right after the other, all but the last with `flush=False`, and the last one's flush (one fdatasync
of the part log, by PartStore's thread) covers them all; a part is in place when `write` returns (a killed run
keeps it), a write still waits for the flush before it, and `wait` / `close` flush what is left."""

from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from dse.runs import partlog
from dse.runs.writer import PartStore
from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def _gen(b: int, n: int = 5) -> dict[str, np.ndarray]:
    return {"trial": np.arange(b * n, (b + 1) * n, dtype=np.int64), "x": np.full(n, float(b))}


def _spy(monkeypatch, delay: float = 0.0) -> list[tuple]:
    """The part log's appends and syncs as events: ("append", part), ("sync start", log size), ("sync end",)."""
    events: list[tuple] = []
    append, sync = partlog.PartLog.append, partlog._sync

    def spy_append(self, index, payload):
        append(self, index, payload)
        events.append(("append", index))

    def spy_sync(fd):
        import os

        events.append(("sync start", os.fstat(fd).st_size))
        time.sleep(delay)
        sync(fd)
        events.append(("sync end",))

    monkeypatch.setattr(partlog.PartLog, "append", spy_append)
    monkeypatch.setattr(partlog, "_sync", spy_sync)
    return events


def test_a_model_calls_parts_share_one_flush_and_a_write_waits_for_the_flush_before_it(tmp_path, monkeypatch):
    events = _spy(monkeypatch, delay=0.05)
    store = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
    reader = PartStore(tmp_path / "r", create=False)
    sizes = []
    for b in range(6):  # three model calls of two generations each
        store.write_columns(b, _gen(b), flush=b % 2 == 1)
        assert reader.indices() == list(range(b + 1))  # in place at once, flushed or not
        sizes.append(store.log.path.stat().st_size)
    store.close()
    syncs = [e for e in events if e[0] == "sync start"]
    assert len(syncs) == 3  # (a flush per part: 6)
    # each flush starts after both parts of its model call were appended and covers them (the log's size then)
    assert [s[1] for s in syncs] == sizes[1::2]
    # a write waits for the flush before it: the first part of the next call is appended after that flush ended
    order = [e[0] if e[0] != "append" else e[1] for e in events]
    assert order == [0, 1, "sync start", "sync end", 2, 3, "sync start", "sync end", 4, 5, "sync start", "sync end"]
    assert PartStore(tmp_path / "r", create=False).read_all()["trial"].to_list() == list(range(30))


def test_wait_and_close_flush_a_part_written_without_its_flush(tmp_path, monkeypatch):
    events = _spy(monkeypatch)
    store = PartStore(tmp_path / "r", fmt="dcol", sync_behind=True)
    store.write_columns(0, _gen(0), flush=False)
    assert not [e for e in events if e[0] == "sync start"]
    store.wait()
    assert [e[0] for e in events] == ["append", "sync start", "sync end"]
    store.write_columns(1, _gen(1), flush=False)
    store.close()
    assert [e[0] for e in events][3:] == ["append", "sync start", "sync end"]
    store.close()  # (idempotent: nothing left to flush)
    assert len(events) == 6


def test_a_files_flush_left_to_the_next_write(tmp_path, monkeypatch):
    """An Arrow stream part (a store of another sampler's batches) written with flush=False is fsynced with the next
    part's flush, on the flushing thread."""
    import polars as pl

    from dse.runs import writer

    synced: list[str] = []
    real_fsync = writer.os.fsync
    monkeypatch.setattr(writer.os, "fsync", lambda fd: (synced.append(threading.current_thread().name),
                                                        real_fsync(fd))[1])
    store = PartStore(tmp_path / "r", fmt="arrows", sync_behind=True)
    frames = [pl.DataFrame({"trial": [b], "x": [float(b)]}) for b in range(2)]
    store.write(0, frames[0], flush=False)
    assert synced == [] and store.read(0).equals(frames[0])
    store.write(1, frames[1])
    store.wait()
    assert len(synced) == 4 and all(n.startswith("dse-parts") for n in synced)  # both files and their folder
    store.close()
    assert store.read_all().equals(pl.concat(frames))


class Counted(ModelEvaluator):
    pure = True

    def __init__(self, mix: str):
        super().__init__(mix)
        self.calls = 0

    def __call__(self, cols):
        self.calls += 1
        return super().__call__(cols)


@pytest.mark.parametrize("how", ["never", pytest.param("always", marks=pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the model process forks (Linux)"))])
def test_a_run_flushes_its_parts_once_per_model_call(tmp_path, monkeypatch, how):
    """In-process, a run of 10 generations makes 5 model calls and flushes its part log 5 times, each flush after
    both generations of one call were appended; with the model process evaluating pairs, likewise but for the last
    call."""
    monkeypatch.setenv("DSE_MODEL_PROCESS", how)
    events = _spy(monkeypatch)
    cfg = study_file(tmp_path, "f", sampler={"kind": "nsga2", "population_size": 12}, budget={"trials": 120}, seed=3)
    st = load_study(cfg)
    ev = Counted(st.spec.mix)
    runner = StudyRunner(st, tmp_path / "run", serial=True, evaluator=ev)
    runner.run()
    calls = ev.calls if runner.model_process is None else runner.model_process.calls
    assert (runner.model_process is not None) == (how == "always")
    appends = [e[1] for e in events if e[0] == "append"]
    assert appends == list(range(10))
    between = []  # parts appended before each flush
    n = 0
    for e in events:
        if e[0] == "append":
            n += 1
        elif e[0] == "sync start":
            between.append(n)
            n = 0
    # (a flush per part: ten flushes of one; with the pairs, the last call's generations are stored one by one as
    # they are collected, each with its flush: nothing follows to overlap)
    assert calls == 5 and between == ([2] * 5 if how == "never" else [2] * 4 + [1, 1])
