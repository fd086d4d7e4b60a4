"""Read study run folders (results.parquet, summary.json, study.yaml) and thin them for plotting.

A page must stay responsive at 10⁵ trials: it gets every front design plus a uniform sample of the
feasible dominated ones, up to `max_points` rows per run, and the page states the numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from dse.errors import DseUserError
from dse.pareto import crowding_distance, nondominated_mask
from dse.report.spec import Objective

KNOB_PREFIXES = ("chip.", "system.")


@dataclass
class RunData:
    """One run folder: all trials, the study config and what the page shows of it."""

    name: str
    path: Path
    results: pl.DataFrame
    study: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def sampler(self) -> str:
        s = self.study.get("sampler") or self.summary.get("sampler") or {}
        return str(s.get("kind", "nsga2")) if isinstance(s, dict) else str(s)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.sampler})"

    def objectives(self) -> list[Objective]:
        """The study's objectives (study.yaml, else summary.json), keeping only columns present."""
        raw = self.study.get("objectives") or self.summary.get("objectives") or self.meta.get("objectives") or []
        out = []
        for o in raw:
            if isinstance(o, dict) and "metric" in o:
                out.append(Objective(metric=o["metric"], direction=o.get("direction", "minimize")))
        return out


def knob_columns(df: pl.DataFrame) -> list[str]:
    """Design knob columns (dotted `chip.*` / `system.*` names) in table order."""
    return [c for c in df.columns if c.startswith(KNOB_PREFIXES)]


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (json.JSONDecodeError, OSError):
        data = {}
    return data if isinstance(data, dict) else {}


def load_run(path: Path | str) -> RunData:
    """Read one run folder; a missing or unreadable results.parquet is a user error."""
    path = Path(path)
    res = path / "results.parquet"
    if not res.is_file():
        raise DseUserError(f"{path}: no results.parquet here (expected a run folder written by `dse run`)")
    try:
        df = pl.read_parquet(res)
    except Exception as exc:  # polars raises several types for corrupt files
        raise DseUserError(f"{res}: cannot read: {exc}") from None
    study, summary = {}, {}
    for fname in ("study.yaml", "config.yaml"):
        if (path / fname).is_file():
            try:
                study = yaml.safe_load((path / fname).read_text()) or {}
            except yaml.YAMLError:
                study = {}
            break
    summary = _read_json(path / "summary.json")
    meta = _read_json(path / "run.json")
    name = str(study.get("name") or summary.get("study") or meta.get("name") or path.name)
    if "trial" not in df.columns:
        df = df.with_row_index("trial")
    if "feasible" not in df.columns:
        df = df.with_columns(pl.lit(True).alias("feasible"))
    return RunData(name=name, path=path, results=df, study=study, summary=summary, meta=meta)


def expand_sweeps(paths) -> list[Path]:
    """A sweep folder (run.json lists `sweep` sub-studies) stands for its sub-run folders, compared side by side."""
    out: list[Path] = []
    for p in map(Path, paths):
        meta = _read_json(p / "run.json")
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / "results.parquet").is_file()) if p.is_dir() else []
        out.extend(subs if meta.get("sweep") and subs else [p])
    return out


def load_runs(paths) -> list[RunData]:
    """Read several run folders, making run names unique (`name`, `name-2`, ...)."""
    runs = [load_run(p) for p in expand_sweeps(paths)]
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name}-{seen[r.name]}"
    return runs


def resolve_objectives(runs: list[RunData], override: list[Objective] | None) -> list[Objective]:
    """Spec objectives if given, else the first run's; each must be a column of every run."""
    objs = override or (runs[0].objectives() if runs else [])
    if not objs:
        raise DseUserError("no objectives: the run's study.yaml names none; list `objectives:` in the dashboard spec")
    for r in runs:
        missing = [o.metric for o in objs if o.metric not in r.results.columns]
        if missing:
            raise DseUserError(f"{r.path}: results.parquet has no column {', '.join(missing)} (objective)")
    return objs


def objective_matrix(df: pl.DataFrame, objs: list[Objective]) -> np.ndarray:
    """n×m float matrix of the objective columns (nulls → NaN)."""
    return np.column_stack([df[o.metric].cast(pl.Float64).fill_null(np.nan).to_numpy() for o in objs])


def front_mask(df: pl.DataFrame, objs: list[Objective]) -> np.ndarray:
    """Feasible non-dominated rows: the stored `pareto` column when present, else computed here."""
    if "pareto" in df.columns and df["pareto"].dtype == pl.Boolean:
        return df["pareto"].fill_null(False).to_numpy()
    Y = objective_matrix(df, objs)
    feas = df["feasible"].fill_null(False).to_numpy().astype(bool)
    Y[~feas] = np.nan
    return nondominated_mask(Y, [o.direction == "maximize" for o in objs])


@dataclass
class Thinned:
    """Rows of one run to plot, and the counts the page reports."""

    frame: pl.DataFrame
    total: int
    feasible: int
    front: int
    front_shown: int
    dominated_shown: int


def thin(run: RunData, objs: list[Objective], max_points: int, seed: int = 0) -> Thinned:
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
