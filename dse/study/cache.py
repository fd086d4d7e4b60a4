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
            self.store = {k: np.empty(cap, dtype=np.asarray(v).dtype if np.asarray(v).dtype.kind != "U"
                                      else object) for k, v in metrics.items()}
        cap = len(next(iter(self.store.values())))
        if self.rows + n > cap:
            new_cap = max(2 * cap, self.rows + n)
            for k, v in self.store.items():
                grown = np.empty(new_cap, dtype=v.dtype)
                grown[: self.rows] = v[: self.rows]
                self.store[k] = grown
        for k, v in metrics.items():
            self.store[k][self.rows: self.rows + n] = v
        deque(map(self.index.setdefault, keys, range(self.rows, self.rows + n)), maxlen=0)  # (each key's first row)
        self.rows += n

    def gather(self, rows: np.ndarray) -> dict[str, Any]:
        """Metric columns of the given store rows."""
        return {k: v[rows] for k, v in self.store.items()}
