"""Trials/s of the dse study runner vs plain Optuna `study.optimize`, same sampler, storage, space, model, budget.

Both persist to an Optuna journal file (JournalFileBackend) with the same NSGA-II sampler and seed:
  * plain:  `study.optimize(objective, n_trials=N)`, one design per trial, journal as the study storage;
  * runner: `dse.study.runner.StudyRunner` (batch ask/tell in memory, vectorized evaluation, one
            Parquet part + one journal group commit per generation).
Usage: python benchmarks/study_speed.py [--trials 10000] [--population 100] [--mix local] [--serial]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dse.study.evaluator import ModelEvaluator  # noqa: E402
from dse.study.runner import StudyRunner  # noqa: E402
from dse.study.spec import load_study  # noqa: E402


def make_study(tmp: Path, trials: int, population: int, mix: str, serial: bool) -> Path:
    text = f"""
name: speed
search_space: {ROOT / 'search_spaces' / 'datacenter.yaml'}
mix: {mix}
objectives:
  - {{metric: mix.throughput, direction: maximize}}
  - {{metric: system_cost_usd, direction: minimize}}
  - {{metric: power_w, direction: minimize}}
sampler: {{kind: nsga2, population_size: {population}}}
budget: {{trials: {trials}}}
seed: 1
execution: {{backend: {'serial' if serial else 'ray'}, inline_below: 512}}
"""
    p = tmp / "speed.yaml"
    p.write_text(text)
    return p


def run_plain(study_path: Path, tmp: Path, trials: int) -> tuple[float, float]:
    """Plain Optuna: (wall seconds, seconds inside the model)."""
    st = load_study(study_path)
    space, spec = st.space, st.spec
    ev = ModelEvaluator(spec.mix)
    metrics = [o.metric for o in spec.objectives]
    constraints = [__import__("dse.expr", fromlist=["parse"]).parse(c)
                   for c in list(spec.constraints) + list(space.spec.constraints)]
    model_s = 0.0

    def objective(trial: optuna.Trial):
        nonlocal model_s
        row = space.suggest(trial)
        t = time.perf_counter()
        m = ev(space.columns([row]))
        model_s += time.perf_counter() - t
        env = {**space.columns([row]), **m}
        trial.set_constraint("model", 0.0 if bool(m["feasible"][0]) else 1.0)
        for i, c in enumerate(constraints):
            trial.set_constraint(f"c{i}", float(c.violation(env)[0]))
        return tuple(float(m[k][0]) for k in metrics)

    journal = tmp / "plain.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    sampler = optuna.samplers.NSGAIISampler(population_size=spec.sampler.population_size, seed=spec.seed)
    study = optuna.create_study(storage=storage, sampler=sampler, study_name="plain",
                                directions=[o.direction for o in spec.objectives])
    ev(space.columns([space.complete({})]))  # warm the model's caches like the runner's first batch
    t0 = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    return time.perf_counter() - t0, model_s


def run_runner(study_path: Path, tmp: Path, trials: int, serial: bool) -> tuple[float, dict]:
    st = load_study(study_path)
    t0 = time.perf_counter()
    res = StudyRunner(st, tmp / "runs" / "speed", trials=trials, serial=serial).run()
    return time.perf_counter() - t0, res.summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--mix", default="local")
    ap.add_argument("--serial", action="store_true", help="runner evaluates in-process (no Ray start)")
    ap.add_argument("--skip-plain", action="store_true")
    args = ap.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="dse-speed-"))
    try:
        path = make_study(tmp, args.trials, args.population, args.mix, args.serial)
        print(f"space search_spaces/datacenter.yaml, mix {args.mix}, NSGA-II population {args.population}, "
              f"{args.trials} trials, journal file storage, 3 objectives")
        r_wall, summary = run_runner(path, tmp, args.trials, args.serial)
        ray_s = summary.get("ray_start_s", 0.0)
        print(f"runner : {r_wall:8.2f} s  {args.trials / r_wall:9.1f} trials/s  "
              f"(incl. Ray start {ray_s:.1f} s, {summary.get('ray_tasks', 0)} Ray tasks, executor {summary['executor']})")
        if args.skip_plain:
            return
        p_wall, model_s = run_plain(path, tmp, args.trials)
        print(f"plain  : {p_wall:8.2f} s  {args.trials / p_wall:9.1f} trials/s  "
              f"(model {model_s:.1f} s = {100 * model_s / p_wall:.0f}%, Optuna + journal {p_wall - model_s:.1f} s)")
        print(f"ratio  : runner is {p_wall / r_wall:.1f}x faster than plain Optuna at {args.trials} trials "
              f"(target >= 5x at 10,000)")
        print(f"front  : runner {summary['front_size']} designs, hypervolume {summary['hypervolume']:.4g}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _ = np


if __name__ == "__main__":
    main()
