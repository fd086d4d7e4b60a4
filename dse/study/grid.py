"""The `grid` sampler: enumerate the discretised space in shards; each shard is evaluated, scored and stored
as one Parquet part where it runs (in-process or a Ray task), so the driver's memory does not grow with
the grid.

No Optuna bookkeeping: a shard is a range of the full grid product (C order; rows that would only
repeat a design with an inactive conditional knob are skipped), and its part's `trial` is the row's index
in the grid product. A shard sends back only a digest (counts, its feasible non-dominated rows and the rows
that bound its objective ranges); the driver keeps the running front of those, and `finalize_grid` streams
the parts into results.parquet. A rerun skips shards already stored. The trial budget does not apply (the
grid is the budget); a timeout does.

Where shards run: with Ray (not `--serial`), a grid of more than one shard always uses Ray. An embedded Ray
starts in the background while the first shards run in-process; an attached cluster is used from the start.
"""

from __future__ import annotations

import copy
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dse.pareto import nondominated_mask
from dse.errors import DseUserError
from dse.runs.front import (STUDY_RULE, FrontTracker, front_hypervolume, maximize_of, objective_matrix,
                            reference_array, reference_dict)
from dse.runs.layout import PARETO, RESULTS, SUMMARY_JSON, Summary
from dse.runs.partlog import fsync_dir
from dse.runs import columns
from dse.runs.writer import (PARQUET_ZSTD_LEVEL, PartStore, RunLock, atomic_write_parquet, run_timing,
                             set_reference, write_json, write_meta)
from dse.study.execution import EvalError, RayExecutor, eval_chunk, take
from dse.study.rundir import Progress, RunResult, prepare_run_dir, start_meta

# designs per model call inside a shard: large enough to amortise the model's per-call cost, small enough
# that a shard's intermediate arrays stay well under 1 GB
EVAL_CHUNK = 50_000


def _scorer(runner: Any) -> Any:
    """What a shard needs of the runner (score, frame, objectives, constraints), without its executor,
    evaluator and callbacks, so that it can be shipped to a Ray worker."""
    s = copy.copy(runner)
    s.executor = s.on_progress = s.evaluator = None
    return s


def shard_job(scorer: Any, space: Any, shard: int, size: int, points: int | None, evaluator: Any,
              run_dir: str) -> dict[str, Any]:
    """Enumerate, evaluate, score and store shard `shard` (grid rows [shard*size, (shard+1)*size)); returns
    its digest (see `_digest`)."""
    start = shard * size
    keep, cols = space.grid_shard(start, start + size, points)
    trials = np.arange(start, start + len(keep), dtype=np.int64)[keep]
    n = len(trials)
    parts = PartStore(Path(run_dir), create=False)  # create=True would sweep other writers' temp files
    if n == 0:
        parts.write(shard, _empty_frame())
        return {"shard": shard, "n": 0, "failed": 0, "feasible": 0, "Y": np.zeros((0, len(scorer.objectives))),
                "trials": np.zeros(0, dtype=np.int64)}
    results = []
    for a in range(0, n, EVAL_CHUNK):
        s = slice(a, min(n, a + EVAL_CHUNK))
        results.append((s, eval_chunk(evaluator, take(cols, s))))
    sc = scorer.score(cols, results, n)
    base = {"trial": trials, "generation": np.zeros(n, dtype=np.int64), "batch": np.full(n, shard, dtype=np.int64),
            "state": np.where(sc["failed"], "FAIL", "COMPLETE")}
    parts.write(shard, _frame(scorer, base, cols, sc))
    return _digest(shard, trials, sc, scorer.maximize)


def _frame(scorer: Any, base: dict[str, Any], cols: dict[str, np.ndarray], sc: dict[str, Any]) -> pl.DataFrame:
    """`scorer.frame`, with knob columns that hold one Python object on every row (a fixed list knob such as
    `chip.precisions`) built by repeating one value: polars would convert a list per row (~0.2 ms each)."""
    n = len(base["trial"])
    const = {k: i for i, (k, v) in enumerate(cols.items())
             if v.dtype == object and n > 1 and all(x is v[0] for x in v)}
    df = scorer.frame(base, {k: v for k, v in cols.items() if k not in const}, sc)
    for k, i in const.items():  # back in their place among the knob columns
        df.insert_column(len(base) + i, pl.Series(k, [cols[k][0]], strict=False).gather(np.zeros(n, dtype=np.int64)))
    return df


def _digest(shard: int, trials: np.ndarray, sc: dict[str, Any], maximize: list[bool]) -> dict[str, Any]:
    """Counts, plus the feasible rows that are non-dominated or hold a minimum/maximum of an objective
    (those decide the front and the derived reference point exactly as all rows would)."""
    Y, feas = sc["Y"], sc["feasible"] & np.isfinite(sc["Y"]).all(axis=1)
    idx = np.flatnonzero(feas)
    keep = np.zeros(len(idx), dtype=bool)
    if len(idx):
        F = Y[idx]
        keep |= nondominated_mask(F, maximize)
        keep[F.argmin(axis=0)] = True
        keep[F.argmax(axis=0)] = True
    return {"shard": shard, "n": len(trials), "failed": int(sc["failed"].sum()), "feasible": int(sc["feasible"].sum()),
            "Y": Y[idx[keep]], "trials": trials[idx[keep]]}


class _Front:
    """The driver's running front over the shards' digests: objective rows and their trial numbers."""

    def __init__(self, maximize: list[bool], m: int):
        self.maximize = maximize
        self.Y = np.zeros((0, m))
        self.trials = np.zeros(0, dtype=np.int64)

    def add(self, Y: np.ndarray, trials: np.ndarray) -> None:
        allY, allT = np.vstack([self.Y, Y]), np.concatenate([self.trials, trials])
        mask = nondominated_mask(allY, self.maximize) if len(allY) else np.zeros(0, dtype=bool)
        self.Y, self.trials = allY[mask], allT[mask]


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
        objs = runner.objectives
        front = _Front(list(runner.maximize), len(objs))
        stats = {"n": 0, "failed": 0, "feasible": 0}
        tracker = FrontTracker(runner.maximize, reference_array(objs, meta.reference_point))
        done_shards = set(parts.indices())
        for i in sorted(done_shards):  # a resumed grid: stored shards count as they did in the run that wrote them
            _account(_digest_part(parts.path(i), i, runner), front, stats, tracker)
        if tracker.new_reference:
            set_reference(runner.run_dir, meta, objs, tracker.ref)
            tracker.new_reference = False
        todo = [i for i in range(n_shards) if i not in done_shards]
        new, failed_shards = 0, []
        ex = runner.executor
        scorer = _scorer(runner)
        try:
            for shard, digest in _shards(ex, space, cfg, runner, scorer, todo, t0):
                if isinstance(digest, Exception):  # a lost shard is retried on the next run
                    runner_log(f"grid shard {shard} failed (rerun the study to retry it): {digest}")
                    failed_shards.append(shard)
                    continue
                _account(digest, front, stats, tracker)
                new += digest["n"]
                if tracker.new_reference:
                    set_reference(runner.run_dir, meta, objs, tracker.ref)
                    tracker.new_reference = False
                if runner.on_progress and digest["n"]:
                    runner.on_progress(Progress(runner.spec.name, tracker.n, None, time.perf_counter() - t0, new,
                                                tracker.n_feasible, len(tracker.front), tracker.hypervolume, shard))
        finally:
            ex.close()
        wall = time.perf_counter() - t0
        summary = finalize_grid(runner.run_dir, meta, front, stats, wall_time_s=wall, trials_this_run=new,
                                extra={"grid": meta.grid, "executor": ex.kind, "grid_shards_failed": failed_shards,
                                       "ray_tasks": getattr(ex, "tasks", 0), "ray": getattr(ex, "stats", dict)()})
        return RunResult(runner.run_dir, summary)


def _account(digest: dict[str, Any], front: _Front, stats: dict[str, int], tracker: FrontTracker) -> None:
    """Add one shard's digest to the running front, counts and live display."""
    for k in stats:
        stats[k] += digest[k]
    front.add(digest["Y"], digest["trials"])
    k = len(digest["Y"])
    tracker.add(digest["Y"], np.ones(k, dtype=bool))
    tracker.n += digest["n"] - k
    tracker.n_feasible += digest["feasible"] - k


def _digest_part(path: Path, shard: int, runner: Any) -> dict[str, Any]:
    """The digest of a stored shard (a resumed grid)."""
    df = pl.read_parquet(path)
    n = df.height
    if n == 0 or "state" not in df.columns:
        return {"shard": shard, "n": n, "failed": 0, "feasible": 0, "Y": np.zeros((0, len(runner.objectives))),
                "trials": np.zeros(0, dtype=np.int64)}
    Y = objective_matrix(df, runner.objectives) if df["feasible"].any() else np.zeros((n, len(runner.objectives)))
    sc = {"Y": Y, "feasible": df["feasible"].to_numpy().astype(bool), "failed": (df["state"] == "FAIL").to_numpy()}
    return _digest(shard, df["trial"].to_numpy(), sc, list(runner.maximize))


def runner_log(msg: str) -> None:
    import logging

    logging.getLogger(__name__).warning(msg)


def _shards(ex: Any, space: Any, cfg: Any, runner: Any, scorer: Any, todo: list[int], t0: float):
    """Yield (shard, digest or the exception that lost it) in shard order, stopping at the timeout.

    In-process while no Ray is up; with a RayExecutor, a grid of more than one shard always uses Ray (an
    attached cluster at once; an embedded Ray is started in the background and used once up) with ~2
    shards per CPU in flight."""
    size, run_dir = cfg.shard_size, str(runner.run_dir.resolve())
    use_ray = isinstance(ex, RayExecutor) and len(todo) > 1
    if use_ray and ex.attached:
        ex.start()
    elif use_ray:
        ex.launch()
    timed_out = lambda: runner.timeout is not None and time.perf_counter() - t0 >= runner.timeout  # noqa: E731
    it = iter(todo)
    for i in it:
        if timed_out():
            return
        if use_ray and ex.poll():
            rest = [i, *it]
            break
        if isinstance(ex, RayExecutor):
            ex.batches["in_process"] += 1
        yield i, shard_job(scorer, space, i, size, cfg.points, runner.evaluator, run_dir)
    else:
        return
    import ray

    remote = ray.remote(max_retries=3)(shard_job)
    refs = [ray.put(x) for x in (scorer, space)]
    window = max(2, 2 * ex.cpus)
    queue: list[tuple[int, Any]] = []
    pending = iter(rest)
    for i in pending:
        queue.append((i, remote.remote(*refs, i, size, cfg.points, ex._ev_ref, run_dir)))
        ex.tasks += 1
        ex.batches["ray"] += 1
        if len(queue) >= window:
            break
    while queue:
        i, ref = queue.pop(0)
        try:
            out = ray.get(ref)
        except DseUserError as exc:  # a study error raised in the task (RayTaskError subclasses its cause)
            cause = getattr(exc, "cause", None) or exc
            raise DseUserError(str(cause.args[0]) if cause.args else str(cause)) from None
        except Exception as exc:  # noqa: BLE001 - a lost shard is retried on the next run
            out = exc
        yield i, out
        if timed_out():
            for _, r in queue:
                ray.cancel(r, force=True)
            return
        nxt = next(pending, None)
        if nxt is not None:
            queue.append((nxt, remote.remote(*refs, nxt, size, cfg.points, ex._ev_ref, run_dir)))
            ex.tasks += 1
            ex.batches["ray"] += 1


def _empty_frame() -> pl.DataFrame:
    return pl.DataFrame({"trial": pl.Series([], dtype=pl.Int64), "batch": pl.Series([], dtype=pl.Int64),
                         "feasible": pl.Series([], dtype=pl.Boolean)})


def finalize_grid(run_dir: Path, meta: Any, front: _Front, stats: dict[str, int], *, wall_time_s: float,
                  trials_this_run: int, extra: dict[str, Any]) -> dict[str, Any]:
    """results.parquet, pareto.parquet and summary.json of a grid, streamed from the parts (the parts are in
    trial order already) with the front from the shards' digests: memory does not grow with the grid."""
    run_dir = Path(run_dir)
    parts = PartStore(run_dir)
    paths = [parts.path(i) for i in parts.indices()]
    objs = list(meta.objectives)
    maximize = maximize_of(objs)
    if paths:
        lf = pl.concat([pl.scan_parquet(p) for p in paths], how="diagonal_relaxed")
        lf = columns.without_internal(lf).drop("pareto", strict=False).with_columns(
            pl.col("trial").is_in(pl.lit(pl.Series(front.trials, dtype=pl.Int64)).implode()).alias("pareto"))
        names = lf.collect_schema().names()
        tmp = run_dir / f".{RESULTS}.{os.getpid()}.tmp"
        lf.sink_parquet(tmp, compression="zstd", compression_level=PARQUET_ZSTD_LEVEL, statistics=False,
                        metadata=columns.parquet_metadata(names))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, run_dir / RESULTS)
        fsync_dir(run_dir)
        front_df = pl.scan_parquet(run_dir / RESULTS).filter(pl.col("pareto")).collect()
    else:
        front_df = pl.DataFrame({"trial": pl.Series([], dtype=pl.Int64), "feasible": pl.Series([], dtype=pl.Boolean)})
        atomic_write_parquet(front_df.with_columns(pl.lit(False).alias("pareto")), run_dir / RESULTS)
    atomic_write_parquet(front_df, run_dir / PARETO)
    n = stats["n"]
    summary: dict[str, Any] = {
        "study": meta.name, "sampler": meta.sampler, "seed": meta.seed, "budget": meta.budget, "trials": n,
        "trials_complete": n - stats["failed"], "trials_failed": stats["failed"], "feasible": stats["feasible"],
        "feasible_share": stats["feasible"] / n if n else 0.0, "front_size": front_df.height,
        "trials_this_run": trials_this_run, **run_timing(wall_time_s, trials_this_run),
        "objectives": [o.model_dump() for o in objs], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hypervolume": 0.0, "reference_point": None, "best": {}}
    ref = reference_array(objs, meta.reference_point)
    if front_df.height and ref is not None:
        Yf = objective_matrix(front_df, objs)
        summary["hypervolume"] = front_hypervolume(Yf, ref, maximize)
        summary["reference_point"] = reference_dict(objs, ref)
        summary["reference_point_rule"] = meta.reference_point_rule or STUDY_RULE
        best = {}
        for j, (o, mx) in enumerate(zip(objs, maximize)):  # a best value of one objective is always on the front
            i = int(np.argmax(Yf[:, j]) if mx else np.argmin(Yf[:, j]))
            row = front_df.row(i, named=True)
            best[o.metric] = {"trial": row["trial"], "value": float(Yf[i, j]),
                              "design": {k: row[k] for k in meta.knobs if k in row},
                              "objectives": {oo.metric: float(Yf[i, jj]) for jj, oo in enumerate(objs)}}
        summary["best"] = best
    summary.update(extra)
    summary = Summary.model_validate(summary).model_dump(mode="json")
    write_json(run_dir / SUMMARY_JSON, summary)
    return summary


__all__ = ["run_grid", "shard_job", "finalize_grid", "EvalError"]
