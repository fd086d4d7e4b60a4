"""`voltage.voltage_ratio` solves only the rows that need it (issue 15, per-call cost): clocks below the floor's ratio
take the floor without a solve, and the Newton iteration steps only the rows still converging. Both give, to the bit,
what the plain solve gives: every row stepped until it converges, then floored (the reference below)."""

from __future__ import annotations

import numpy as np

from dse.model import voltage as V


def _reference(f_ratio) -> np.ndarray:
    """The voltage solve as it was: every row not at 1 through `_solve`'s Newton steps (a converged row frozen by a
    mask), then floored at MIN_FRACTION."""
    r = np.maximum(np.asarray(f_ratio, float), 0.0)
    flat = r.reshape(-1)
    out = np.ones(flat.shape)
    todo = np.flatnonzero(flat != 1.0)
    if todo.size:
        vt, g1 = V.THRESHOLD_FRACTION, float(V._delay_inverse(np.float64(1.0)))
        x = np.maximum(flat[todo], 1e-12)
        log_target = np.log(x * g1)
        v = np.where(x >= 1.0, 1.0, vt + (x * g1 * vt) ** (1.0 / V.ALPHA))
        live = np.ones(x.shape, bool)
        for _ in range(V._NEWTON_STEPS):
            d = v - vt
            h = V.ALPHA * np.log(d) - np.log(v) - log_target
            step = np.where(live, h / (V.ALPHA / d - 1.0 / v), 0.0)
            v = np.maximum(v - step, vt + 1e-12)
            live &= np.abs(step) >= 1e-14 * v
            if not live.any():
                break
        out[todo] = v
    return np.maximum(out, V.MIN_FRACTION).reshape(r.shape)


def test_voltage_ratio_equals_the_plain_solve():
    rng = np.random.default_rng(21)
    floor = V._floor_ratio()
    cases = [rng.uniform(0.0, 3.0, 20_000), np.exp(rng.uniform(-30.0, 3.0, 20_000)),
             rng.uniform(0.99, 1.01, 5_000), floor * rng.uniform(0.999, 1.001, 20_000),
             np.array([0.0, -1.0, 1e-300, 1e-12, floor, np.nextafter(floor, 0), np.nextafter(floor, 2), 0.5, 1.0, 1.43,
                       2.0, 1e6, np.nan, np.inf]),
             rng.uniform(0.2, 2.0, (7, 9)), np.zeros(0), np.float64(0.8)]
    for r in cases:
        with np.errstate(invalid="ignore"):  # (inf and NaN ratios: NaN steps, in both)
            got, want = V.voltage_ratio(r), _reference(r)
        assert got.shape == want.shape
        assert np.array_equal(got, want, equal_nan=True)
    # the floor's ratio is where the curve meets MIN_FRACTION (less its margin)
    assert V.voltage_ratio(np.array([floor / (1 - 1e-9)]))[0] == np.float64(V.MIN_FRACTION) or \
        abs(V.voltage_ratio(np.array([floor / (1 - 1e-9)]))[0] - V.MIN_FRACTION) < 1e-12
    assert (V.voltage_ratio(floor * np.array([0.5, 0.9, 0.999999])) == V.MIN_FRACTION).all()


def test_a_row_does_not_depend_on_its_call_mates():
    rng = np.random.default_rng(22)
    r = rng.uniform(0.3, 1.6, 500)
    alone = np.array([V.voltage_ratio(r[i:i + 1])[0] for i in range(0, 500, 7)])
    assert np.array_equal(V.voltage_ratio(r)[::7], alone)
