"""Read study run folders (results.parquet, summary.json, study.yaml) and thin them for plotting.

A page must stay responsive at 10⁵ trials: it gets every front design plus a uniform sample of the
feasible dominated ones, up to `max_points` rows per run, and the page states the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dse.errors import DseUserError
from dse.pareto import crowding_distance
from dse.runs.front import column_name, front_mask, objective_matrix
from dse.runs.layout import Objective
from dse.runs.reader import Run, expand_sweeps, knob_columns, load_run, load_runs

RunData = Run  # the dashboard reads runs with the one reader of dse.runs

__all__ = ["RunData", "Thinned", "as_text", "expand_sweeps", "front_mask", "knob_columns", "load_run", "load_runs",
           "objective_matrix", "plot_frame", "resolve_objectives", "round_sig", "thin"]


def resolve_objectives(runs: list[Run], override: list[Objective] | None) -> list[Objective]:
    """Spec objectives if given, else the first run's; each must be a column of every run (or computable)."""
    objs = override or (runs[0].objectives() if runs else [])
    if not objs:
        raise DseUserError("no objectives: the run's study.yaml names none; list `objectives:` in the dashboard spec")
    for r in runs:
        missing = [n for o in objs for n in ([o.metric] if column_name(r.results.columns, o.metric) else o.names())
                   if column_name(r.results.columns, n) is None]
        if missing:
            raise DseUserError(f"{r.path}: results.parquet has no column {', '.join(missing)} (objective)")
    return objs


@dataclass
class Thinned:
    """Rows of one run to plot, and the counts the page reports."""

    frame: pl.DataFrame
    total: int
    feasible: int
    front: int
    front_shown: int
    dominated_shown: int


def thin(run: Run, objs: list[Objective], max_points: int, seed: int = 0) -> Thinned:
    """Front (cut to `max_points` by crowding distance if larger) + uniform sample of feasible dominated rows."""
    df = run.results
    front = front_mask(df, objs)
    feas = df["feasible"].fill_null(False).to_numpy().astype(bool)
    idx_front = np.flatnonzero(front)
    if len(idx_front) > max_points:
        cd = crowding_distance(objective_matrix(df[idx_front], objs), [o.direction == "maximize" for o in objs])
        idx_front = np.sort(idx_front[np.argsort(-cd, kind="stable")[:max_points]])
    idx_dom = np.flatnonzero(feas & ~front)
    room = max(max_points - len(idx_front), 0)
    if len(idx_dom) > room:
        idx_dom = np.sort(np.random.default_rng(seed).choice(idx_dom, size=room, replace=False))
    keep = np.sort(np.concatenate([idx_front, idx_dom]))
    frame = df[keep].with_columns(
        pl.Series("pareto", front[keep]),
        pl.lit(run.name).alias("run"),
    )
    return Thinned(frame, len(df), int(feas.sum()), int(front.sum()), len(idx_front), len(idx_dom))


def as_text(s: pl.Series) -> pl.Series:
    """Categorical, enum and list columns (e.g. chip.precisions) as plain strings for plotting and grouping."""
    if isinstance(s.dtype, pl.List):
        return s.cast(pl.List(pl.String)).list.join(",")
    if isinstance(s.dtype, (pl.Categorical, pl.Enum)):
        return s.cast(pl.String)
    return s


def round_sig(x: np.ndarray, sig: int = 4) -> np.ndarray:
    """Round floats to `sig` significant digits (smaller HTML, same picture)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(np.isfinite(x) & (x != 0), np.floor(np.log10(np.abs(x))), 0)
        f = 10.0 ** (sig - 1 - mag)
        out = np.round(x * f) / f
    return np.where(np.isfinite(out), out, x)


def plot_frame(frames: list[pl.DataFrame], columns: list[str]) -> pl.DataFrame:
    """Concatenate runs, keep `columns` (those present), round floats and rename to Vega-safe names."""
    from dse.report.labels import safe

    df = pl.concat(frames, how="diagonal_relaxed")
    cols = [c for c in dict.fromkeys(columns) if c in df.columns]
    df = df.select(cols)
    out = {}
    for c in cols:
        s = df[c]
        if s.dtype.is_float():
            s = pl.Series(c, round_sig(s.fill_null(np.nan).to_numpy()))
        else:
            s = as_text(s) if not s.dtype.is_numeric() and s.dtype != pl.Boolean else s
        out[safe(c)] = s
    return pl.DataFrame(out)
