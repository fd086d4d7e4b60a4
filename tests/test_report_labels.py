"""Reference-chip labels on the Pareto scatters do not collide (issue 14.2): every placed label's box is
apart from every other's, a clump keeps at least its first label, and a spread-out set labels them all."""

from __future__ import annotations

import numpy as np

from dse.report.pareto_view import LABEL_BOX_PX, label_offsets


def _boxes(x, y, dy, width, height, logx=False, logy=False):
    """Screen centre of each placed label, computed the way label_offsets maps values to pixels."""
    def px(v, log, size):
        f = np.log10(v) if log else v
        return (f - f.min()) / (f.max() - f.min()) * size
    X, Y = px(x, logx, width), -px(y, logy, height)
    return [(X[i], Y[i] + dy[i]) for i in range(len(x)) if np.isfinite(dy[i])]


def test_a_clump_of_chips_never_prints_overlapping_labels():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(2, 25))
        x = np.concatenate([[1.0, 1000.0], 10 ** rng.uniform(1.0, 1.3, n)])  # a clump within a wide domain
        y = np.concatenate([[1.0, 100.0], 10 ** rng.uniform(0.5, 0.7, n)])
        dy = label_offsets(x, y, True, True, 300, 240)
        placed = _boxes(x, y, dy, 300, 240, True, True)
        assert len(placed) >= 3  # the clump keeps at least one label (plus the two far corners)
        for i, (a, b) in enumerate(placed):
            for c, d in placed[i + 1:]:
                assert abs(a - c) > LABEL_BOX_PX[0] or abs(b - d) > LABEL_BOX_PX[1], (trial, (a, b), (c, d))


def test_spread_out_chips_are_all_labelled():
    x = np.linspace(0.0, 1000.0, 5)
    y = np.linspace(0.0, 1000.0, 5)
    dy = label_offsets(x, y, False, False, 600, 400)
    assert np.all(np.isfinite(dy)) and np.all(dy == -7.0)  # every label in its first slot, above the point
