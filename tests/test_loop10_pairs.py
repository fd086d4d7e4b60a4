"""A model process that evaluates the generations in flight together (`runner.MODEL_PROCESS_PAIRS`, issue 15): it
makes the model calls the in-process run makes (one per pair of generations, the array NSGA-II's lag being 1), the
run's process evaluates nothing while it stores the generations before them, and the run's results, journal and
counts are those of the in-process run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest

from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file
from test_loop7_child_scores import _journal

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the model process forks (Linux)")


class Counted(ModelEvaluator):
    """The model, counting the calls and designs of the process that calls it (each process has its own copy)."""

    pure = True

    def __init__(self, mix: str):
        super().__init__(mix)
        self.sizes: list[int] = []

    def __call__(self, cols):
        self.sizes.append(len(next(iter(cols.values()))))
        return super().__call__(cols)


def _run(cfg: Path, out: Path, monkeypatch, how: str) -> tuple[StudyRunner, Counted]:
    monkeypatch.setenv("DSE_MODEL_PROCESS", how)
    st = load_study(cfg)
    ev = Counted(st.spec.mix)
    runner = StudyRunner(st, out, evaluator=ev)
    runner.run()
    return runner, ev


@pytest.mark.parametrize("trials", [120, 114])  # 10 generations of 12; 9 and a last one of 6
def test_pairs_in_the_model_process_equal_the_in_process_run(tmp_path, monkeypatch, trials):
    cfg = study_file(tmp_path, "p", sampler={"kind": "nsga2", "population_size": 12}, budget={"trials": trials}, seed=3)
    ref, ref_ev = _run(cfg, tmp_path / "ref", monkeypatch, "never")
    assert ref.model_process is None
    par, par_ev = _run(cfg, tmp_path / "par", monkeypatch, "always")
    mp = par.model_process
    assert mp is not None and mp.work is None and not mp.alive
    assert par_ev.sizes == []  # the run's process evaluated nothing
    # the model process made the in-process run's calls: the generations in flight together (pairs), so ~half as
    # many calls as generations
    assert mp.calls == len(ref_ev.sizes) and len(ref_ev.sizes) <= (trials // 12 + 2) // 2 + 1
    assert max(ref_ev.sizes) > 12  # (at least one call held two generations' new designs)
    drop = ["datetime_start", "datetime_complete"]
    a = pl.read_parquet(tmp_path / "ref" / "results.parquet").drop(drop)
    b = pl.read_parquet(tmp_path / "par" / "results.parquet").drop(drop)
    assert a.height == trials and a.equals(b)
    assert _journal(tmp_path / "ref" / "journal.log") == _journal(tmp_path / "par" / "journal.log")
    s_ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    s_par = json.loads((tmp_path / "par" / "summary.json").read_text())
    for k in ("designs_evaluated", "cache_hits", "trials", "hypervolume"):
        assert s_par[k] == s_ref[k]


def test_the_parts_are_written_in_order_and_the_stores_follow_the_dispatch(tmp_path, monkeypatch):
    """With the pairs, generation g's part is written after generation g + 3 is sent to the model process (its
    model call overlaps g's and g + 1's stores); the parts still come in generation order."""
    cfg = study_file(tmp_path, "o", sampler={"kind": "nsga2", "population_size": 8}, budget={"trials": 64}, seed=2)
    events: list[tuple[str, int]] = []
    dispatch, store = StudyRunner._dispatch, StudyRunner._store

    def spy_dispatch(self):
        events.append(("dispatch", len(self._together)))
        return dispatch(self)

    def spy_store(self, parts, g, *args):
        events.append(("store", g))
        return store(self, parts, g, *args)

    monkeypatch.setattr(StudyRunner, "_dispatch", spy_dispatch)
    monkeypatch.setattr(StudyRunner, "_store", spy_store)
    _run(cfg, tmp_path / "run", monkeypatch, "always")
    # generations 0 and 1 (random) go at once; 2 and 3 are bred once 0 and 1 are in and go before 0 and 1 are
    # stored; and so on (8 generations of 8)
    assert events == [("dispatch", 2), ("dispatch", 2), ("store", 0), ("store", 1), ("dispatch", 2), ("store", 2),
                      ("store", 3), ("dispatch", 2), ("store", 4), ("store", 5), ("store", 6), ("store", 7)]


def test_pairs_with_an_external_optuna_storage_record_the_in_process_trials(tmp_path, monkeypatch):
    """An external storage (SQLite through Optuna) gets the trials of the in-process run (the stores that follow a
    dispatch add the rows to it, in order)."""
    optuna = pytest.importorskip("optuna")
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    trials = {}
    for how in ("never", "always"):
        (tmp_path / how).mkdir()
        url = f"sqlite:///{tmp_path / f'{how}.db'}"
        cfg = study_file(tmp_path / how, "s", sampler={"kind": "nsga2", "population_size": 8}, budget={"trials": 48},
                         seed=4, storage=url)
        runner, ev = _run(cfg, tmp_path / how / "run", monkeypatch, how)
        assert (runner.model_process is not None) == (how == "always")
        st = optuna.load_study(study_name="s", storage=url)
        trials[how] = [(t.number, t.state, t.values, t.params, t.user_attrs.get("feasible"))
                       for t in st.get_trials(deepcopy=False)]
    assert len(trials["never"]) == 48 and trials["always"] == trials["never"]


def test_auto_leaves_the_idle_cpu_to_an_optuna_mirror_process(tmp_path, monkeypatch):
    """Under DSE_MODEL_PROCESS=auto, a run whose external storage is mirrored by a child process (`MirrorProcess`)
    forks no model process beside it; `always` still does."""
    from dse.study import execution

    monkeypatch.setattr(execution, "cpu_idle", lambda: True)
    monkeypatch.setattr(execution, "_ray_initialized", lambda: False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    cfg = study_file(tmp_path, "a", sampler={"kind": "nsga2", "population_size": 8}, budget={"trials": 8 * 40},
                     seed=1, storage=f"sqlite:///{tmp_path / 'a.db'}")
    st = load_study(cfg)
    for how, mirror, wanted in (("auto", "always", False), ("auto", "never", True), ("always", "always", True)):
        monkeypatch.setenv("DSE_MODEL_PROCESS", how)
        monkeypatch.setenv("DSE_MIRROR_PROCESS", mirror)
        runner = StudyRunner(st, tmp_path / "run", serial=True, evaluator=Counted(st.spec.mix))
        mp = runner._start_model_process()
        assert (mp is not None) == wanted, (how, mirror)
        if mp is not None:
            mp.close()


@pytest.mark.slow
@pytest.mark.parametrize("sig,seed", [(9, 1), (2, 3), (15, 4)])  # SIGKILL, SIGINT, SIGTERM
def test_a_signal_with_the_pairs_loses_little_and_the_rerun_equals_the_uninterrupted_run(tmp_path, sig, seed,
                                                                                         monkeypatch):
    """tests/test_study_interrupt.py's run with a pure evaluator and DSE_MODEL_PROCESS=always: the model process
    evaluates the pairs (its model calls write the log), the run stores the generations before each pair while it
    does; a signal mid-run leaves contiguous whole parts, every generation of the pairs returned but the last two
    stored (one pair more than in one process: the one whose stores the model call overlapped), and the rerun ends
    as the uninterrupted run."""
    import random
    import subprocess
    import time

    import test_study_interrupt as ti
    from dse.runs.writer import PartStore

    driver = ti.DRIVER.replace("class Logged(ModelEvaluator):\n", "class Logged(ModelEvaluator):\n    pure = True\n")
    driver = driver.replace('            f.write("done\\n")', '            f.write("done\\n")\n'
                            '        with open(log + ".pid", "a") as f:\n            f.write(f"{os.getpid()}\\n")')
    assert "pure = True" in driver and ".pid" in driver
    monkeypatch.setattr(ti, "DRIVER", driver)
    monkeypatch.setitem(os.environ, "DSE_MODEL_PROCESS", "always")
    start = ti._start

    def start_always(tmp, cfg, out, delay):
        real = subprocess.Popen

        def popen(args, env, **kw):
            return real(args, env={**env, "DSE_MODEL_PROCESS": "always"}, **kw)
        monkeypatch.setattr(subprocess, "Popen", popen)
        try:
            return start(tmp, cfg, out, delay)
        finally:
            monkeypatch.setattr(subprocess, "Popen", real)

    cfg = study_file(tmp_path, "s", budget={"trials": 320}, seed=30 + seed)
    ref = StudyRunner(load_study(cfg), tmp_path / "ref" / "s").run()
    out = tmp_path / "runs"
    run = out / "s"
    proc = start_always(tmp_path, cfg, out, 0.03)
    wait = random.Random(seed).randint(3, 7)
    deadline = time.time() + 120
    while ti._calls(tmp_path) < wait:
        assert proc.poll() is None, f"the run ended before the signal: {proc.stderr.read()}"
        assert time.time() < deadline
        time.sleep(0.002)
    time.sleep(random.Random(seed).uniform(0.0, 0.03))
    proc.send_signal(sig)
    proc.wait(timeout=60)
    calls = ti._calls(tmp_path)  # pairs whose results had come back
    pids = set((tmp_path / "calls.log.pid").read_text().split())
    assert pids and str(proc.pid) not in pids  # the model calls were the model process's
    store = PartStore(run, create=False)
    parts = store.indices()
    assert parts == list(range(len(parts))) and 0 < store.rows() < 320
    # every pair but the last two returned is stored (two generations each): the model process logs a pair when its
    # call returns, while the run may still be storing the pair before it (the stores overlap the next model call)
    assert len(parts) >= 2 * (calls - 2), f"{calls} pairs had results, {len(parts)} generations were stored"
    os.unlink(tmp_path / "calls.log")
    done = start_always(tmp_path, cfg, out, 0.0)
    _, err = done.communicate(timeout=180)
    assert done.returncode == 0, err
    assert ti._results(run).equals(ti._results(ref.run_dir)), "the resumed run differs from the uninterrupted one"
