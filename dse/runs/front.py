"""The objective matrix, the feasible Pareto front and the hypervolume of a run, computed one way for every
reader (live display, summary.json, `dse pareto`/`export`, the dashboard).

Hypervolume reference point: the one stated in the study, else derived once from the first batch that has
feasible designs (`REFERENCE_RULE`) and stored in run.json, so the live number, summary.json and the
dashboard's raw number are the same.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import polars as pl

from dse.pareto import hypervolume, nondominated_mask
from dse.runs.layout import KNOB_PREFIXES, Objective
from dse.expr import parse

REFERENCE_RULE = ("derived from the first batch with feasible designs: the worst value of each objective "
                  "pushed one range (at least |worst|) further, so later designs still count")
STUDY_RULE = "given in the study file"


def column_name(columns: Sequence[str], name: str) -> str | None:
    """`name`, or the column that holds it under another name: an older run's bare metric for a knob
    (`sram_mb` ↔ `chip.sram_mb`, stored once since the knob column is the source)."""
    cols = set(columns)
    if name in cols:
        return name
    for p in KNOB_PREFIXES:
        if name.startswith(p) and name[len(p):] in cols:
            return name[len(p):]
        if p + name in cols:
            return p + name
    return None


def objective_values(obj: Objective, env: Mapping[str, Any] | pl.DataFrame) -> np.ndarray:
    """Float values of one objective over a table (DataFrame or {column: array}); an expression objective is
    read from its stored column when present, else evaluated over the columns it names."""
    cols = list(env.columns) if isinstance(env, pl.DataFrame) else list(env)
    c = column_name(cols, obj.metric)
    if c is not None:
        v = env[c]
        return (v.cast(pl.Float64).fill_null(np.nan).to_numpy() if isinstance(v, pl.Series)
                else np.asarray(v, dtype=float))
    if not obj.is_expression:
        raise KeyError(obj.metric)
    local = {}
    for n in obj.names():
        cn = column_name(cols, n)
        if cn is None:
            raise KeyError(n)
        v = env[cn]
        local[n] = v.to_numpy() if isinstance(v, pl.Series) else np.asarray(v)
    n_rows = env.height if isinstance(env, pl.DataFrame) else len(next(iter(env.values()), []))
    return np.broadcast_to(np.asarray(parse(obj.metric).evaluate(local), dtype=float), (n_rows,)).copy()


def objective_matrix(env: Mapping[str, Any] | pl.DataFrame, objs: Sequence[Objective]) -> np.ndarray:
    """n×m float matrix of the objectives (nulls → NaN)."""
    n = env.height if isinstance(env, pl.DataFrame) else len(next(iter(env.values()), []))
    if n == 0 or not objs:
        return np.zeros((n, len(objs)))
    return np.column_stack([objective_values(o, env) for o in objs])


def maximize_of(objs: Sequence[Objective]) -> list[bool]:
    return [o.maximize for o in objs]


def feasible_of(df: pl.DataFrame) -> np.ndarray:
    if "feasible" not in df.columns:
        return np.ones(df.height, dtype=bool)
    return df["feasible"].fill_null(False).to_numpy().astype(bool)


def front_mask(df: pl.DataFrame, objs: Sequence[Objective], *, use_stored: bool = True,
               Y: np.ndarray | None = None) -> np.ndarray:
    """Feasible non-dominated rows (infeasible rows are never on the front): the stored `pareto` flag when
    the table has one, else computed (`Y`: the objective matrix of all of `df`'s rows, when the caller has it)."""
    if use_stored and "pareto" in df.columns and df["pareto"].dtype == pl.Boolean:
        return df["pareto"].fill_null(False).to_numpy()
    mask = np.zeros(df.height, dtype=bool)
    feas = feasible_of(df)
    if feas.any():
        Y = objective_matrix(df.filter(pl.Series(feas)), objs) if Y is None else Y[feas]
        ok = np.isfinite(Y).all(axis=1)
        sub = np.zeros(len(Y), dtype=bool)
        if ok.any():
            sub[ok] = nondominated_mask(Y[ok], maximize_of(objs))
        mask[np.flatnonzero(feas)] = sub
    return mask


def derive_reference(F: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Reference point from the feasible objective rows of the first batch (see `REFERENCE_RULE`)."""
    lo, hi = F.min(axis=0), F.max(axis=0)
    span = np.maximum(hi - lo, np.maximum(np.abs(hi), 1e-12))
    return np.where(np.asarray(maximize, dtype=bool), lo - span, hi + span)


def first_batch_reference(df: pl.DataFrame, objs: Sequence[Objective]) -> np.ndarray | None:
    """`derive_reference` over the lowest-numbered batch with feasible rows (None: nothing feasible yet)."""
    feas = feasible_of(df)
    if not feas.any():
        return None
    sub = df.filter(pl.Series(feas))
    if "batch" in sub.columns:
        sub = sub.filter(pl.col("batch") == sub["batch"].min())
    Y = objective_matrix(sub, objs)
    Y = Y[np.isfinite(Y).all(axis=1)]
    return derive_reference(Y, maximize_of(objs)) if len(Y) else None


def reference_dict(objs: Sequence[Objective], ref: Sequence[float]) -> dict[str, float]:
    return {o.metric: float(r) for o, r in zip(objs, ref)}


def reference_array(objs: Sequence[Objective], ref: Mapping[str, float] | None) -> np.ndarray | None:
    if not ref:
        return None
    return np.array([float(ref[o.metric]) for o in objs], dtype=float)


def front_hypervolume(Y_front: np.ndarray, ref: np.ndarray | None, maximize: Sequence[bool]) -> float:
    """Hypervolume of front rows w.r.t. `ref` (points beyond the reference add nothing)."""
    if ref is None or len(Y_front) == 0:
        return 0.0
    return float(hypervolume(Y_front, ref, list(maximize)))


class FrontTracker:
    """Incremental front for the live display: feasible share, front size, hypervolume.

    The reference point is the given one, else derived from the first batch with feasible rows and then
    fixed (`new_reference` is True right after it was derived, so the caller can store it). The front is
    merged when read (`front`), so a run nobody watches never computes it, or by a thread (`merge_behind`). Each
    front row's number among every row added (`front_rows`) gives the run's front flags at its end (`finalize`'s
    `front`) without a pass over all its rows there."""

    def __init__(self, maximize: Sequence[bool], ref: Sequence[float] | None = None):
        self.maximize = list(maximize)
        self._front = np.zeros((0, len(self.maximize)))
        self._rows = np.zeros(0, dtype=np.int64)  # each front row's number among the rows added
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []  # (feasible finite rows, their numbers) not merged
        self._behind: Future | None = None  # the front and its rows, being merged by a thread (`merge_behind`)
        self.ref = None if ref is None else np.asarray(ref, dtype=float)
        self.new_reference = False
        self.n = 0
        self.n_feasible = 0

    def add(self, Y: np.ndarray, feasible: np.ndarray) -> None:
        first = self.n
        self.n += len(feasible)
        self.n_feasible += int(np.asarray(feasible).sum())
        keep = np.asarray(feasible, dtype=bool)
        F = np.asarray(Y, dtype=float)[keep]
        finite = np.isfinite(F).all(axis=1)
        F = F[finite]
        if len(F) == 0:
            return
        if self.ref is None:
            self.ref = derive_reference(F, self.maximize)
            self.new_reference = True
        self._pending.append((F, first + np.flatnonzero(keep)[finite]))

    def merge_behind(self, submit: Callable[..., Future]) -> None:
        """Merge the rows added so far into the front on another thread: `submit(fn, *args)` (a one-thread executor's
        `submit`: its merges run in order) runs it; the next read of the front waits for it."""
        if self._pending:
            pending, self._pending = self._pending, []
            prev = self._behind if self._behind is not None else (self._front, self._rows)
            self._behind = submit(_merged, prev, pending, self.maximize)

    @property
    def front(self) -> np.ndarray:
        """The non-dominated rows of every feasible row added so far, in the order they were added."""
        if self._behind is not None:
            self._front, self._rows = self._behind.result()
            self._behind = None
        if self._pending:
            pending, self._pending = self._pending, []
            self._front, self._rows = _merged((self._front, self._rows), pending, self.maximize)
        return self._front

    @property
    def front_rows(self) -> np.ndarray:
        """The number of each `front` row among every row added so far (0: the first row of the first `add`)."""
        self.front
        return self._rows

    @property
    def hypervolume(self) -> float:
        return front_hypervolume(self.front, self.ref, self.maximize)


def _merged(prev: tuple[np.ndarray, np.ndarray] | Future, pending: list[tuple[np.ndarray, np.ndarray]],
            maximize: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(front, its rows' numbers) of a front (or the future of one) and the rows added after it: the non-dominated
    rows of them all (a row dominated by one of the front's earlier rows is dominated by a row of the front), in
    order."""
    front, rows = prev.result() if isinstance(prev, Future) else prev
    allp = np.vstack([front, *[F for F, _ in pending]])
    allr = np.concatenate([rows, *[r for _, r in pending]])
    keep = nondominated_mask(allp, maximize)
    return allp[keep], allr[keep]
