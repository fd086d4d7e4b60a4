"""Sweeps: several sub-studies (one per sweep entry) run side by side as Ray tasks, then one merged front.

Each sub-study is an ordinary study run in `<out>/<sweep>/<entry>/` (so each is resumable on its
own) driven by one Ray task with one CPU that evaluates in-process; the sweep folder gets a merged
`results.parquet` (with a `study` column), the front over all of them, and a `summary.json`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable

import polars as pl

from dse.errors import DseUserError
from dse.runs.front import front_mask
from dse.runs.layout import RESULTS, RunMeta
from dse.runs.writer import (
    PartStore,
    RunLock,
    atomic_write_parquet,
    run_timing,
    write_json,
    write_meta,
)
from dse.study.execution import check_reachable, ray_session
from dse.study.probe import check_study
from dse.study.runner import StudyRunner, check_folder, default_evaluator
from dse.study.spec import Study, sub_studies


def _run_sub(sub: Study, run_dir: str, evaluator: Any, trials: int | None) -> dict[str, Any]:

    return StudyRunner(sub, Path(run_dir), trials=trials, evaluator=evaluator, serial=True).run().summary


def _rows_done(run_dir: Path) -> int:
    try:
        return PartStore(run_dir, create=False).rows()
    except Exception:  # noqa: BLE001 - a part being renamed right now
        return 0


def run_sweep(study: Study, out: Path | str, *, trials: int | None = None, serial: bool = False,
              address: str | None = None, evaluator_for: Callable[[Study], Any] | None = None,
              on_progress: Callable[[dict[str, int], dict[str, int | None], float], None] | None = None) -> dict:
    """Run every sub-study of `study.spec.sweep`; returns the sweep summary."""

    use_ray = not (serial or study.spec.execution.backend == "serial")
    addr = address or study.spec.execution.address
    if use_ray and (addr or os.environ.get("RAY_ADDRESS")):  # fail before writing anything

        check_reachable(addr) if addr else check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
    sweep_dir = Path(out).resolve() / study.name  # absolute: sub-studies run in Ray workers with their own cwd
    subs = sub_studies(study)
    for s in subs:  # every sub-study's config problem before anything is written
        check_study(s)
    check_folder(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    evaluator_for = evaluator_for or default_evaluator
    dirs = {s.name: sweep_dir / s.name.removeprefix(f"{study.name}-") for s in subs}
    budgets = {s.name: trials if trials is not None else s.spec.budget.trials for s in subs}
    t0 = time.perf_counter()
    summaries: dict[str, dict] = {}
    with RunLock(sweep_dir):
        if not use_ray:
            for s in subs:
                summaries[s.name] = _run_sub(s, str(dirs[s.name]), evaluator_for(s), trials)
                if on_progress:
                    on_progress({n: _rows_done(d) for n, d in dirs.items()}, budgets, time.perf_counter() - t0)
        else:
            with ray_session(address or study.spec.execution.address, study.spec.execution.num_cpus) as ray:
                remote = ray.remote(num_cpus=1, max_retries=2)(_run_sub)
                refs = {s.name: remote.remote(s, str(dirs[s.name]), evaluator_for(s), trials) for s in subs}
                pending = list(refs.values())
                while pending:
                    _, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
                    if on_progress:
                        on_progress({n: _rows_done(d) for n, d in dirs.items()}, budgets, time.perf_counter() - t0)
                for name, ref in refs.items():
                    summaries[name] = _get(ray, ref, name)
        wall = time.perf_counter() - t0
        return _merge(study, sweep_dir, dirs, summaries, wall)


def _get(ray: Any, ref: Any, name: str) -> dict:
    """A sub-study's summary; a user error raised inside its task is re-raised without Ray's remote traceback."""

    try:
        return ray.get(ref)
    except DseUserError as exc:  # RayTaskError subclasses the cause's type
        cause = getattr(exc, "cause", None) or exc
        raise DseUserError(f"{name}: {cause.args[0] if cause.args else cause}") from None


def _merge(study: Study, sweep_dir: Path, dirs: dict[str, Path], summaries: dict[str, dict], wall: float) -> dict:
    frames = []
    for name, d in dirs.items():
        p = d / RESULTS
        if p.exists():
            frames.append(pl.read_parquet(p).with_columns(pl.lit(name).alias("study")))
    df = pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame()
    if df.height:
        df = df.rename({"pareto": "pareto_in_study"}).with_columns(
            pl.Series("pareto", front_mask(df, study.spec.objectives, use_stored=False)))
        atomic_write_parquet(df, sweep_dir / "results.parquet")
        atomic_write_parquet(df.filter(pl.col("pareto")), sweep_dir / "pareto.parquet")
    subs = sub_studies(study)
    knobs = sorted({k for s in subs for k in s.space.names})
    varying = sorted({k for s in subs for k in s.space.knobs})
    write_meta(sweep_dir, RunMeta(name=study.name, sweep=list(dirs), knobs=knobs, varying=varying,
                                  objectives=list(study.spec.objectives)))
    n = sum(s.get("trials_this_run", 0) for s in summaries.values())
    summary = {"sweep": study.name, "studies": summaries, "trials": df.height,
               "front_size": int(df["pareto"].sum()) if df.height else 0, **run_timing(wall, n)}
    write_json(sweep_dir / "summary.json", summary)
    return summary
