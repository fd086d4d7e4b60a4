"""Convergence: hypervolume of the feasible front found after k trials, one line per run (sampler).

Objectives are normalised to [0, 1] over all runs' feasible designs (log scale where the explorer uses
log axes), so runs are comparable; the reference point is 1.1 in every objective and the curve is the
dominated fraction of that box. Beside it, the raw hypervolume w.r.t. the run's own stored reference point
(`dse.runs`): at the last checkpoint it is the number in summary.json and in the live display.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import polars as pl

from dse.pareto import hypervolume, nondominated_mask
from dse.report.rundata import RunData, objective_matrix
from dse.report.spec import ConvergenceView, Objective
from dse.runs.front import front_hypervolume, maximize_of

REF = 1.1
EXACT_LIMIT_4D = 800  # fronts of 4+ objectives larger than this get a Monte Carlo estimate (exact HV is slow)


def _hv_fraction(front: np.ndarray, samples: int = 20_000) -> tuple[float, bool]:
    """Dominated fraction of the [0, REF]^m box: exact, or estimated by sampling for big 4+-D fronts."""
    m = front.shape[1]
    if len(front) == 0:
        return 0.0, False
    if m <= 3 or len(front) <= EXACT_LIMIT_4D:
        return hypervolume(front, np.full(m, REF)) / REF**m, False
    pts = np.random.default_rng(0).random((samples, m)) * REF
    hit = np.zeros(samples, dtype=bool)
    for chunk in np.array_split(front, max(1, len(front) // 256)):
        hit |= (chunk[None, :, :] <= pts[:, None, :]).all(axis=2).any(axis=1)
    return float(hit.mean()), True


def _normaliser(runs: list[RunData], objs: list[Objective]):
    """Map raw objective matrices to minimisation in [0, 1] (log where positive and spanning > 30×)."""
    mats = []
    for r in runs:
        Y = objective_matrix(r.results, objs)
        mats.append(Y[r.results["feasible"].fill_null(False).to_numpy().astype(bool)])
    allY = np.vstack(mats) if mats else np.zeros((0, len(objs)))
    logs, lo, hi = [], [], []
    for j in range(len(objs)):
        v = allY[:, j][np.isfinite(allY[:, j])]
        lg = v.size > 0 and bool((v > 0).all()) and float(v.max()) > 30 * float(v.min())
        t = np.log10(v) if lg else v
        logs.append(lg)
        lo.append(float(t.min()) if t.size else 0.0)
        hi.append(float(t.max()) if t.size else 1.0)

    def norm(Y: np.ndarray) -> np.ndarray:
        Z = np.empty_like(Y, dtype=float)
        for j, o in enumerate(objs):
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.log10(np.where(Y[:, j] > 0, Y[:, j], np.nan)) if logs[j] else Y[:, j]
            span = hi[j] - lo[j] or 1.0
            z = (t - lo[j]) / span
            Z[:, j] = 1.0 - z if o.direction == "maximize" else z
        return Z

    return norm


def convergence_table(runs: list[RunData], objs: list[Objective], points: int) -> pl.DataFrame:
    """Rows (run, trials, hypervolume) at `points` checkpoints per run, in trial order."""
    norm = _normaliser(runs, objs)
    m = len(objs)
    rows = []
    for r in runs:
        df = r.results.sort("trial") if "trial" in r.results.columns else r.results
        Yraw = objective_matrix(df, objs)
        Z = norm(Yraw)
        feas = df["feasible"].fill_null(False).to_numpy().astype(bool)
        Z[~feas] = np.nan
        Yraw[~feas] = np.nan
        ref = r.reference_point() if list(objs) == r.objectives() else None
        front_raw = np.zeros((0, m))
        n = len(df)
        checkpoints = np.unique(np.linspace(1, n, min(points, n)).round().astype(int)) if n else []
        front = np.zeros((0, m))
        start = 0
        for k in checkpoints:
            chunk = Z[start:k]
            chunk = chunk[np.isfinite(chunk).all(axis=1)]
            if len(chunk):
                cand = np.vstack([front, chunk])
                front = cand[nondominated_mask(cand)]
            raw = Yraw[start:k]
            raw = raw[np.isfinite(raw).all(axis=1)]
            if len(raw):
                cand = np.vstack([front_raw, raw])
                front_raw = cand[nondominated_mask(cand, maximize_of(objs))]
            start = k
            hv, est = _hv_fraction(front)
            hv_raw = front_hypervolume(front_raw, ref, maximize_of(objs)) if ref is not None else None
            rows.append({"run": r.label, "trials": int(k), "hypervolume": hv, "hypervolume_raw": hv_raw,
                         "front": int(len(front)), "estimated": est})
    return pl.DataFrame(rows, schema={"run": pl.String, "trials": pl.Int64, "hypervolume": pl.Float64,
                                      "hypervolume_raw": pl.Float64, "front": pl.Int64, "estimated": pl.Boolean})


def convergence_chart(table: pl.DataFrame, view: ConvergenceView) -> alt.Chart:
    """Line per run of normalised hypervolume vs trials evaluated."""
    return alt.Chart(table).mark_line(point=True).encode(
        x=alt.X("trials:Q", title="Trials evaluated (count)"),
        y=alt.Y("hypervolume:Q", title="Hypervolume (fraction of the normalised box)", scale=alt.Scale(zero=False)),
        color=alt.Color("run:N", title="Run (sampler)"),
        tooltip=[alt.Tooltip("run:N", title="Run"), alt.Tooltip("trials:Q", title="Trials"),
                 alt.Tooltip("hypervolume:Q", title="Hypervolume (normalised)", format=".4f"),
                 alt.Tooltip("hypervolume_raw:Q", title="Hypervolume (raw, run's reference point)", format=".4~e"),
                 alt.Tooltip("front:Q", title="Front size"),
                 alt.Tooltip("estimated:N", title="Monte Carlo estimate")],
    ).properties(
        width=view.width, height=view.height, name="convergence_lines",
        title=alt.Title(view.title, subtitle=["Objectives scaled to [0, 1] over all runs (log where the range spans "
                        "more than 30×); reference point 1.1 in each.", "Tooltip: raw hypervolume against the run's "
                        "stored reference point (the last point's is summary.json's)."], anchor="start", fontSize=16),
    )
