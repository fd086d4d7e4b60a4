"""Model results by design: a design asked again (same knob vector) reuses its stored metrics instead of
being evaluated again. The model is a pure function of the design, so a reused result is the result.

Only results of chunks that evaluated without error are kept; the store is bounded (`max_cells` metric
cells) and stops growing when full (later repeats are then evaluated again, never wrong).
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import numpy as np


class Normalized(dict):
    """Metric columns as `dse.study.evaluator.normalize` gives them (or taken from such columns: rows of them,
    gathered or sliced), so that `normalize` passes them on as they are: a study's generation went through it
    three times (the model's result, the result cache, the scoring), each a pass over its ~50 columns and its
    reasons."""

    __slots__ = ()


# ~8 bytes per cell: 25M cells ≈ 200 MB at most, whatever the number of metrics of the mix
MAX_CELLS = 25_000_000


class ResultCache:
    """Metric rows keyed by design key (see `dse.study.samplers.design_keys`)."""

    def __init__(self, max_cells: int = MAX_CELLS, rows: int = 0):
        self.index: dict[bytes, int] = {}
        self.store: dict[str, np.ndarray] = {}
        self.rows = 0
        self.max_cells = max_cells
        self.full = False
        self.rows_hint = rows  # rows the store is made for at once (a run's budget: no copies as it grows)
        self._names: list[str] = []  # the store's columns and their types, in its order (`same_types`)
        self._dtypes: list[np.dtype] = []
        # the store's columns as rows of one 2-D block per type (`store` holds those rows): a batch is added and
        # gathered with one copy per type rather than one per column (~50 metrics, four types)
        self._blocks: list[tuple[np.ndarray, list[str]]] = []
        self._place: dict[str, tuple[int, int]] = {}  # column -> (its block, its row there)

    def find(self, keys: list[bytes]) -> np.ndarray:
        """Store row of each key, -1 when absent."""
        return np.fromiter(map(self.index.get, keys, itertools.repeat(-1)), dtype=np.int64, count=len(keys))

    def add(self, keys: list[bytes], metrics: dict[str, np.ndarray]) -> None:
        """Keep the metric rows of evaluated designs (`metrics`: normalised columns, one row per key)."""
        if self.full or not keys:
            return
        if self.store and metrics.keys() != self.store.keys():  # an evaluator with varying outputs: no reuse
            self.full = True
            self.index = {}
            return
        n = len(keys)
        if (self.rows + n) * max(1, len(metrics)) > self.max_cells:
            self.full = True
            return
        if not self.store:
            cap = max(1024, 2 * n, min(self.rows_hint, 1 << 17, self.max_cells // max(1, len(metrics))))
            types = {k: np.asarray(v).dtype if np.asarray(v).dtype.kind != "U" else np.dtype(object)
                     for k, v in metrics.items()}
            groups: dict[np.dtype, list[str]] = {}
            for k, t in types.items():
                groups.setdefault(t, []).append(k)
            self._blocks = [(np.empty((len(names), cap), dtype=t), names) for t, names in groups.items()]
            self._place = {k: (g, i) for g, (_, names) in enumerate(self._blocks) for i, k in enumerate(names)}
            self._point(types)
            self._names, self._dtypes = list(self.store), [v.dtype for v in self.store.values()]
        cap = self._blocks[0][0].shape[1]
        if self.rows + n > cap:
            new_cap = max(2 * cap, self.rows + n)
            grown = []
            for block, names in self._blocks:
                more = np.empty((len(names), new_cap), dtype=block.dtype)
                more[:, : self.rows] = block[:, : self.rows]
                grown.append((more, names))
            self._blocks = grown
            self._point(self.store)
        for block, names in self._blocks:  # (one assignment per type: each column converted as its own would be)
            block[:, self.rows: self.rows + n] = [metrics[k] for k in names]
        deque(map(self.index.setdefault, keys, range(self.rows, self.rows + n)), maxlen=0)  # (each key's first row)
        self.rows += n

    def _point(self, order: dict[str, Any]) -> None:
        """`store`: each column (in `order`'s order) as its row of its type's block."""
        blocks, place = self._blocks, self._place
        self.store = {k: blocks[place[k][0]][0][place[k][1]] for k in order}

    def rows_of(self, at: np.ndarray, names: Any) -> dict[str, np.ndarray]:
        """The columns `names` (of the store) of its rows `at`: one gather per type, each column a row of it."""
        got = [block.take(at, axis=1) for block, _ in self._blocks]
        place = self._place
        return {k: got[place[k][0]][place[k][1]] for k in names}

    def same_types(self, metrics: dict[str, Any]) -> bool:
        """Whether every column of `metrics` is a column of the store, of the store's type (`metrics`' columns are
        arrays)."""
        store = self.store
        if list(metrics) == self._names:  # (the store's columns in their order: one list of types compared)
            return [v.dtype for v in metrics.values()] == self._dtypes
        return all([k in store and store[k].dtype == v.dtype for k, v in metrics.items()])

    def gather(self, rows: np.ndarray) -> dict[str, Any]:
        """Metric columns of the given store rows."""
        return {k: v[rows] for k, v in self.store.items()}
