"""The model evaluated in a forked process (`dse.study.execution.ModelProcess`, issue 15): the run's results are
those of the in-process run, a dying or failing model process costs no trial, a killed run leaves no model
process behind and resumes to the uninterrupted results, and only an evaluator that states it is pure goes
to another process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from dse.runs.writer import PartStore
from dse.study import execution
from dse.study.evaluator import ModelEvaluator
from dse.study.execution import TransientError, is_pure, model_process_wanted
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the model process forks (Linux)")


def _study(tmp_path: Path, name: str = "m", **over) -> Path:
    return study_file(tmp_path, name, **{"sampler": {"kind": "nsga2", "population_size": 8},
                                         "budget": {"trials": 64}, "seed": 5, **over})


def _results(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "results.parquet").drop("datetime_start", "datetime_complete")


def _run(cfg: Path, out: Path, monkeypatch, how: str, evaluator=None) -> StudyRunner:
    monkeypatch.setenv("DSE_MODEL_PROCESS", how)
    runner = StudyRunner(load_study(cfg), out, evaluator=evaluator)
    runner.run()
    return runner


class FailsInChild(ModelEvaluator):
    """The model, whose forked copy calls `fail()` on its `on`-th call (the parent's copy never does)."""

    pure = True
    on = 0

    def __init__(self, mix: str):
        super().__init__(mix)
        self.parent, self.calls = os.getpid(), 0

    def fail(self) -> None:
        raise NotImplementedError

    def __call__(self, cols):
        self.calls += 1
        if os.getpid() != self.parent and self.calls == self.on:
            self.fail()
        return super().__call__(cols)


class DiesInChild(FailsInChild):
    """The model, whose forked copy dies (os._exit) on its third call: the parent must go on in-process."""

    pure = True
    on = 3

    def fail(self) -> None:
        os._exit(3)


class TransientInChild(FailsInChild):
    """The model, raising a transient (infrastructure) error on its second call in the child process."""

    pure = True
    on = 2

    def fail(self) -> None:
        raise TransientError("worker lost")


def test_a_model_process_gives_the_in_process_results(tmp_path, monkeypatch):
    cfg = _study(tmp_path)
    ref = _run(cfg, tmp_path / "ref", monkeypatch, "never")
    assert ref.model_process is None
    par = _run(cfg, tmp_path / "par", monkeypatch, "always")
    mp = par.model_process
    assert mp is not None and mp.proc is None and not mp.alive  # used, then stopped
    # every batch went to it: 8 generations, minus those whose designs were all stored already
    assert 0 < mp.calls <= 8 and mp.cpu_s > 0
    assert _results(tmp_path / "par").equals(_results(tmp_path / "ref"))


def test_a_dead_model_process_costs_no_trial(tmp_path, monkeypatch, caplog):
    cfg = _study(tmp_path)
    _run(cfg, tmp_path / "ref", monkeypatch, "never")
    with caplog.at_level("WARNING"):
        runner = _run(cfg, tmp_path / "hit", monkeypatch, "always", evaluator=DiesInChild("local"))
    # the third call killed it (a result computed but not yet sent by its sender thread dies with it and is
    # evaluated again here); the rest ran in-process
    assert 1 <= runner.model_process.calls <= 2
    assert any("model process stopped" in r.getMessage() for r in caplog.records)
    df = _results(tmp_path / "hit")
    assert (df["state"] == "COMPLETE").all() and df.equals(_results(tmp_path / "ref"))


def test_a_transient_error_in_the_model_process_is_retried(tmp_path, monkeypatch):
    cfg = _study(tmp_path)
    _run(cfg, tmp_path / "ref", monkeypatch, "never")
    _run(cfg, tmp_path / "hit", monkeypatch, "always", evaluator=TransientInChild("local"))
    df = _results(tmp_path / "hit")
    assert (df["state"] == "COMPLETE").all() and df.equals(_results(tmp_path / "ref"))


def test_only_an_evaluator_that_states_it_is_pure_goes_to_another_process(monkeypatch):
    class Counting(ModelEvaluator):  # inherits `pure` but keeps state a caller reads back
        calls = 0

    monkeypatch.setenv("DSE_MODEL_PROCESS", "always")
    assert is_pure(ModelEvaluator("local")) and is_pure(DiesInChild("local"))
    assert not is_pure(Counting("local")) and not is_pure(lambda cols: cols)
    assert model_process_wanted(ModelEvaluator("local"), 1)
    assert not model_process_wanted(Counting("local"), 10)
    monkeypatch.setenv("DSE_MODEL_PROCESS", "never")
    assert not model_process_wanted(ModelEvaluator("local"), 10)
    monkeypatch.setenv("DSE_MODEL_PROCESS", "auto")
    assert not model_process_wanted(ModelEvaluator("local"), 1)  # one batch: nothing to overlap
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(execution, "_ray_initialized", lambda: False)
    many = execution.MODEL_PROCESS_MIN_BATCHES
    for idle in (True, False):  # a busy machine keeps the run in one process
        monkeypatch.setattr(execution, "cpu_idle", lambda: idle)
        assert model_process_wanted(ModelEvaluator("local"), many) is idle
        assert model_process_wanted(ModelEvaluator("local"), None) is idle  # (open-ended: a timeout)
        assert not model_process_wanted(ModelEvaluator("local"), many - 1)  # a short run: the fork costs more
    monkeypatch.setattr(execution, "cpu_idle", lambda: True)
    monkeypatch.setattr(execution, "_ray_initialized", lambda: True)  # a Ray process (e.g. a sweep's task)
    assert not model_process_wanted(ModelEvaluator("local"), many)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not model_process_wanted(ModelEvaluator("local"), many)


DRIVER = r'''
import os, sys, time
from pathlib import Path
from dse.study import execution
from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study

class Slow(ModelEvaluator):
    pure = True

    def __call__(self, cols):
        Path(sys.argv[3]).write_text(str(os.getpid()))  # the model process's pid
        time.sleep(float(sys.argv[4]))
        return super().__call__(cols)

StudyRunner(load_study(sys.argv[1]), Path(sys.argv[2]), evaluator=Slow("local")).run()
'''


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its dead parent's reaper) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_sigkill_leaves_no_model_process_and_the_rerun_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    cfg = _study(tmp_path, budget={"trials": 96})
    _run(cfg, tmp_path / "ref", monkeypatch, "never")
    drv = tmp_path / "driver.py"
    drv.write_text(DRIVER)
    run, pidfile = tmp_path / "run", tmp_path / "child.pid"
    env = {**os.environ, "DSE_MODEL_PROCESS": "always", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, str(drv), str(cfg), str(run), str(pidfile), "0.1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while 2 not in PartStore(run, create=False).indices():
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "the run never stored its third part"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    child = int(pidfile.read_text())
    assert child != proc.pid
    deadline = time.time() + 10
    while _alive(child):  # its parent gone, the model process ends (end of its pipe)
        assert time.time() < deadline, "the model process outlived its killed parent"
        time.sleep(0.01)
    # the rerun takes the folder at once (the model process held none of its locks) and resumes
    done = subprocess.run([sys.executable, str(drv), str(cfg), str(run), str(pidfile), "0"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _results(run).equals(_results(tmp_path / "ref"))
