"""The `grid` sampler: enumerate the discretised space in shards and evaluate each shard vectorized.

No Optuna bookkeeping: a shard is a range of the full grid product (C order; rows that would only
repeat a design with an inactive conditional knob are skipped), evaluated in-process or as one Ray
task, and stored as one Parquet part (`trial` = the row's index in the grid product). A rerun skips
shards already stored. The trial budget does not apply (the grid is the budget); a timeout does.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from dse.runs.front import FrontTracker, first_batch_reference, reference_array
from dse.runs.writer import PartStore, RunLock, finalize, set_reference, write_meta
from dse.study.execution import EvalError, RayExecutor, eval_chunk, take
from dse.study.rundir import Progress, RunResult, prepare_run_dir, start_meta


def shard_job(space: Any, start: int, stop: int, points: int | None, evaluator: Any,
              chunk: int = 50_000) -> tuple[np.ndarray, dict, list]:
    """Enumerate rows [start, stop) of the grid and evaluate them: (trial numbers, knob columns, results)."""
    keep, cols = space.grid_shard(start, stop, points)
    trials = np.arange(start, start + len(keep), dtype=np.int64)[keep]
    n = len(trials)
    results = []
    for a in range(0, n, chunk):
        s = slice(a, min(n, a + chunk))
        results.append((s, eval_chunk(evaluator, take(cols, s))))
    return trials, cols, results


def run_grid(runner: Any) -> Any:
    """Evaluate the whole grid of `runner.study` into `runner.run_dir` (resumable by shard)."""
    study, space, cfg = runner.study, runner.space, runner.spec.sampler
    runner.preflight()
    runner.run_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(runner.run_dir):  # before touching the folder: a refused second run changes nothing
        prepare_run_dir(study, runner.run_dir)
        t0 = time.perf_counter()
        parts = PartStore(runner.run_dir)
        total = space.grid_size_upper(cfg.points)
        n_shards = max(1, math.ceil(total / cfg.shard_size))
        meta, _ = start_meta(study, runner.run_dir, None, "none (grid: Parquet parts only)")
        meta.grid = {"product_size": total, "shards": n_shards, "points": cfg.points or space.spec.grid_points,
                     "axes": {k: len(v) for k, v in space.grid_axes(cfg.points).items()}}
        write_meta(runner.run_dir, meta)
        done_shards = set(parts.indices())
        todo = [i for i in range(n_shards) if i not in done_shards]
        objs = runner.objectives
        if done_shards and meta.reference_point is None:  # killed before the derived one was stored
            prior = parts.read_all()
            ref = first_batch_reference(prior, objs) if prior is not None and prior.height else None
            if ref is not None:
                set_reference(runner.run_dir, meta, objs, ref)
        tracker = FrontTracker(runner.maximize, reference_array(objs, meta.reference_point))
        new = 0
        failed_shards = []
        ex = runner.executor
        try:
            pending = _submit(ex, space, cfg, runner, todo)
            for shard, fut in pending:
                if runner.timeout is not None and time.perf_counter() - t0 >= runner.timeout:
                    break
                try:
                    trials, cols, results = fut() if callable(fut) else _ray_get(fut)
                except Exception as exc:  # noqa: BLE001 - a lost shard is retried on the next run
                    runner_log(f"grid shard {shard} failed (rerun the study to retry it): {exc}")
                    failed_shards.append(shard)
                    continue
                n = len(trials)
                if n == 0:
                    parts.write(shard, _empty_frame(runner, cols))
                    continue
                sc = runner.score(cols, results, n)
                base = {"trial": trials, "generation": np.zeros(n, dtype=np.int64),
                        "batch": np.full(n, shard, dtype=np.int64),
                        "state": np.where(sc["failed"], "FAIL", "COMPLETE")}
                parts.write(shard, runner.frame(base, cols, sc))
                new += n
                tracker.add(sc["Y"], sc["feasible"])
                if tracker.new_reference:
                    set_reference(runner.run_dir, meta, objs, tracker.ref)
                    tracker.new_reference = False
                if runner.on_progress:
                    runner.on_progress(Progress(runner.spec.name, tracker.n, None, time.perf_counter() - t0, new,
                                                tracker.n_feasible, len(tracker.front), tracker.hypervolume, shard))
        finally:
            ex.close()
        wall = time.perf_counter() - t0
        summary = finalize(runner.run_dir, meta, wall_time_s=wall, trials_this_run=new,
                           extra={"grid": meta.grid, "executor": ex.kind, "grid_shards_failed": failed_shards,
                                  "ray_tasks": getattr(ex, "tasks", 0)})
        return RunResult(runner.run_dir, summary)


def runner_log(msg: str) -> None:
    import logging

    logging.getLogger(__name__).warning(msg)


def _ray_get(ref: Any) -> Any:
    import ray

    return ray.get(ref)


def _submit(ex: Any, space: Any, cfg: Any, runner: Any, todo: list[int]):
    """Yield (shard, future) in shard order; Ray keeps ~2 shards per CPU in flight."""
    size = cfg.shard_size
    if not isinstance(ex, RayExecutor):
        for i in todo:
            yield i, (lambda i=i: shard_job(space, i * size, (i + 1) * size, cfg.points, runner.evaluator))
        return
    ex.start()
    import ray

    remote = ray.remote(max_retries=3)(shard_job)
    space_ref = ray.put(space)
    window = max(2, 2 * ex.cpus)
    queue: list[tuple[int, Any]] = []
    it = iter(todo)
    for i in it:
        queue.append((i, remote.remote(space_ref, i * size, (i + 1) * size, cfg.points, ex._ev_ref)))
        ex.tasks += 1
        if len(queue) >= window:
            break
    while queue:
        i, ref = queue.pop(0)
        nxt = next(it, None)
        if nxt is not None:
            queue.append((nxt, remote.remote(space_ref, nxt * size, (nxt + 1) * size, cfg.points, ex._ev_ref)))
            ex.tasks += 1
        yield i, ref


def _empty_frame(runner: Any, cols: dict) -> Any:
    import polars as pl

    return pl.DataFrame({"trial": pl.Series([], dtype=pl.Int64), "batch": pl.Series([], dtype=pl.Int64),
                         "feasible": pl.Series([], dtype=pl.Boolean)})


__all__ = ["run_grid", "shard_job", "EvalError"]
