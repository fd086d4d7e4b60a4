"""Study results: the trials table from the Parquet parts, the Pareto flag, the front, the summary.

`results.parquet` / `pareto.parquet` / `summary.json` are derived from the parts and can always be
rebuilt from them (`finalize`), e.g. after a killed run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import polars as pl

from dse.errors import DseUserError
from dse.pareto import hypervolume, nondominated_mask
from dse.study.storage import PartStore, atomic_write_parquet, write_json

INTERNAL = ("_optuna", "_study_attrs")


def objective_matrix(df: pl.DataFrame, metrics: Sequence[str]) -> np.ndarray:
    if df.height == 0:
        return np.zeros((0, len(metrics)))
    return np.column_stack([df[m].cast(pl.Float64).to_numpy() for m in metrics])


def pareto_mask(df: pl.DataFrame, metrics: Sequence[str], maximize: Sequence[bool]) -> np.ndarray:
    """Non-dominated among feasible rows (infeasible rows are never on the front)."""
    mask = np.zeros(df.height, dtype=bool)
    if df.height == 0:
        return mask
    feas = df["feasible"].to_numpy().astype(bool)
    if feas.any():
        Y = objective_matrix(df.filter(pl.Series(feas)), metrics)
        mask[np.flatnonzero(feas)] = nondominated_mask(Y, list(maximize))
    return mask


def reference_point(Y: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Worst feasible value of each objective pushed 10% of its range further (1 unit if the range is 0)."""
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi) * 0.1, 1e-12) * 10)
    mx = np.asarray(maximize, dtype=bool)
    return np.where(mx, lo - 0.1 * span, hi + 0.1 * span)


class FrontTracker:
    """Incremental front for the live display: feasible share, front size, hypervolume."""

    def __init__(self, maximize: Sequence[bool], ref: Sequence[float] | None = None):
        self.maximize = list(maximize)
        self.front = np.zeros((0, len(self.maximize)))
        self.ref = None if ref is None else np.asarray(ref, dtype=float)
        self.n = 0
        self.n_feasible = 0

    def add(self, Y: np.ndarray, feasible: np.ndarray) -> None:
        self.n += len(feasible)
        self.n_feasible += int(feasible.sum())
        F = Y[feasible]
        if len(F) == 0:
            return
        if self.ref is None:  # frozen at the first feasible batch, generous so later points count
            lo, hi = F.min(axis=0), F.max(axis=0)
            span = np.maximum(hi - lo, np.maximum(np.abs(hi), 1e-12))
            self.ref = np.where(np.asarray(self.maximize), lo - span, hi + span)
        allp = np.vstack([self.front, F])
        self.front = allp[nondominated_mask(allp, self.maximize)]

    @property
    def hypervolume(self) -> float:
        if self.ref is None or len(self.front) == 0:
            return 0.0
        return hypervolume(self.front, self.ref, self.maximize)


def load_trials(run_dir: Path) -> pl.DataFrame:
    """All trials of a run: `results.parquet` when it is current, else rebuilt from the parts."""
    run_dir = Path(run_dir)
    res = run_dir / "results.parquet"
    parts = PartStore(run_dir) if (run_dir / "parts").exists() else None
    if res.exists():
        df = pl.read_parquet(res)
        if parts is None or df.height >= _parts_rows(parts):
            return df
    if parts is None:
        raise DseUserError(f"{run_dir}: not a study run folder (no results.parquet or parts/)")
    df = parts.read_all()
    if df is None:
        raise DseUserError(f"{run_dir}: the run has no trials yet")
    return df.drop([c for c in INTERNAL if c in df.columns])


def _parts_rows(parts: PartStore) -> int:
    return sum(pl.scan_parquet(parts.path(i)).select(pl.len()).collect().item() for i in parts.indices())


def run_meta(run_dir: Path) -> dict[str, Any]:
    p = Path(run_dir) / "run.json"
    if not p.exists():
        raise DseUserError(f"{run_dir}: not a study run folder (no run.json)")
    return json.loads(p.read_text())


def finalize(run_dir: Path, meta: dict[str, Any], *, wall_time_s: float, trials_this_run: int,
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write results.parquet, pareto.parquet and summary.json from the parts; returns the summary."""
    run_dir = Path(run_dir)
    df = PartStore(run_dir).read_all()
    if df is None:
        df = pl.DataFrame({"trial": pl.Series([], dtype=pl.Int64), "feasible": pl.Series([], dtype=pl.Boolean)})
    df = df.drop([c for c in INTERNAL if c in df.columns]).sort("trial")
    metrics = [o["metric"] for o in meta["objectives"]]
    maximize = [o["direction"] == "maximize" for o in meta["objectives"]]
    have = all(m in df.columns for m in metrics)
    mask = pareto_mask(df, metrics, maximize) if have else np.zeros(df.height, dtype=bool)
    df = df.with_columns(pl.Series("pareto", mask))
    atomic_write_parquet(df, run_dir / "results.parquet")
    front = df.filter(pl.col("pareto"))
    atomic_write_parquet(front, run_dir / "pareto.parquet")

    feas = df.filter(pl.col("feasible")) if df.height else df
    summary: dict[str, Any] = {
        "study": meta["name"], "sampler": meta.get("sampler"), "seed": meta.get("seed"),
        "budget": meta.get("budget"), "trials": df.height,
        "trials_complete": int((df["state"] == "COMPLETE").sum()) if "state" in df.columns else df.height,
        "trials_failed": int((df["state"] == "FAIL").sum()) if "state" in df.columns else 0,
        "feasible": feas.height, "feasible_share": (feas.height / df.height) if df.height else 0.0,
        "front_size": front.height, "wall_time_s": round(wall_time_s, 3), "trials_this_run": trials_this_run,
        "trials_per_s": round(trials_this_run / wall_time_s, 2) if wall_time_s > 0 else None,
        "objectives": meta["objectives"], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if have and feas.height:
        Y = objective_matrix(feas, metrics)
        if meta.get("reference_point"):
            ref = np.array([meta["reference_point"][m] for m in metrics], dtype=float)
            rule = "given in the study file"
        else:
            ref = reference_point(Y, maximize)
            rule = "worst feasible value of each objective, 10% of its range further"
        summary["hypervolume"] = hypervolume(objective_matrix(front, metrics), ref, maximize)
        summary["reference_point"] = {m: float(r) for m, r in zip(metrics, ref)}
        summary["reference_point_rule"] = rule
        best = {}
        knobs = meta.get("knobs", [])
        for m, mx in zip(metrics, maximize):
            row = feas.sort(m, descending=mx).row(0, named=True)
            best[m] = {"trial": row["trial"], "value": row[m], "design": {k: row[k] for k in knobs if k in row},
                       "objectives": {mm: row[mm] for mm in metrics}}
        summary["best"] = best
    else:
        summary["hypervolume"] = 0.0
        summary["reference_point"] = None
        summary["best"] = {}
    if extra:
        summary.update(extra)
    write_json(run_dir / "summary.json", summary)
    return summary
