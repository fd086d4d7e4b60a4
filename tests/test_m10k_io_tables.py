"""`area_kernel.io_tables` (the I/O die tables in one compiled pass, its powers libm's) gives the tables of the path it
replaces to the bit: `io_geometry`, numpy's powers, `io_escape` and `io_costs` (`area._io_choices_compiled` with
`numpy_pow_is_libm` off), every field of the I/O die choices (on the counts a design may not take, where io_tables
takes no powers, its costs bound the exact ones and are finite where those are), on random designs of search_spaces/full.yaml and on
designs made to stress the kernel (many bond yields, past its table of them; NaN and tiny bond yields; fractional and
large I/O die counts; I/O dies over the reticle)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import area, perf
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import io_choice_fields, needs_numba, priced_only  # noqa: E402

pytestmark = needs_numba


@pytest.fixture
def ak(monkeypatch):
    """dse.model.area_kernel with the compiled kernels on (skipped where numpy's powers are not libm's: there
    `io_tables` is not taken)."""
    monkeypatch.setenv(perf.KERNEL_ENV, "numba")
    perf.reset_kernel()
    from dse.model import area_kernel
    if not area_kernel.numpy_pow_is_libm():
        pytest.skip("numpy's float64 power is not libm's here: io_tables is not used")
    yield area_kernel
    perf.reset_kernel()


def _tables(arr: DesignArrays) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, ...]]:
    """Every array of `_blocks(arr).io` (the I/O die choices), the design-major tables included, the costs of the
    counts a design may not take as whether they are finite (`priced_only`: io_tables keeps bounds there); and the
    design-major tables as they are."""
    io = area._blocks(arr).io
    out = io_choice_fields(io)
    tables, hull, hull_iy, hull_fx, used = io.design_major
    out.update({f"t{i}": priced_only(t, tables[6]) if i in (3, 4, 5) else t for i, t in enumerate(tables)},
               dm_hull=hull, dm_hull_iy=priced_only(hull_iy, hull_fx), dm_hull_fx=hull_fx, used=np.array(used))
    return out, tables


def _assert_same(ak, monkeypatch, arr: DesignArrays) -> None:
    new, raw = _tables(arr)
    with monkeypatch.context() as m:
        m.setattr(ak, "numpy_pow_is_libm", lambda: False)
        old, exact = _tables(arr)
    # where io_tables took no powers its costs bound the exact ones: dies at no yield loss, no test escapes; a
    # design's first count is priced in any case (a pick falls back to it where no count that fits is priced)
    for t, e in zip(raw, exact):
        assert np.array_equal(t[:, 0].view(np.int64), e[:, 0].view(np.int64))
    off = raw[6] == np.inf
    for k, sign in ((3, 1.0), (4, -1.0), (5, 1.0)):  # usd and inverse yield below, escape above
        x, y = sign * raw[k][off], sign * exact[k][off]
        assert ((x <= y) | np.isnan(x) & np.isnan(y)).all(), k
    assert new.keys() == old.keys()
    for k in new:
        x, y = np.asarray(new[k]), np.asarray(old[k])
        assert x.shape == y.shape and x.dtype == y.dtype, k
        if x.dtype.kind == "f":  # the same bits (NaN payloads and the sign of zero included)
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), k
        else:
            assert np.array_equal(x, y), k


@pytest.mark.parametrize("n, seed", [(1, 0), (7, 1), (128, 2), (3000, 3)])
def test_random_designs(ak, monkeypatch, n, seed):
    tech = default_technology()
    _assert_same(ak, monkeypatch, DesignArrays.from_columns(random_designs(n, seed), tech))


def test_stressed_designs(ak, monkeypatch):
    tech = default_technology()
    arr = DesignArrays.from_columns(random_designs(2000, 7), tech)
    rng = np.random.default_rng(0)
    n = arr.n
    # 20 bond yields (more than the kernel's table holds) incl. 1, 0.001, NaN; I/O dies fractional, at the bound and past
    # it; dies over the I/O node's reticle
    bonds = np.concatenate([np.linspace(0.9, 1.0, 17), [1e-3, np.nan, 0.5]])
    arr.pkg_assembly_yield_per_die = rng.choice(bonds, n)
    arr.io_dies = rng.choice(np.array([1.0, 2.0, 2.5, 3.0, 7.0, 15.5, 16.0, 17.0]), n)
    arr.reticle_mm2_io = np.where(rng.random(n) < 0.3, 1.0, arr.reticle_mm2_io)
    arr.has_io_die = arr.has_io_die | (rng.random(n) < 0.3)
    with np.errstate(all="ignore"):
        _assert_same(ak, monkeypatch, arr)


def test_probe_agrees_with_numpy(ak):
    """Where the probe says numpy's power is libm's, numpy's and the kernel's powers agree on other arguments too."""
    rng = np.random.default_rng(3)
    x = np.concatenate([1.0 + rng.uniform(0.0, 1.0, 20000), rng.uniform(0.0, 1.0, 20000)])
    k = np.concatenate([-rng.uniform(0.5, 12.0, 20000), rng.integers(1, 17, 20000).astype(float)])
    out = np.empty_like(x)
    ak._libm_pow(x, k, out)
    assert np.array_equal(out.view(np.int64), np.power(x, k).view(np.int64))
