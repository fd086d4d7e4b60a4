"""Monte-Carlo fast paths (issue 16): samples stacked into one design-level pass, constants patched per
row, the performance re-evaluations of every sample evaluated together once per distinct input — each
equal to a full evaluate of that sample's technology."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.model.area import chip_area, split_costs
from dse.model.arrays import DesignArrays
from dse.model.technology import load_technology
from dse.uncertainty import montecarlo
from dse.uncertainty.montecarlo import QUANTILES, monte_carlo_designs
from _designs import random_designs


def _catalog():
    return [load_catalog_design(n) for n in list_catalog()]


def _assert_samples_equal_full_evaluations(mc, ds, tech, mix):
    for s, vals in enumerate(mc.tech_values):
        t = tech.with_values(vals)
        full = evaluate(DesignArrays.from_designs(ds, t), mix, t)
        for col, v in mc.samples.items():
            assert np.allclose(v[s], full[col].astype(float), rtol=1e-12, atol=0), (s, col)


def test_stacked_samples_and_batched_reevaluation_equal_full_evaluations(monkeypatch):
    """Several samples per stacked pass (a tiny pass size forces several passes), re-evaluated rows of
    every sample together (exact=True re-evaluates every row whose static power moved)."""
    monkeypatch.setattr(montecarlo, "STACK_ROWS", 2 * len(list_catalog()) + 1)
    ds = _catalog()
    tech = load_technology()
    mc = monte_carlo_designs(ds, "balanced", tech, samples=6, seed=0, model_error=False, exact=True)
    assert mc.full_evaluations >= 1  # some (sample, design) pairs were re-evaluated
    _assert_samples_equal_full_evaluations(mc, ds, tech, "balanced")


def test_repeated_sample_evaluated_once_per_distinct_input():
    """The same technology sample three times: its moved (design, performance input) pairs are evaluated
    once, not three times, and the three samples get identical columns."""
    ds = _catalog()
    tech = load_technology()
    one = montecarlo.sample_technology_values(tech, 4, seed=5)
    vals = [v for v in one if monte_carlo_designs(ds, "balanced", tech, values=[v], model_error=False,
                                                  exact=True).full_evaluations > 0][:1]
    assert vals, "no sample moved a performance input"
    once = monte_carlo_designs(ds, "balanced", tech, values=vals, model_error=False, exact=True)
    thrice = monte_carlo_designs(ds, "balanced", tech, values=vals * 3, model_error=False, exact=True)
    assert thrice.full_evaluations == once.full_evaluations > 0
    for col, v in thrice.samples.items():
        assert np.array_equal(v, np.repeat(once.samples[col], 3, axis=0)), col


def test_constant_not_carried_per_row_falls_back_to_building_each_sample():
    """A range on a constant the model reads from the technology, not from a row attribute (the test-cost
    fraction): the check against a built sample catches it and every sample is built."""
    tech = load_technology({"wafer": {"test_cost_fraction": {"low": 0.0, "high": 0.2, "value": 0.01}}})
    path = ("wafer", "test_cost_fraction")
    assert montecarlo._row_attributes(path) == ()
    ds = _catalog()[:6]
    mc = monte_carlo_designs(ds, "local", tech, samples=3, seed=0, model_error=False, exact=True)
    assert len({v[path] for v in mc.tech_values}) == 3
    assert np.ptp(mc.samples["chip_cost_usd"][:, 0]) > 0  # the fraction does move the cost
    _assert_samples_equal_full_evaluations(mc, ds, tech, "local")


def test_row_attributes_come_from_the_registry_tables():
    assert montecarlo._row_attributes(("process_nodes", "n5", "wafer_price_usd")) == (
        ("wafer_price_usd", "chip.process_node"), ("wafer_price_usd_io", "chip.io_die_node"))
    assert montecarlo._row_attributes(("process_nodes", "n7", "defect_density_per_cm2")) == (
        ("defect_density_per_cm2", "chip.process_node"), ("defect_density_per_cm2_io", "chip.io_die_node"))
    assert montecarlo._row_attributes(("memories", "hbm3", "usd_per_gb")) == (("mem_usd_per_gb", "chip.memory"),)
    assert montecarlo._row_attributes(("packaging", "cowos_s", "usd_per_mm2")) == (("pkg_usd_per_mm2",
                                                                                    "chip.packaging"),)
    assert montecarlo._row_attributes(("tco", "usd_per_kwh")) == ()


def test_io_dies_on_a_sampled_node_stay_stacked(monkeypatch):
    """I/O dies on a node whose wafer price and defect density are sampled: the patched rows carry the I/O
    dies' constants too (wafer_price_usd_io ...), so the samples stay stacked (the design level is built
    once for the nominal, once to check) and every sample equals a full evaluation of its technology.
    Before, only the compute dies' constants were patched, the check failed and every sample was built."""
    tech = load_technology()
    cols = random_designs(40, 11, {"chip.io_die_node": "n7", "chip.process_node": "n5"})
    built = []

    def build(t):
        built.append(t)
        return DesignArrays.from_columns(cols, t)

    mc = montecarlo.monte_carlo(build, "local", tech, samples=4, seed=2, model_error=False, exact=True)
    assert len(built) == 2  # nominal + the first sample's check: no fallback to building each sample
    for s, vals in enumerate(mc.tech_values):
        assert ("process_nodes", "n7", "wafer_price_usd") in vals
        t = tech.with_values(vals)
        full = evaluate(DesignArrays.from_columns(cols, t), "local", t)
        for col, v in mc.samples.items():
            assert np.allclose(v[s], full[col].astype(float), rtol=1e-12, atol=0), (s, col)
    assert np.ptp(mc.samples["chip_cost_usd"], axis=0).max() > 0  # the prices do move the cost


def _stacked(n: int = 400, samples: int = 8, seed: int = 3, pin: dict | None = None):
    tech = load_technology()
    arr = DesignArrays.from_columns(random_designs(n, seed, pin), tech)
    values = montecarlo.sample_technology_values(tech, samples, seed)
    design = np.tile(np.arange(n), samples)
    big = montecarlo._patched(arr, values, design, np.repeat(np.arange(samples), n))
    return arr, values, design, big


# with I/O dies (whose count is a priced choice) and without: the full space drew I/O dies and found a design
# that fits under no die count copying its nominal I/O die count (montecarlo._SplitBounds._ranges' `keep`)
@pytest.mark.parametrize("pin", [{"chip.io_die_node": "none"}, None])
def test_split_bounds_keep_the_cheapest_die_count_and_the_same_areas(pin):
    """The die counts the bounds leave to each (design, sample) row contain the one the full search takes,
    and the restricted search gives the same areas, bit for bit (reasons included)."""
    arr, values, design, big = _stacked(pin=pin)
    bounds = montecarlo._SplitBounds.build(arr, chip_area(arr), values)
    assert bounds is not None
    lo, hi = bounds.dies_between(big, design)
    full = chip_area(big)
    assert np.all((lo <= full.num_dies) & (full.num_dies <= hi))
    assert np.mean(hi - lo + 1) < 0.6 * arr.tech.chiplets.max_auto_dies  # the bounds do prune
    ranged = chip_area(big, (lo, hi))
    for f in dataclasses.fields(full):
        assert np.array_equal(getattr(ranged, f.name), getattr(full, f.name)), f.name
    top = arr.tech.chiplets.max_auto_dies
    every = chip_area(big, (np.ones(big.n), np.full(big.n, top)))  # the whole range: the unrestricted search
    assert all(np.array_equal(getattr(every, f.name), getattr(full, f.name)) for f in dataclasses.fields(full))
    # rows left one count and one spare choice copy the nominal split; the others search: the same areas
    lo, hi, upper = bounds._ranges(big, design)
    check = np.flatnonzero((lo == hi) & ~bounds.spare_free[design])
    kept = bounds._nominal_spares(big, design, check, upper[check])
    assert 0.2 < kept.mean() < 1  # some rows keep the nominal spares without a search, not all
    assert np.array_equal(full.spare_cores[check[kept]], bounds.area.spare_cores[design[check[kept]]])
    mc_area = bounds.chip_area(big, design)
    for f in dataclasses.fields(full):
        assert np.array_equal(getattr(mc_area, f.name), getattr(full, f.name)), f.name


def test_split_lower_bounds_hold_at_every_sample():
    """Each count's cheapest spare choice at a sample costs at least its lower bound (linear in the prices
    at the lowest sampled defect density), and the nominal split priced at the sample at least that."""
    arr, values, design, big = _stacked(samples=6)
    bounds = montecarlo._SplitBounds.build(arr, chip_area(arr), values)
    exact = split_costs(big, geometry=False)["chip_usd"]
    # the bounds price all silicon at the cheaper wafer where the I/O dies are on another node
    wafer = np.where(big.has_io_die, np.minimum(big.wafer_price_usd, big.wafer_price_usd_io), big.wafer_price_usd)
    lower = (wafer * bounds.cw[:, design] + big.pkg_usd_per_mm2 * bounds.cp[:, design]
             + big.mem_gb * big.mem_usd_per_gb * bounds.cq[:, design])
    fits = bounds.fits[design]
    assert np.all(lower[:, fits] <= exact[:, fits] * (1 + 1e-12))
    assert np.mean(lower[:, fits] / exact[:, fits]) > 0.8  # and they are not trivial
    # per spare choice of the nominal count, for the designs that harvest cores
    n0 = bounds.area.num_dies[design].astype(float)
    rows = np.flatnonzero(~bounds.spare_free[design])
    for s in range(bounds.spare.shape[1]):
        cost = split_costs(big.take(rows), geometry=False, dies=n0[rows], spares=float(s))["chip_usd"][0]
        d = design[rows]
        low = (wafer[rows] * bounds.spare[0][s, d] + big.pkg_usd_per_mm2[rows] * bounds.spare[1][s, d]
               + (big.mem_gb * big.mem_usd_per_gb)[rows] * bounds.spare[2][s, d])
        assert np.all(low <= cost * (1 + 1e-12)), s


def test_split_bounds_only_for_prices_and_defect_densities():
    arr, values, _, _ = _stacked(n=20, samples=2)
    area = chip_area(arr)
    moved = [{**v, ("process_nodes", "n5", "sram_mm2_per_mb"): 0.5} for v in values]
    assert montecarlo._SplitBounds.build(arr, area, moved) is None  # an area density moves the geometry


def test_monte_carlo_same_with_and_without_split_bounds(monkeypatch):
    cols = random_designs(300, 5)
    tech = load_technology()
    with_bounds = montecarlo.monte_carlo_columns(cols, "balanced", tech, samples=8, seed=2)
    monkeypatch.setattr(montecarlo._SplitBounds, "build", classmethod(lambda cls, *a: None))
    without = montecarlo.monte_carlo_columns(cols, "balanced", tech, samples=8, seed=2)
    assert with_bounds.full_evaluations == without.full_evaluations > 0
    for col, v in without.samples.items():
        assert np.array_equal(with_bounds.samples[col], v), col


def test_sorted_quantiles_equal_numpy():
    rng = np.random.default_rng(0)
    for shape in [(64, 300), (16, 7), (3, 5), (1, 4), (64,)]:
        for v in (rng.random(shape), rng.integers(0, 3, shape).astype(float), rng.lognormal(size=shape) * 1e5):
            for qs in [(0.1, 0.5, 0.9), (0.0, 1.0, 0.25, 0.75), (0.05,)]:
                assert np.array_equal(montecarlo.sorted_quantiles(v, qs), np.quantile(v, qs, axis=0))
    v = rng.random((8, 5))
    v[2, 3] = np.nan
    assert np.array_equal(montecarlo.sorted_quantiles(v, QUANTILES), np.quantile(v, QUANTILES, axis=0), equal_nan=True)


def test_split_bounds_when_the_nominal_count_fits_only_with_its_spares():
    """A design whose nominal split (5 dies with spares) fits only with its spares: at a sample where
    fewer spares are cheapest, 5 dies may no longer fit and the search takes another count, so the
    nominal split bounds only the samples where every spare choice the search may take fits (found by
    benchmarks/uncertainty_speed.py's random designs, where a sample took 4 dies before the model's d2d
    change)."""
    tech = load_technology()
    cols = {"chip.process_node": ["n5"], "chip.core_style": ["simt"], "chip.cores": [50], "chip.array_rows": [128],
            "chip.array_cols": [256], "chip.clock_ghz": [0.6779082720183521], "chip.sram_mb": [34.28410991146467],
            "chip.sram_kind": ["scratchpad"], "chip.memory": ["hbm4"], "chip.memory_stacks": [8],
            "chip.link": ["nvlink4"], "chip.links": [32], "chip.packaging": ["cowos_l"], "system.num_chips": [2]}
    arr = DesignArrays.from_columns({k: np.array(v) for k, v in cols.items()}, tech)
    values = montecarlo.sample_technology_values(tech, 24, 5)
    design = np.zeros(len(values), int)
    big = montecarlo._patched(arr, values, design, np.arange(len(values)))
    bounds = montecarlo._SplitBounds.build(arr, chip_area(arr), values)
    full = chip_area(big)
    assert full.num_dies[0] == 5 and not bounds.always[0]
    mc_area = bounds.chip_area(big, design)
    for f in dataclasses.fields(full):
        assert np.array_equal(getattr(mc_area, f.name), getattr(full, f.name)), f.name
