"""chip_area's reason texts take their whole numbers from `area._whole` and per-technology constants from
`area._each_text`: the same text as formatting each float (f"{v:.0f}", f"{v:g}"), at the rounding ties, the signed
zeros, huge values, infinities and NaN included."""

from __future__ import annotations

import numpy as np

from dse.model.area import _each_text, _whole


EDGES = [0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.5, 0.49999999999999994, -0.3, -0.7, 123.49999999999999, 1e15 + 0.5,
         2.0 ** 52 + 1, 2.0 ** 53, 2.0 ** 53 + 2, -2.0 ** 60, 1e20, 1e300, -1e300, np.inf, -np.inf, np.nan, -np.nan,
         5e-324, -5e-324]


def test_whole_numbers_read_as_the_float_format():
    rng = np.random.default_rng(7)
    x = np.concatenate([EDGES, rng.uniform(-1e4, 1e4, 5000), np.round(rng.uniform(-50, 50, 2000)) + 0.5,
                        10 ** rng.uniform(-5, 25, 2000)])
    for part in (x, x[:40], np.tile(EDGES, 20)):  # numpy's path and, below TEXT_ARRAYS_FROM values, the format's
        assert [f"{v}" for v in _whole(part)] == [f"{v:.0f}" for v in part.tolist()]
    assert _whole(np.array([])) == []


def test_each_text_formats_each_value_as_the_format():
    x = np.array(EDGES + [1.0, 1.2, 1.0, 0.0, -0.0, 1.2, 2.0])
    for part in (x, np.tile(x, 20)):  # below and above TEXT_ARRAYS_FROM values
        for spec in ("g", ".0f", ".3g"):
            assert _each_text(part, spec) == [format(v, spec) for v in part.tolist()]
    assert _each_text(np.array([]), "g") == []
