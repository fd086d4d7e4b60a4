"""The compiled path of `area.chip_area` (dse/model/area_kernel.py, numba, taken when the compiled kernels are on)
gives the numpy path's numbers to the bit: every `AreaBreakdown` field, the I/O die choices, the cost and power
of `design_metrics` and every column of `evaluate` (NaN = NaN, the sign of zero and the reason strings included),
on the catalog chips, thousands of random designs of search_spaces/full.yaml and designs placed next to the
thresholds where the automatic split takes another die count or a die leaves the reticle (a knob scaled by
1 ± 1e-12 … 1e-3 around the point where the numpy path's answer changes). A design's answer must also not depend
on the designs that share its call.
"""

from __future__ import annotations


import numpy as np
import pytest

from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.table import design_metrics
from dse.model import area, perf
from dse.model.arrays import DesignArrays
from dse.model.cost import chip_cost
from dse.model.power import chip_power
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal, io_choice_fields, kernel_runner, needs_numba, ndarray_fields as _fields  # noqa: E402,E501

STEPS = (-1e-3, -1e-6, -1e-9, -1e-12, 0.0, 1e-12, 1e-9, 1e-6, 1e-3)  # relative offsets around a threshold


@pytest.fixture
def mode(monkeypatch):
    """Run a function under DSE_KERNEL=mode (the path chosen afresh)."""
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()



def _metrics(arr: DesignArrays) -> dict:
    """Every array of the area, cost and power breakdowns and of `design_metrics` (hardware view, metric
    columns, feasibility and reasons)."""
    a = area.chip_area(arr)
    hw, cols, ok, reason = design_metrics(arr, a)
    out = {f"area.{k}": v for k, v in _fields(a).items()}
    out.update({f"cost.{k}": v for k, v in _fields(chip_cost(arr, a)).items()})
    out.update({f"power.{k}": v for k, v in _fields(chip_power(arr, a)).items()})
    out.update({f"hw.{k}": v for k, v in _fields(hw).items()})
    out.update({f"m.{k}": np.asarray(v) for k, v in cols.items()})
    out.update(ok=np.asarray(ok), reason=np.asarray(reason))
    return out


def _near_thresholds(cols: dict, knob: str, changed, rounds: int = 48) -> dict:
    """Designs of `cols` with `knob` scaled next to where `changed(before, after)` (per row, from `chip_area` of
    the numpy path) flips as the knob grows ×1 … ×8: bisection on the scale, then the knob at that scale
    × (1 + each of STEPS); rows that never flip are dropped."""
    tech = default_technology()
    base = np.asarray(cols[knob], dtype=float)

    def at(scale):
        return area.chip_area(DesignArrays.from_columns({**cols, knob: base * scale}, tech))

    lo, hi = np.ones(len(base)), np.full(len(base), 8.0)
    ref = at(lo)
    flips = changed(ref, at(hi))
    for _ in range(rounds):
        mid = np.sqrt(lo * hi)
        moved = changed(ref, at(mid))
        hi, lo = np.where(moved, mid, hi), np.where(moved, lo, mid)
    rows = np.flatnonzero(flips)
    out = {k: np.repeat(np.asarray(v)[rows], len(STEPS)) for k, v in cols.items()}
    out[knob] = np.repeat(base[rows] * hi[rows], len(STEPS)) * np.tile(1.0 + np.array(STEPS), len(rows))
    return out


def _random(n: int, seed: int) -> DesignArrays:
    return DesignArrays.from_columns(random_designs(n, seed), default_technology())


@needs_numba
def test_io_die_choices_compiled_equal_numpy(mode):
    """`_io_choices` (its dominance, envelope and hull in the kernel) gives every field to the bit (the costs of the
    counts a design may not take: whether they are finite, `io_choice_fields`)."""
    arr = _random(3000, 21)
    a, b = (mode(m, area._blocks, arr).io for m in ("numpy", "numba"))
    assert (a.hull_len > 1).any()  # designs with several I/O die counts on the envelope occur
    assert_bit_equal(io_choice_fields(a), io_choice_fields(b), "_IoChoices")


@needs_numba
@pytest.mark.parametrize("seed", [0, 1])
def test_chip_area_compiled_equals_numpy_on_random_designs(mode, seed):
    arr = _random(4000, 100 + seed)
    ref, got = (_fields(mode(m, area.chip_area, arr)) for m in ("numpy", "numba"))
    assert (ref["num_dies"] > 1).sum() > 100 and (~ref["feasible"]).any() and ref["feasible"].any()
    assert_bit_equal(ref, got, "chip_area, random designs")
    for chunk in (1, 7, 128):  # a design's answer does not depend on the designs that share its call
        part = np.arange(0, 700)
        pieces = [_fields(mode("numba", area.chip_area, arr.take(part[s:s + chunk]))) for s in range(0, 700, chunk)]
        assert_bit_equal({k: v[part] for k, v in ref.items()},
                         {k: np.concatenate([p[k] for p in pieces]) for k in ref}, f"chip_area in chunks of {chunk}")


@needs_numba
def test_chip_area_compiled_equals_numpy_with_given_dies_and_spares(mode):
    """Given die counts and given spare cores (per chip, up to past fab.EXACT_SPARES_MAX per die: the
    continuous yield), on split, single-die and wafer-scale designs."""
    cols = random_designs(3000, 13)
    rng = np.random.default_rng(13)
    cols["chip.allow_chiplets"] = np.ones(3000, bool)
    cols["chip.dies"] = np.where(rng.random(3000) < 0.4, rng.integers(1, 9, 3000).astype(float), np.nan)
    cols["chip.spare_cores"] = np.where(rng.random(3000) < 0.4, rng.integers(0, 300, 3000).astype(float), np.nan)
    arr = DesignArrays.from_columns(cols, default_technology())
    ref, got = (_fields(mode(m, area.chip_area, arr)) for m in ("numpy", "numba"))
    assert (ref["spare_cores"] > 64).any() and (ref["num_dies"] > 1).any()
    assert_bit_equal(ref, got, "chip_area with given dies and spares")


@needs_numba
def test_chip_area_compiled_equals_numpy_with_dies_between(mode):
    arr = _random(2000, 7)
    rng = np.random.default_rng(7)
    lo = rng.integers(1, 6, arr.n).astype(float)
    between = (lo, lo + rng.integers(0, 6, arr.n))
    ref, got = (_fields(mode(m, area.chip_area, arr, between)) for m in ("numpy", "numba"))
    assert_bit_equal(ref, got, "chip_area with dies_between")


@needs_numba
def test_chip_area_compiled_equals_numpy_next_to_split_and_reticle_thresholds(mode):
    """Designs whose SRAM or core count puts them a hair either side of a change of die count (chiplets
    allowed) or of the reticle limit (chiplets disabled)."""
    cols = random_designs(400, 5)
    near = [_near_thresholds({**cols, "chip.allow_chiplets": np.ones(400, bool)}, "chip.sram_mb",
                             lambda a, b: a.num_dies != b.num_dies),
            _near_thresholds({**cols, "chip.allow_chiplets": np.zeros(400, bool)}, "chip.sram_mb",
                             lambda a, b: a.feasible != b.feasible)]
    tech = default_technology()
    for what, c in zip(("split", "reticle"), near):
        assert len(c["chip.sram_mb"]) > 20 * len(STEPS), what
        arr = DesignArrays.from_columns(c, tech)
        ref, got = (_fields(mode(m, area.chip_area, arr)) for m in ("numpy", "numba"))
        assert len(np.unique(ref["num_dies"] if what == "split" else ref["feasible"])) > 1
        assert_bit_equal(ref, got, f"chip_area next to the {what} thresholds")
        assert_bit_equal(mode("numpy", _metrics, arr), mode("numba", _metrics, arr),
                         f"design metrics next to the {what}")


@needs_numba
def test_design_metrics_and_evaluate_compiled_equal_numpy_on_catalog_and_random(mode):
    tech = default_technology()
    cat = DesignArrays.from_designs([load_catalog_design(n) for n in list_catalog()], tech)
    rnd = _random(1500, 3)
    for what, arr in (("catalog", cat), ("random", rnd)):
        ref, got = (_fields(mode(m, area.chip_area, arr)) for m in ("numpy", "numba"))
        assert_bit_equal(ref, got, f"chip_area, {what}")
        assert_bit_equal(mode("numpy", _metrics, arr), mode("numba", _metrics, arr), f"design metrics, {what}")
    mix = load_mix("balanced")
    for what, arr in (("catalog", cat), ("random", rnd.take(np.arange(400)))):
        assert_bit_equal(mode("numpy", evaluate, arr, mix, tech), mode("numba", evaluate, arr, mix, tech),
                         f"evaluate, {what}")
