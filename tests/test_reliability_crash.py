"""Issue 7.3 / 7.6 / 7.7: a driver killed with SIGKILL at chosen and random moments, two `dse run` started
at the same instant on one run folder, and plain run-twice determinism (NSGA-II, TPE, random, QMC,
grid, a sweep; serial vs Ray chunks).

The subprocesses run the real CLI (`dse.cli.main`) through a tiny driver that only slows the
evaluator down (DSE_TEST_EVAL_DELAY seconds per batch) so that kill points can be hit on purpose, and
optionally waits for a "go" file so that two processes start at the same instant. Production code is
not changed for the tests."""

from __future__ import annotations

import json
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
import yaml

from dse.runs.writer import PartStore
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import SPACE

DRIVER = r'''
import os, sys, time
delay = float(os.environ.get("DSE_TEST_EVAL_DELAY", "0"))
import dse.study.runner as runner
from dse.study.evaluator import ModelEvaluator

class Slow(ModelEvaluator):
    def __call__(self, cols):
        time.sleep(delay)
        return super().__call__(cols)

def slow_evaluator(study):
    base = study.path.parent if study.path else None
    return Slow(study.spec.mix, base_dir=base, technology=study.technology_path())

runner.default_evaluator = slow_evaluator
from dse.cli import main
go = os.environ.get("DSE_TEST_GO_FILE")
if go:  # imported: say so, then wait for the go (a loaded machine can take seconds to import)
    open(f"{go}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
sys.argv = ["dse", *sys.argv[1:]]
main()
'''



def study_file(tmp: Path, name: str, **over) -> Path:
    body = {"name": name, "space": SPACE, "mix": "local",
            "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                           {"metric": "chip_cost_usd", "direction": "minimize"}],
            "constraints": ["tdp_w <= 400"], "sampler": {"kind": "nsga2", "population_size": 16},
            "budget": {"trials": 240}, "seed": 11, "execution": {"backend": "serial"}}
    body.update(over)
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def start(tmp: Path, cfg: Path, out: Path, delay: float, go: Path | None = None) -> subprocess.Popen:
    drv = tmp / "driver.py"
    if not drv.exists():
        drv.write_text(DRIVER)
    env = {**os.environ, "DSE_TEST_EVAL_DELAY": str(delay), "PYTHONUNBUFFERED": "1"}
    if go is not None:
        env["DSE_TEST_GO_FILE"] = str(go)
    return subprocess.Popen([sys.executable, str(drv), "run", str(cfg), "--out", str(out), "--serial", "--quiet"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(pred, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill point: {proc.stderr.read()}")
        time.sleep(0.001)
    raise AssertionError("kill point never reached")


def parts_of(run: Path) -> list[int]:
    """The stored parts' indices (files, or records of the part log)."""
    return PartStore(run, create=False).indices()


def journal_trials(run: Path, name: str) -> list:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def assert_storage_readable(run: Path, name: str) -> None:
    """Every part reads whole and the journal loads (a torn last record is skipped)."""
    rows = PartStore(run, create=False).rows()
    if (run / "journal.log").exists() and (run / "journal.log").stat().st_size:
        assert len(journal_trials(run, name)) <= rows + 64


def results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete", strict=False)


# -- 7.3: SIGKILL at chosen and random moments, several seeds -------------------------------------------

KILLS = [
    # (id, study seed, kill points); a kill point is "first-batch", ("after-part", k) or ("random", rng seed)
    ("first-batch", 21, ["first-batch"]),
    ("after-part-3", 22, [("after-part", 3)]),
    ("after-part-0-then-random", 23, [("after-part", 0), ("random", 1)]),
    ("random-x3", 24, [("random", 2), ("random", 3), ("random", 4)]),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", KILLS, ids=[k[0] for k in KILLS])
def test_sigkill_anywhere_then_rerun_equals_uninterrupted(tmp_path, case):
    _, seed, kills = case
    cfg = study_file(tmp_path, "k", seed=seed)
    ref = StudyRunner(load_study(cfg), tmp_path / "ref" / "k").run()
    assert ref.summary["trials"] == 240
    out = tmp_path / "runs"
    run = out / "k"
    delay = 0.04
    for kp in kills:
        before = len(parts_of(run))
        proc = start(tmp_path, cfg, out, delay=0.4 if kp == "first-batch" else delay)
        if kp == "first-batch":
            wait_for(lambda: (run / "run.json").exists() and (run / ".lock").exists(), proc)
            time.sleep(0.1)  # inside the first (slowed) batch: nothing stored yet
        elif kp[0] == "after-part":
            wait_for(lambda: kp[1] in parts_of(run), proc)  # killed right after the part, before Optuna's journal
        else:
            wait_for(lambda: (run / "run.json").exists(), proc)
            time.sleep(random.Random(kp[1]).uniform(0.0, 0.4))
        assert proc.poll() is None, "the run finished before the kill"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if kp == "first-batch":
            assert len(parts_of(run)) == before == 0
        assert_storage_readable(run, "k")
    done = start(tmp_path, cfg, out, delay=0.0)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    a, b = results(tmp_path / "ref" / "k"), results(run)
    assert b.height == 240 and b["trial"].n_unique() == 240 and b["trial"].to_list() == list(range(240))
    assert a.equals(b), "the resumed study differs from the uninterrupted one"
    assert pl.read_parquet(run / "pareto.parquet").drop("datetime_start", "datetime_complete").equals(
        pl.read_parquet(tmp_path / "ref/k/pareto.parquet").drop("datetime_start", "datetime_complete"))
    assert [t.number for t in journal_trials(run, "k")] == list(range(240))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trials"] == 240 and summary["front_size"] == ref.summary["front_size"]


# -- 7.6: two `dse run` on the same folder at the same instant ------------------------------------------

@pytest.mark.slow
def test_two_runs_started_at_the_same_instant(tmp_path):
    cfg = study_file(tmp_path, "c", budget={"trials": 160}, seed=31)
    ref = results(StudyRunner(load_study(cfg), tmp_path / "ref" / "c").run().run_dir)
    out = tmp_path / "runs"
    go = tmp_path / "go"
    procs = [start(tmp_path, cfg, out, delay=0.1, go=go) for _ in range(2)]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("go.ready.*"))) < 2:  # both have imported dse and wait for the go file
        assert time.time() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.01)
    go.touch()
    res = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in res)
    assert codes == [0, 2], res  # one runs, the other refuses (the run lasts > 1 s, both start together)
    loser = next(r for r in res if r[2] == 2)
    assert "already running" in loser[1] and "Traceback" not in loser[1]
    run = out / "c"
    b = results(run)
    assert b.height == 160 and b["trial"].n_unique() == 160
    assert ref.equals(b)
    assert [t.number for t in journal_trials(run, "c")] == list(range(160))
    assert PartStore(run, create=False).rows() == 160


def test_second_run_on_a_running_folder_refuses_without_writing(tmp_path):
    from dse.errors import DseUserError
    from dse.study.storage import RunLock

    cfg = study_file(tmp_path, "l", budget={"trials": 16})
    run = tmp_path / "runs" / "l"
    StudyRunner(load_study(cfg), run).run()
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
    with RunLock(run):
        with pytest.raises(DseUserError, match="already running"):
            StudyRunner(load_study(cfg), run, trials=32).run()
    after = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != ".lock"}
    assert after == before


# -- 7.7: determinism -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", [
    {"kind": "nsga2", "population_size": 16}, {"kind": "tpe", "n_startup_trials": 8},
    {"kind": "random"}, {"kind": "qmc"}, {"kind": "grid", "points": 2, "shard_size": 50},
], ids=lambda s: s["kind"])
def test_same_seed_same_trials_and_front(tmp_path, sampler):
    if sampler["kind"] == "qmc":
        import importlib.util

        from dse.errors import ConfigError

        if importlib.util.find_spec("scipy") is None:  # then it must be a clean config error
            with pytest.raises(ConfigError, match="needs SciPy"):
                load_study(study_file(tmp_path, "q", sampler=sampler))
            return
    cfg = study_file(tmp_path, "d", sampler=sampler, budget={"trials": 64 if sampler["kind"] != "tpe" else 40},
                     seed=41)
    a = results(StudyRunner(load_study(cfg), tmp_path / "a" / "d").run().run_dir)
    b = results(StudyRunner(load_study(cfg), tmp_path / "b" / "d").run().run_dir)
    assert a.height > 0 and a.equals(b)
    assert a["pareto"].sum() > 0
    other = study_file(tmp_path, "d2", sampler=sampler, budget={"trials": 64}, seed=42)
    c = results(StudyRunner(load_study(other), tmp_path / "c" / "d2").run().run_dir)
    if sampler["kind"] != "grid":  # the grid ignores the seed; every other sampler must use it
        assert not c.select("chip.cores").equals(a.select("chip.cores").head(c.height))


@pytest.mark.ray
def test_same_seed_same_results_serial_vs_ray_chunks_and_sweeps(tmp_path, ray_session):
    from dse.study.sweep import run_sweep

    cfg = study_file(tmp_path, "r", budget={"trials": 96}, sampler={"kind": "nsga2", "population_size": 32},
                     execution={"backend": "ray", "inline_below": 0, "chunk_size": 7})
    serial = results(StudyRunner(load_study(cfg), tmp_path / "s" / "r", serial=True).run().run_dir)
    on_ray = StudyRunner(load_study(cfg), tmp_path / "ray" / "r").run()
    assert on_ray.summary["ray_tasks"] >= 12
    assert serial.equals(results(on_ray.run_dir))

    sweep = study_file(tmp_path, "sw", budget={"trials": 32}, execution={"backend": "ray"},
                       sweep=[{"name": "n7", "fixed": {"chip.process_node": "n7"}},
                              {"name": "n5", "fixed": {"chip.process_node": "n5"}, "seed": 3}])
    run_sweep(load_study(sweep), tmp_path / "sw1")
    run_sweep(load_study(sweep), tmp_path / "sw2", serial=True)
    for sub in ("n7", "n5", "."):
        a, b = results(tmp_path / "sw1/sw" / sub), results(tmp_path / "sw2/sw" / sub)
        assert a.height == (64 if sub == "." else 32) and a.equals(b), sub
