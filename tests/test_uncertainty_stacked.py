"""Monte-Carlo fast paths (issue 16): samples stacked into one design-level pass, constants patched per
row, the performance re-evaluations of every sample evaluated together once per distinct input — each
equal to a full evaluate of that sample's technology."""

from __future__ import annotations

import numpy as np

from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.model.arrays import DesignArrays
from dse.model.technology import load_technology
from dse.uncertainty import montecarlo
from dse.uncertainty.montecarlo import monte_carlo_designs


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
    assert montecarlo._row_attribute(path) is None
    ds = _catalog()[:6]
    mc = monte_carlo_designs(ds, "local", tech, samples=3, seed=0, model_error=False, exact=True)
    assert len({v[path] for v in mc.tech_values}) == 3
    assert np.ptp(mc.samples["chip_cost_usd"][:, 0]) > 0  # the fraction does move the cost
    _assert_samples_equal_full_evaluations(mc, ds, tech, "local")


def test_row_attributes_come_from_the_registry_tables():
    assert montecarlo._row_attribute(("process_nodes", "n5", "wafer_price_usd")) == ("wafer_price_usd",
                                                                                     "chip.process_node")
    assert montecarlo._row_attribute(("memories", "hbm3", "usd_per_gb")) == ("mem_usd_per_gb", "chip.memory")
    assert montecarlo._row_attribute(("packaging", "cowos_s", "usd_per_mm2")) == ("pkg_usd_per_mm2",
                                                                                  "chip.packaging")
    assert montecarlo._row_attribute(("tco", "usd_per_kwh")) is None
