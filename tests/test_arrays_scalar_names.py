"""A name knob given as one value for every row (a default, a scalar) reads as the same name repeated per row:
same indices, names, validity and reasons, whether the name is known or not."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
import pytest

from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology


def _eq(x: np.ndarray, y: np.ndarray) -> bool:
    return x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")


def _same(a: DesignArrays, b: DesignArrays) -> None:
    for f in fields(DesignArrays):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            assert x.keys() == y.keys(), f.name
            for k in x:
                assert _eq(x[k], y[k]), (f.name, k)
        elif isinstance(x, np.ndarray):
            assert _eq(x, y), f.name
        else:
            assert x == y or f.name == "tech", f.name


@pytest.mark.parametrize("value", ["n3", "n9", "hbm3e", "bogus"])
@pytest.mark.parametrize("n", [1, 2, 5])
def test_scalar_name_is_the_name_on_every_row(value, n):
    tech = default_technology()
    knob = "chip.memory" if value.startswith("hbm") else "chip.process_node"
    base = {"chip.cores": np.arange(1, n + 1) * 16, "chip.clock_ghz": np.full(n, 1.2)}
    scalar = DesignArrays.from_columns({**base, knob: value}, tech)
    column = DesignArrays.from_columns({**base, knob: np.full(n, value)}, tech)
    _same(scalar, column)
    assert scalar.names[knob].tolist() == [value] * n
    if value in ("n9", "bogus"):  # not a name of the technology: every row flagged with the same reason
        assert not scalar.valid.any() and len(set(scalar.reason.tolist())) == 1 and knob in scalar.reason[0]


def test_default_names_are_the_defaults_on_every_row():
    tech = default_technology()
    n = 4
    a = DesignArrays.from_columns({"chip.cores": np.full(n, 32)}, tech)
    from dse.model.knobs import KNOBS
    given = {k.name: np.full(n, k.default_value()) for k in KNOBS if k.type is str and k.default_value() is not None}
    b = DesignArrays.from_columns({"chip.cores": np.full(n, 32), **given}, tech)
    _same(a, b)
