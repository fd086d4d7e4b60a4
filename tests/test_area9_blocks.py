"""`area._blocks` in one compiled pass (`area_kernel.blocks`) gives the numpy path's block areas, traffic, I/O die
inputs and cost floor to the bit, NaN, infinities and signed zeros included; a DesignArrays whose fields are not
float64 / bool C arrays (another dtype, a read-only or strided view) takes the numpy path, with the same values."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dse.model import area
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import needs_numba  # noqa: E402

FIELDS = ("mac", "vector", "sram", "mem_phy", "link_phy", "uncore", "logic", "core", "d2d_tbps", "d2d_phy", "d2d_edge",
          "mem_edge", "footprint", "io_tbps", "mm2_per_tbps", "tbps_per_mm", "harvests")


def _fields(b) -> dict:
    out = {k: np.asarray(getattr(b, k)) for k in FIELDS}
    io = b.io
    out.update({f"io.{k}": np.asarray(getattr(io, k)) for k in ("count", "die", "critical", "fixed_usd", "area")})  # (usd, escape, inv_yield: bounds past
    # a count the compiled path prunes, see area._IoChoices)
    return out


def _same(a: dict, b: dict) -> None:
    for k in a:
        x, y = a[k], b[k]
        assert x.dtype == y.dtype and x.shape == y.shape, k
        if x.dtype.kind == "f":
            assert np.array_equal(x.view(np.int64), y.view(np.int64)) or np.array_equal(x, y, equal_nan=True) and \
                np.array_equal(np.signbit(x), np.signbit(y)), k
        else:
            assert np.array_equal(x, y), k


@needs_numba
def test_compiled_blocks_equal_numpy_blocks(monkeypatch):
    tech = default_technology()
    arr = DesignArrays.from_columns(random_designs(3000, seed=91), tech)
    rng = np.random.default_rng(4)
    odd = {}  # (fields the sanitizer keeps finite: values no design has, to pin the elementwise semantics)
    for k in ("mem_bw_tbps", "sram_tbps", "cores", "links", "uncore_fraction"):
        x = np.array(getattr(arr, k), dtype=float)
        pick = rng.choice(arr.n, 60, replace=False)
        x[pick] = np.resize([np.nan, np.inf, -np.inf, 0.0, -0.0, 0.5, 1.0, -1.0], 60)
        odd[k] = x
    for a in (arr, dataclasses.replace(arr, **odd)):
        monkeypatch.setenv("DSE_KERNEL", "numba")
        assert area.area_kernel() is not None
        with np.errstate(all="ignore"):
            compiled = _fields(area._blocks(a))
            monkeypatch.setattr(area, "area_kernel", lambda: None)
            plain = _fields(area._blocks(a))
        monkeypatch.undo()
        _same(plain, compiled)


@needs_numba
def test_other_layouts_take_the_numpy_path(monkeypatch):
    monkeypatch.setenv("DSE_KERNEL", "numba")
    tech = default_technology()
    arr = DesignArrays.from_columns(random_designs(200, seed=92), tech)
    ref = _fields(area._blocks(arr))
    ro = np.array(arr.mem_bw_tbps)
    ro.setflags(write=False)
    calls = []
    real = area._blocks_compiled
    monkeypatch.setattr(area, "_blocks_compiled", lambda *a: calls.append(1) or real(*a))
    for other in (dataclasses.replace(arr, mem_bw_tbps=ro), dataclasses.replace(arr, links=arr.links.astype(np.float32)),
                  dataclasses.replace(arr, cores=np.repeat(arr.cores, 2)[::2])):
        _same(ref, _fields(area._blocks(other)))
    assert not calls
    area._blocks(arr)
    assert calls == [1]
