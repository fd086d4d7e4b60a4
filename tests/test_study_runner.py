"""Study runner with the real model, a real embedded Ray and a real journal file: budget, resume after
SIGKILL, grid = brute force, export → evaluate round trip, failed batches, run-folder locking."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest
import yaml

from dse.errors import DseUserError
from dse.runs.front import column_name
from dse.runs.writer import PartStore
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from dse.study.storage import RunLock
from _spaces import study_file



def _study_file(tmp_path: Path, name: str = "t", **over) -> Path:
    return study_file(tmp_path, name, **over)


def _journal_trials(run_dir: Path, name: str) -> list:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run_dir / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


@pytest.mark.ray
def test_budget_exact_on_ray_with_journal(tmp_path, ray_session):
    st = load_study(_study_file(tmp_path, execution={"backend": "ray", "inline_below": 0}))
    runner = StudyRunner(st, tmp_path / "runs" / "t")
    res = runner.run()
    df = pl.read_parquet(tmp_path / "runs/t/results.parquet")
    assert df.height == 50 and df["trial"].to_list() == list(range(50))
    assert df["generation"].to_list() == [0] * 16 + [1] * 16 + [2] * 16 + [3] * 2
    assert res.summary["ray_tasks"] >= 4 and res.summary["executor"] == "ray"
    assert res.summary["front_size"] == df["pareto"].sum() > 0
    assert not df.filter(pl.col("pareto") & ~pl.col("feasible")).height
    journal = _journal_trials(tmp_path / "runs/t", "t")
    assert len(journal) == 50 and all(t.state.is_finished() for t in journal)
    assert journal[20].system_attrs["NSGAIISampler:generation"] == 1 and len(journal[20].constraints) == 2
    # every metric finite, infeasible rows carry a reason
    assert (df.filter(~pl.col("feasible"))["reason"].str.len_chars() > 0).all()
    # rerunning a finished study adds nothing
    again = StudyRunner(st, tmp_path / "runs" / "t", serial=True).run()
    assert again.summary["trials"] == 50 and again.summary["trials_this_run"] == 0


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    cfg = _study_file(tmp_path, name="k", budget={"trials": 400}, sampler={"kind": "nsga2", "population_size": 8})
    # uninterrupted reference, in-process
    ref = StudyRunner(load_study(cfg), tmp_path / "ref" / "k").run()
    assert ref.summary["trials"] == 400
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "dse", "run", str(cfg), "--out", str(out), "--serial", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out / "k" / "parts"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if parts.exists() and len(PartStore(parts.parent, create=False).indices()) >= 5:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_parts = len(PartStore(parts.parent, create=False).indices())
    assert 5 <= n_parts < 50
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr
    a = pl.read_parquet(tmp_path / "ref/k/results.parquet").drop("datetime_start", "datetime_complete")
    b = pl.read_parquet(out / "k/results.parquet").drop("datetime_start", "datetime_complete")
    assert b.height == 400 and b["trial"].n_unique() == 400
    assert a.equals(b)  # same trials, same metrics, same front as the uninterrupted run
    journal = _journal_trials(out / "k", "k")
    assert [t.number for t in journal] == list(range(400))


@pytest.mark.ray
def test_grid_equals_brute_force(tmp_path, ray_session):
    from dse.study.evaluator import ModelEvaluator

    cfg = _study_file(tmp_path, name="g", sampler={"kind": "grid", "points": 3, "shard_size": 23},
                      execution={"backend": "ray", "inline_below": 0})
    st = load_study(cfg)
    res = StudyRunner(st, tmp_path / "runs" / "g").run()
    df = pl.read_parquet(tmp_path / "runs/g/results.parquet")
    axes = st.space.grid_axes(3)
    combos = []
    for vals in itertools.product(*axes.values()):
        row = dict(zip(axes, vals))
        if row["chip.memory"] == "none":
            if row["chip.memory_stacks"] != axes["chip.memory_stacks"][0]:
                continue
            row["chip.memory_stacks"] = 0
        combos.append(row)
    assert df.height == len(combos) == res.summary["trials"]
    cols = {k: np.array([c[k] for c in combos]) for k in combos[0]}
    cols["system.num_chips"] = np.ones(len(combos), dtype=np.int64)
    cols["chip.packaging"] = np.array(["cowos_s"] * len(combos))
    brute = ModelEvaluator("local")(cols)
    key = list(axes)
    got = {tuple(r[:len(key)]): r[len(key):] for r in df.select(*key, "local_llm.tpot_ms", "chip_cost_usd").iter_rows()}
    for i, c in enumerate(combos):
        assert got[tuple(c[k] for k in key)] == (brute["local_llm.tpot_ms"][i], brute["chip_cost_usd"][i])
    # the grid's front is the brute-force front
    from dse.pareto import nondominated_mask

    ok = brute["feasible"] & (brute["tdp_w"] <= 400)
    Y = np.column_stack([brute["local_llm.tpot_ms"], brute["chip_cost_usd"]])[ok]
    front = {tuple(r) for r in Y[nondominated_mask(Y, [False, False])]}
    assert {tuple(r) for r in df.filter(pl.col("pareto")).select("local_llm.tpot_ms", "chip_cost_usd").iter_rows()} == front


def test_export_round_trip_and_cli(tmp_path):
    from typer.testing import CliRunner

    import dse.commands.study  # noqa: F401 - registers the commands
    from dse.cli_app import app
    from dse.model.arrays import DesignArrays
    from dse.evaluate import evaluate
    from dse.model.hardware import Design
    from dse.model.technology import default_technology
    from dse.study.export import export
    from dse.workloads.scenarios import load_mix

    st = load_study(_study_file(tmp_path, name="e", budget={"trials": 48}))
    StudyRunner(st, tmp_path / "runs" / "e").run()
    run = tmp_path / "runs" / "e"
    df = pl.read_parquet(run / "results.parquet")
    files = export(run, "pareto", "yaml", tmp_path / "designs")
    assert len(files) == df["pareto"].sum() > 0
    tech, mix = default_technology(), load_mix("local")
    for f in files:
        d = Design.model_validate(yaml.safe_load(f.read_text()))
        m = evaluate(DesignArrays.from_designs([d], tech), mix, tech)
        row = df.filter(pl.col("trial") == int(f.stem.split("-t")[-1])).row(0, named=True)
        for k, v in m.items():
            if k not in ("feasible", "reason"):
                want = v[0].item() if hasattr(v[0], "item") else v[0]  # exported floats are rounded (12 digits)
                assert row[column_name(df.columns, k)] == (pytest.approx(want, rel=1e-9) if isinstance(want, float)
                                                           else want), k
    cli = CliRunner()
    r = cli.invoke(app, ["export", str(run), "--select", "top:3", "--format", "json", "--out", str(tmp_path / "t.json")])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["export", str(run), "--select", "trial:3,5", "--format", "csv", "--out", str(tmp_path / "t.csv")])
    assert r.exit_code == 0 and pl.read_csv(tmp_path / "t.csv")["trial"].to_list() == [3, 5]
    r = cli.invoke(app, ["pareto", str(run), "--json"])
    assert r.exit_code == 0 and len(__import__("json").loads(r.output)) == df["pareto"].sum()


def test_failed_batch_is_recorded_and_study_continues(tmp_path):
    from dse.study.evaluator import ModelEvaluator

    class Flaky(ModelEvaluator):
        calls = 0

        def __call__(self, cols):
            Flaky.calls += 1
            if Flaky.calls == 2:
                raise RuntimeError("boom")
            return super().__call__(cols)

    st = load_study(_study_file(tmp_path, name="f", budget={"trials": 40}))
    res = StudyRunner(st, tmp_path / "runs" / "f", evaluator=Flaky("local")).run()
    df = pl.read_parquet(tmp_path / "runs/f/results.parquet")
    failed = df.filter(pl.col("state") == "FAIL")
    # the second batch fails, except for designs that repeat one of the first batch (their stored result is reused)
    b1 = df.filter(pl.col("batch") == 1)
    reused = b1.filter(pl.col("state") == "COMPLETE")
    assert df.height == 40 and failed.height == res.summary["trials_failed"] == 16 - reused.height > 0
    assert failed["batch"].unique().to_list() == [1] and reused["repeat"].all()
    assert reused.join(df.filter(pl.col("batch") == 0), on=list(st.space.names), how="semi").height == reused.height
    assert failed["reason"].str.contains("RuntimeError: boom").all() and not failed["feasible"].any()


def test_run_folder_lock_and_fingerprint(tmp_path):
    cfg = _study_file(tmp_path, name="l", budget={"trials": 16})
    run = tmp_path / "runs" / "l"
    run.mkdir(parents=True)
    with RunLock(run):
        with pytest.raises(DseUserError, match="already running"):
            StudyRunner(load_study(cfg), run).run()
    StudyRunner(load_study(cfg), run).run()
    other = load_study(_study_file(tmp_path, name="l", seed=99, budget={"trials": 16}))
    with pytest.raises(DseUserError, match="different study"):
        StudyRunner(other, run).run()


@pytest.mark.ray
def test_sweep_runs_substudies_side_by_side(tmp_path, ray_session):
    from dse.study.sweep import run_sweep

    cfg = _study_file(tmp_path, name="sw", budget={"trials": 24}, execution={"backend": "ray"},
                      sweep=[{"name": "n7", "fixed": {"chip.process_node": "n7"}},
                             {"name": "n5", "fixed": {"chip.process_node": "n5"}, "seed": 3}])
    summary = run_sweep(load_study(cfg), tmp_path / "runs")
    assert set(summary["studies"]) == {"sw-n7", "sw-n5"}
    for node in ("n7", "n5"):
        df = pl.read_parquet(tmp_path / f"runs/sw/{node}/results.parquet")
        assert df.height == 24 and set(df["chip.process_node"]) == {node}
    merged = pl.read_parquet(tmp_path / "runs/sw/results.parquet")
    assert merged.height == 48 and set(merged["study"]) == {"sw-n7", "sw-n5"}
    assert summary["front_size"] == merged["pareto"].sum() > 0


def test_each_trial_s_reason_says_why_it_is_not_feasible(tmp_path):
    """`score`'s reason per row, by hand: the model's reason (or "infeasible" when it gives none), the violated
    constraints in the study's order, the error of a failed chunk; feasible rows have none."""
    from dse.study.execution import EvalError

    cfg = _study_file(tmp_path, name="why", constraints=["tdp_w <= 400", "chip_cost_usd <= 1000"])
    r = StudyRunner(load_study(cfg), tmp_path / "why")
    n = 8
    cols = {"chip.cores": np.full(n, 16)}
    metrics = {"feasible": np.array([1, 1, 1, 1, 0, 0, 1, 1], dtype=bool),
               "reason": np.array(["", "", "", "", "weights do not fit", "", "", ""], dtype=object),
               "tdp_w": np.array([100.0, 500, 500, 100, 100, 100, 500, 0]),
               "chip_cost_usd": np.array([10.0, 10, 2000, 2000, 10, 10, 2000, 0]),
               "local_llm.tpot_ms": np.ones(n)}
    ok = {k: v[:7] for k, v in metrics.items()}
    sc = r.score(cols, [(slice(0, 7), ok), (slice(7, 8), EvalError("evaluation error: boom"))], n)
    both = "violates tdp_w <= 400; chip_cost_usd <= 1000"
    assert sc["reason"].tolist() == ["", "violates tdp_w <= 400", both, "violates chip_cost_usd <= 1000",
                                     "weights do not fit", "infeasible", both, "evaluation error: boom"]
    assert sc["feasible"].tolist() == [True] + [False] * 7 and sc["failed"].tolist() == [False] * 7 + [True]


def test_score_of_one_whole_chunk_equals_score_of_its_pieces(tmp_path):
    """`score` takes a batch evaluated as one chunk as it is (no per-metric merge); the same results handed over
    as two chunks are merged into the same metrics, objectives, constraints and reasons, a non-finite metric
    failing its row (zeroed, named in the reason) either way."""
    from dse.study.execution import EvalError

    st = load_study(_study_file(tmp_path))
    runner = StudyRunner(st, tmp_path / "runs" / "t", serial=True)
    cols = st.space.columns([st.space.complete({}) for _ in range(4)])
    res = runner.evaluator(cols)
    res = {k: np.asarray(v).copy() for k, v in res.items()}
    metric = runner.metrics[1]  # a float objective metric
    res[metric][2] = np.nan
    whole = runner.score(cols, [(slice(0, 4), res)], 4)
    pieces = runner.score(cols, [(slice(0, 3), {k: v[:3] for k, v in res.items()}),
                                 (slice(3, 4), {k: v[3:] for k, v in res.items()})], 4)
    assert whole["metrics"].keys() == pieces["metrics"].keys()
    for k, v in whole["metrics"].items():
        assert v.dtype == pieces["metrics"][k].dtype and v.tolist() == pieces["metrics"][k].tolist(), k
    for k in ("Y", "cmat", "failed", "feasible", "reason"):
        assert np.asarray(whole[k]).tolist() == np.asarray(pieces[k]).tolist(), k
    assert whole["failed"].tolist() == [False, False, True, False]
    assert whole["metrics"][metric][2] == 0.0 and metric in whole["reason"][2]
    assert np.isnan(res[metric][2])  # the evaluator's arrays are not written to
    failed = runner.score(cols, [(slice(0, 2), EvalError("boom")), (slice(2, 4), {k: v[2:] for k, v in res.items()})], 4)
    assert failed["failed"].tolist() == [True, True, True, False] and failed["reason"][0] == "boom"
