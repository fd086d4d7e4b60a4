"""Issue 17: real Ray worker processes SIGKILLed again and again while a study runs; the infrastructure
failures are retried, no trial is lost, and the result equals an undisturbed serial run's.

The workers are found by PID among this process's descendants (the session's embedded Ray, see
conftest.py) by their process title (`ray::IDLE`, `ray::eval_chunk`); Ray's agents and daemons are
never touched."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from dse.study.evaluator import ModelEvaluator
from dse.study.ray_head import _descendants
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

WORKER_TITLES = ("ray::IDLE", "ray::eval_chunk")


def _workers() -> list[int]:
    out = []
    for pid, _ in _descendants(os.getpid()):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        if title.startswith(WORKER_TITLES):
            out.append(pid)
    return out


def _results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete", strict=False)


@pytest.mark.ray
@pytest.mark.slow
def test_workers_killed_repeatedly_lose_no_trial(tmp_path, ray_session):
    class Slow(ModelEvaluator):  # defined here: cloudpickle ships it by value to the workers
        """The model plus 0.15 s per chunk, so that chunks are in flight when a worker is killed."""

        def __call__(self, cols):
            time.sleep(0.15)
            return super().__call__(cols)

    body = dict(name="k", budget={"trials": 160}, sampler={"kind": "nsga2", "population_size": 16},
                execution={"backend": "ray", "inline_below": 0})
    cfg = study_file(tmp_path, **body)
    killed: list[int] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set() and len(killed) < 8:
            busy = [p for p in _workers() if p not in killed]
            if busy:
                try:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                except OSError:
                    pass
            stop.wait(0.4)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        res = StudyRunner(load_study(cfg), tmp_path / "ray" / "k", evaluator=Slow("local")).run()
    finally:
        stop.set()
        t.join()
    assert len(killed) >= 3, killed  # the faults really happened during the study
    df = _results(tmp_path / "ray" / "k")
    assert df.height == 160 and df["trial"].to_list() == list(range(160))
    assert res.summary["trials_failed"] == 0 and (df["state"] == "COMPLETE").all()
    ref = StudyRunner(load_study(cfg), tmp_path / "serial" / "k", serial=True).run()
    assert ref.summary["front_size"] == res.summary["front_size"]
    assert ref.summary["hypervolume"] == res.summary["hypervolume"]
    assert _results(tmp_path / "serial" / "k").equals(df)
