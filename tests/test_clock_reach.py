"""A clock beyond what the process node reaches at its highest supply is not a design point (dse.model.voltage
MAX_FRACTION): marked infeasible with the bound in the reason, never charged for a supply no part runs at."""

from __future__ import annotations

import math

import numpy as np

from dse.catalog import list_catalog, load_catalog_design
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.model.voltage import ALPHA, MAX_FRACTION, THRESHOLD_FRACTION, max_clock_ratio, voltage_ratio


def test_max_clock_ratio_by_hand():
    # alpha-power law f ∝ (V - Vt)^α / V at V = 1.45 V_nom over V = V_nom (α 1.3, Vt 0.4 V_nom)
    g = lambda v: (v - THRESHOLD_FRACTION) ** ALPHA / v  # noqa: E731
    assert math.isclose(max_clock_ratio(), g(MAX_FRACTION) / g(1.0), rel_tol=1e-12)
    assert math.isclose(max_clock_ratio(), (1.05 ** 1.3 / 1.45) / 0.6 ** 1.3, rel_tol=1e-12)  # 1.4275
    # the curve's own voltage at that clock is the highest supply
    assert math.isclose(float(voltage_ratio(max_clock_ratio())), MAX_FRACTION, rel_tol=1e-9)


def test_a_clock_past_the_nodes_reach_is_infeasible_with_the_bound_in_the_reason():
    tech = default_technology()
    f_nom = tech.process_nodes["n16"].nominal_clock_ghz
    reach = max_clock_ratio() * f_nom                                     # 0.9 GHz x 1.4275 = 1.285 GHz
    clocks = np.array([reach * 0.999, reach * 1.001, 2.5])
    arr = DesignArrays.from_columns({"chip.process_node": np.array(["n16"] * 3), "chip.clock_ghz": clocks}, tech)
    assert arr.valid.tolist() == [True, False, False]
    assert "n16" in arr.reason[1] and f"{reach:.3g} GHz" in arr.reason[1] and "chip.clock_ghz" in arr.reason[1]
    # a newer node reaches 2.5 GHz
    ok = DesignArrays.from_columns({"chip.process_node": np.array(["n4"]), "chip.clock_ghz": np.array([2.5])}, tech)
    assert ok.valid.all()


def test_every_catalog_chip_is_within_its_nodes_reach():
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design(n) for n in list_catalog()], tech)
    assert arr.valid.all(), arr.reason[~arr.valid]
    assert (arr.clock_over_nominal <= max_clock_ratio()).all()
