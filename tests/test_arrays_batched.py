"""The batched paths of `DesignArrays.from_columns` and `evaluate` (issue 15, per-call cost at small chunks) give
what the one-knob / one-metric paths give, to the bit: the sanitized numeric knobs, the one voltage solve shared by
the energies and the leakage, the scenario columns, and the reasons of a column against those of its rows."""

from __future__ import annotations

import numpy as np

from dse.evaluate import table
from dse.evaluate.metrics import SCENARIO
from dse.model import arrays as A
from dse.model import voltage
from dse.model.area import chip_area
from dse.model.knobs import BY_NAME, KNOBS
from dse.model.power import chip_power, leaking_mm2, io_leaking_mm2
from dse.model.technology import default_technology

TECH = default_technology()


def _names(knob: str, rng: np.random.Generator, n: int, bad: tuple[str, ...]) -> np.ndarray:
    """`n` names of `knob`: its allowed ones, some replaced by `bad` ones."""
    allowed = BY_NAME[knob].allowed(TECH)
    out = np.array(allowed + list(bad), dtype=object)[rng.integers(0, len(allowed) + len(bad), n)]
    return out


def test_unknown_names_flagged_with_the_same_reasons():
    rng = np.random.default_rng(6)
    n = 30
    cols = {k.name: _names(k.name, rng, n, ("hbm9", "torus3d")).astype(str) for k in KNOBS if k.type is str}
    arr = A.DesignArrays.from_columns(cols, TECH)
    one = [A.DesignArrays.from_columns({k: v[i:i + 1].tolist()[0] for k, v in cols.items()}, TECH) for i in range(n)]
    assert list(arr.reason) == [a.reason[0] for a in one]  # row by row (the scalar path) the same text
    assert any("hbm9" in r for r in arr.reason)


def test_sanitized_knobs_are_the_knobs_clip():
    rng = np.random.default_rng(7)
    n = 64
    values = rng.uniform(-10, 5000, (len(A._NUMERIC_KNOBS), n))
    values[:, ::7] = np.nan
    values[:, 3::11] = np.inf
    values[:, 5::13] = 0.4
    got = dict(zip(A._SANITIZED, A._sanitized(values)))
    # what from_columns read each of them as before (its `num(knob, default)` calls)
    fills = {"chip.cores": 1, "chip.array_rows": 1, "chip.array_cols": 1, "chip.clock_ghz": 1.0, "chip.sram_mb": 0.0,
             "chip.memory_stacks": 0, "chip.links": 0, "system.num_chips": 1, "chip.io_dies": 1}
    assert set(got) == set(fills)
    for name, fill in fills.items():
        v = values[A._NUMERIC_ROW[name]]
        want = BY_NAME[name].clip(np.where(np.isfinite(v), v, fill))
        assert np.array_equal(got[name], want), name


def test_one_voltage_solve_for_energy_and_leakage():
    rng = np.random.default_rng(8)
    from dse.study.samplers import sample_space
    from dse.study.space import load_space
    from pathlib import Path

    cols = sample_space(load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"), 50, rng)
    arr = A.DesignArrays.from_columns(cols, TECH)
    assert np.array_equal(arr.supply_voltage_ratio, voltage.voltage_ratio(arr.clock_over_nominal))
    assert np.array_equal(arr.voltage_energy_ratio, voltage.design_energy_ratio(arr.clock_over_nominal, 1.0))
    assert (arr.supply_voltage_ratio < 1).any() and (arr.supply_voltage_ratio > 1).any()
    area = chip_area(arr)
    leak = arr.static_w_per_mm2 * leaking_mm2(arr, area) * voltage.voltage_ratio(arr.clock_over_nominal) \
        + arr.static_w_per_mm2_io * area.num_io_dies * io_leaking_mm2(arr, area)
    assert np.array_equal(chip_power(arr, area).leakage_w, leak)


def test_scenario_columns_block_as_one_write_per_metric():
    rng = np.random.default_rng(9)
    n = 20
    idx = np.sort(rng.choice(n, 12, replace=False))
    metrics = {name: (rng.uniform(0, 100, len(idx)) if m.dtype == "float" else rng.integers(0, 9, len(idx)))
               for name, m in SCENARIO.items() if m.numeric}
    metrics["tp"] = rng.uniform(0, 9, len(idx))  # a float column of an int metric: truncated as a write casts
    metrics["weights"] = np.array(["sram-resident"] * len(idx), dtype=object)

    def reference(metrics):
        cols = {name: m.empty(n) for name, m in SCENARIO.items()}
        for key, val in metrics.items():
            if key in cols:
                cols[key][idx] = val
        return cols

    for ms in (metrics, {k: v for k, v in metrics.items() if k != "tpot_ms"}, {**metrics, "batch": 3}):
        got, want = table._scenario_columns(n, ms, idx), reference(ms)
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and np.array_equal(got[k], want[k]), k
    empty = table._scenario_columns(n)
    assert all(np.array_equal(empty[k], m.empty(n)) and empty[k].dtype == m.empty(n).dtype for k, m in SCENARIO.items())
