"""Issue 15: a run stopped by a signal mid-way loses at most one generation's results, and its rerun ends as
the uninterrupted run.

The run (the real `dse run` CLI, serial, the array NSGA-II) is a subprocess whose evaluator appends a line to a
log each time a model call returns, so that the test knows how many generations had their results when the
signal came. The rule checked (`StudyRunner._generations`): every generation whose model results had come back
is stored as a part, except at most the one being stored at that moment; the rerun replays the parts, asks the
lost generation again and its results, front and Optuna journal equal an uninterrupted run's."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import polars as pl
import pytest

from dse.runs.writer import PartStore
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

DRIVER = r'''
import os, sys, time
import dse.study.runner as runner
from dse.study.evaluator import ModelEvaluator

log, delay = os.environ["DSE_TEST_CALL_LOG"], float(os.environ["DSE_TEST_EVAL_DELAY"])

class Logged(ModelEvaluator):
    def __call__(self, cols):
        time.sleep(delay)
        out = super().__call__(cols)
        with open(log, "a") as f:  # this generation's results exist from now on
            f.write("done\n")
        return out

runner.default_evaluator = lambda study: Logged(study.spec.mix, base_dir=study.path.parent,
                                                technology=study.technology_path())
from dse.cli import main
sys.argv = ["dse", *sys.argv[1:]]
main()
'''


def _start(tmp: Path, cfg: Path, out: Path, delay: float) -> subprocess.Popen:
    drv = tmp / "driver.py"
    drv.write_text(DRIVER)
    env = {**os.environ, "DSE_TEST_CALL_LOG": str(tmp / "calls.log"), "DSE_TEST_EVAL_DELAY": str(delay),
           "DSE_MODEL_PROCESS": "never", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.Popen([sys.executable, str(drv), "run", str(cfg), "--out", str(out), "--serial", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _calls(tmp: Path) -> int:
    p = tmp / "calls.log"
    return p.read_text().count("done\n") if p.exists() else 0


def _results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete")


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", [(signal.SIGKILL, 1), (signal.SIGKILL, 2), (signal.SIGINT, 3),
                                      (signal.SIGTERM, 4)])
def test_a_signal_loses_at_most_one_generation_and_the_rerun_equals_the_uninterrupted_run(tmp_path, sig, seed):
    cfg = study_file(tmp_path, "s", budget={"trials": 320}, seed=30 + seed)
    ref = StudyRunner(load_study(cfg), tmp_path / "ref" / "s").run()
    out = tmp_path / "runs"
    run = out / "s"
    proc = _start(tmp_path, cfg, out, delay=0.03)
    wait = random.Random(seed).randint(3, 12)  # model calls returned before the signal: mid-run
    deadline = time.time() + 120
    while _calls(tmp_path) < wait:
        assert proc.poll() is None, f"the run ended before the signal: {proc.stderr.read()}"
        assert time.time() < deadline, "the run never reached the signal's point"
        time.sleep(0.002)
    time.sleep(random.Random(seed).uniform(0.0, 0.03))  # anywhere within the next generation
    proc.send_signal(sig)
    proc.wait(timeout=60)
    calls = _calls(tmp_path)  # generations whose results had come back (the call log is written before return)
    store = PartStore(run, create=False)
    parts = store.indices()
    assert parts == list(range(len(parts))), "parts are contiguous"
    stored = store.rows()  # every stored part is whole
    assert 0 < stored < 320, "stopped mid-run"
    # at most one generation with results is not stored (a generation can also be all repeats: no model call)
    assert len(parts) >= calls - 1, f"{calls} generations had results, {len(parts)} were stored"
    os.unlink(tmp_path / "calls.log")
    done = _start(tmp_path, cfg, out, delay=0.0)
    _, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    assert _calls(tmp_path) <= 320 // 16 - len(parts), "the rerun evaluates only what was not stored"
    assert _results(run).equals(_results(ref.run_dir)), "the resumed run differs from the uninterrupted one"
    assert pl.read_parquet(run / "pareto.parquet").drop("datetime_start", "datetime_complete").equals(
        pl.read_parquet(ref.run_dir / "pareto.parquet").drop("datetime_start", "datetime_complete"))
    journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    trials = optuna.load_study(study_name="s", storage=journal).get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(320)), "the Optuna journal holds every trial once"
