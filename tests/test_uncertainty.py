"""Uncertainty (issue 16): technology ranges, Monte-Carlo evaluation, model error, sensitivity."""

from __future__ import annotations

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.errors import ConfigError
from dse.evaluate import evaluate
from dse.model.arrays import DesignArrays
from dse.model.ranges import Distribution, split_ranges
from dse.model.technology import default_technology, load_technology

N5 = ("process_nodes", "n5", "wafer_price_usd")


def _collapse(raw):
    """The packaged tables with every range replaced by its nominal value as a plain number."""
    nominal, _ = split_ranges(raw)
    return nominal


# ------------------------------------------------------------------ ranges in the technology tables
def test_shipped_tables_have_sourced_ranges_and_nominal_values():
    tech = default_technology()
    ranges = dict(tech.uncertain())
    assert N5 in ranges and ("tco", "usd_per_kwh") in ranges and ("memories", "hbm3", "usd_per_gb") in ranges
    assert ("packaging", "cowos_s", "usd_per_mm2") in ranges and ("process_nodes", "n7", "defect_density_per_cm2") in ranges
    for path, d in ranges.items():
        assert d.source, path
        lo, hi = d.bounds()
        assert lo <= d.nominal <= hi
    # nominal stays where the model reads it: the old numbers
    assert tech.process_nodes["n5"].wafer_price_usd == 16988
    assert tech.memories["hbm3"].usd_per_gb == 17.5
    assert tech.tco.usd_per_kwh == 0.067


def test_ranges_collapsed_to_plain_numbers_evaluate_identically():
    from dse.model.technology import _default_raw

    tech = default_technology()
    plain = load_technology(_collapse(_default_raw()))  # every range → its value, as a plain number
    assert plain.uncertain() == [] or all(d.collapsed for _, d in plain.uncertain())
    designs = [load_catalog_design(n) for n in ("H100-SXM", "B200", "A100-SXM-80GB")]
    a = evaluate(DesignArrays.from_designs(designs, tech), "balanced", tech)
    b = evaluate(DesignArrays.from_designs(designs, plain), "balanced", plain)
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_override_range_forms_and_errors():
    t = load_technology({"process_nodes": {"n5": {"wafer_price_usd": {"low": 10000, "high": 20000}}}})
    assert t.process_nodes["n5"].wafer_price_usd == 15000  # uniform without value: midpoint
    assert dict(t.uncertain())[N5].bounds() == (10000, 20000)
    t = load_technology({"tco": {"usd_per_kwh": {"dist": "lognormal", "median": 0.1, "sigma": 0.0}}})
    assert t.tco.usd_per_kwh == 0.1 and dict(t.uncertain())[("tco", "usd_per_kwh")].collapsed
    t = load_technology({"process_nodes": {"n5": {"wafer_price_usd": {"dist": "triangular", "low": 1, "mode": 2, "high": 4}}}})
    assert t.process_nodes["n5"].wafer_price_usd == 2
    with pytest.raises(ConfigError, match=r"process_nodes\.n5\.wafer_price_usd: .*low=3 is above high=2"):
        load_technology({"process_nodes": {"n5": {"wafer_price_usd": {"low": 3, "high": 2}}}})
    with pytest.raises(ConfigError, match="unknown range key"):
        load_technology({"process_nodes": {"n5": {"wafer_price_usd": {"low": 1, "high": 2, "mean": 1}}}})


def test_distribution_inverse_cdf():
    u = np.array([0.0, 0.25, 0.5, 1.0])
    assert np.allclose(Distribution(low=10, high=20).sample(u), [10, 12.5, 15, 20])
    tri = Distribution(dist="triangular", low=0, mode=1, high=2)
    assert np.allclose(tri.sample(np.array([0.5])), [1.0])  # symmetric: median = mode
    ln = Distribution(dist="lognormal", median=2.0, sigma=0.5)
    assert np.allclose(ln.sample(np.array([0.5, 0.8413447460685429])), [2.0, 2.0 * np.exp(0.5)], rtol=1e-6)
    assert np.array_equal(Distribution(low=7, high=7, value=7).sample(np.array([0.1, 0.9])), [7.0, 7.0])


def test_with_values_changes_only_the_given_constant():
    tech = default_technology()
    t2 = tech.with_values({N5: 20000.0})
    assert t2.process_nodes["n5"].wafer_price_usd == 20000.0
    assert t2.process_nodes["n7"] == tech.process_nodes["n7"] and t2.memories == tech.memories
    assert len(t2.uncertain()) == len(tech.uncertain())
