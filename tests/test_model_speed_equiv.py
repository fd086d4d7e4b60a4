"""The vectorized model gives every design the same metrics however the designs are batched.

The mapping evaluates every plan on every design of a call at once (shared step timings, blocks of
`BLOCK_DESIGNS`), so a design's result must not depend on which other designs share its call: one
call over N random designs equals chunks of 1, 7 and 128 (and blocks of 5), and the one-design
wrapper equals the batched call on catalog designs, to 1e-12 relative for every metric and mix.
"""

from __future__ import annotations

import numpy as np
import pytest

import dse.evaluate.mapping as mapping
from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.evaluate.table import evaluate_design
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.workloads.scenarios import Mix, MixEntry, load_mix

from _steps import extended_mix_tables

N = 40


def _columns(n: int, seed: int) -> dict[str, np.ndarray]:
    """Random designs over the main knobs (wide ranges, so capacity, SLO and residency cases all occur)."""
    rng = np.random.default_rng(seed)
    memory = rng.choice(["none", "lpddr5x", "gddr7", "hbm3", "hbm3e"], n)
    return {
        "chip.process_node": rng.choice(["n7", "n5", "n3"], n),
        "chip.core_style": rng.choice(["systolic", "simt"], n),
        "chip.cores": rng.integers(1, 600, n),
        "chip.array_rows": rng.choice([16, 64, 128, 256], n),
        "chip.array_cols": rng.choice([16, 64, 128, 256], n),
        "chip.clock_ghz": rng.uniform(0.5, 2.2, n),
        "chip.precisions": [["bf16", "fp8", "int8", "int4"]] * n,
        "chip.sram_mb": np.exp(rng.uniform(0, np.log(4096), n)),
        "chip.sram_kind": rng.choice(["scratchpad", "cache"], n),
        "chip.memory": memory,
        "chip.memory_stacks": np.where(memory == "none", 0, rng.integers(1, 9, n)),
        "chip.link": rng.choice(["nvlink4", "ici_v4", "serdes_112g"], n),
        "chip.links": rng.integers(1, 33, n),
        "chip.packaging": rng.choice(["organic", "cowos_s", "cowos_l"], n),
        "system.num_chips": rng.choice([1, 2, 4, 8, 16, 64, 256], n),
        "system.topology": rng.choice(["ring", "torus2d", "switch"], n),
    }


def _variants() -> Mix:
    """The balanced mix's scenarios with the other branches switched on: a fixed batch, TTFT and latency
    SLOs, the latency goal and a chip limit."""
    local, dc, cnn = (e.scenario for e in load_mix("balanced").scenarios)
    return Mix(name="variants", scenarios=(
        MixEntry(scenario=local.model_copy(update={"name": "fixed8", "batch": 8, "ttft_ms": 400.0})),
        MixEntry(scenario=dc.model_copy(update={"name": "dc_latency", "goal": "latency", "ttft_ms": 2000.0,
                                                "max_chips": 32})),
        MixEntry(scenario=cnn.model_copy(update={"name": "cnn_slo", "latency_ms": 5.0, "goal": "latency"})),
    ))


def _same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert x.shape == y.shape, (what, k)
        if x.dtype.kind == "f":
            np.testing.assert_allclose(y, x, rtol=1e-12, atol=0.0, err_msg=f"{what}: {k}")
        else:
            assert (x == y).all(), f"{what}: {k} differs at {np.flatnonzero(x != y)[:5]}"


def _chunked(cols: dict, mix, tech, size: int) -> dict:
    parts = [evaluate(DesignArrays.from_columns({k: v[s:s + size] for k, v in cols.items()}, tech), mix, tech)
             for s in range(0, N, size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@pytest.mark.parametrize("mix_name", ["balanced", "extended", "variants"])
def test_chunking_does_not_change_any_metric(mix_name, monkeypatch):
    tech = default_technology()
    mix = _variants() if mix_name == "variants" else load_mix(mix_name)
    cols = _columns(N, seed=len(mix_name))
    whole = evaluate(DesignArrays.from_columns(cols, tech), mix, tech)
    assert 0 < whole["feasible"].sum() < N  # both kinds of design occur, so the property has teeth
    for size in (1, 7, 128):
        _same(whole, _chunked(cols, mix, tech, size), f"{mix_name}, chunks of {size}")
    monkeypatch.setattr(mapping, "BLOCK_DESIGNS", 5)
    _same(whole, evaluate(DesignArrays.from_columns(cols, tech), mix, tech), f"{mix_name}, blocks of 5")


def test_one_design_wrapper_equals_batched_call():
    tech = default_technology()
    designs = [load_catalog_design(name) for name in list_catalog()]
    batched = evaluate(DesignArrays.from_designs(designs, tech), "balanced", tech)
    assert batched["feasible"].any()
    for i, d in enumerate(designs):
        one = evaluate_design(d, "balanced", tech=tech)
        _same({k: np.asarray(v)[i:i + 1] for k, v in batched.items()},
              {k: np.asarray([v]) for k, v in one.items()}, d.name)


# ---- fast paths against their reference: the spare-core choice --------------------------------------

def _best_spares_scan(fixed, core, cores, d0, alpha, cap, max_die, min_die, diameter, scribe, edge, usd_of=None):
    """Reference: `fab.best_spares` as one spare choice at a time (the choices scanned in ascending order)."""
    from dse.model import fab
    fixed, core, cores, d0, alpha, cap, max_die, min_die = (a.astype(float) for a in np.broadcast_arrays(
        fixed, core, cores, d0, alpha, cap, max_die, min_die))
    best_s = np.zeros_like(fixed)
    best_y = fab.negative_binomial_yield(fixed + cores * core, d0, alpha)
    best_die = np.maximum(fixed + cores * core, min_die)
    best_dpw = fab.dies_per_wafer(best_die, diameter, scribe, edge)
    idx = np.flatnonzero(cap >= 1)
    if usd_of is not None:
        best_usd = np.full_like(fixed, np.inf)
        best_usd[idx] = usd_of(idx, best_die[idx], best_y[idx], best_dpw[idx])
    for s in fab.SPARE_CHOICES[1:]:
        idx = idx[cap[idx] >= s]
        if not idx.size:
            break
        die = np.maximum(fixed[idx] + (cores[idx] + s) * core[idx], min_die[idx])
        y = fab.harvested_yield(fixed[idx], (cores[idx] + s) * core[idx], s, d0[idx], alpha[idx])
        dpw = fab.dies_per_wafer(die, diameter, scribe, edge)
        if usd_of is None:
            better = (die <= max_die[idx]) & (dpw * y > best_dpw[idx] * best_y[idx] * (1 + 1e-12))
        else:
            usd = usd_of(idx, die, y, dpw)
            better = (die <= max_die[idx]) & (usd < best_usd[idx] * (1 - 1e-12))
            best_usd[idx[better]] = usd[better]
        j = idx[better]
        best_s[j], best_die[j], best_y[j], best_dpw[j] = s, die[better], y[better], dpw[better]
        if usd_of is None:
            idx = j
    return best_s, best_die, best_y, best_dpw


@pytest.mark.parametrize("priced", [False, True])
def test_best_spares_equals_one_choice_at_a_time(priced):
    from dse.model import fab
    rng = np.random.default_rng(7)
    n = 400
    args = (rng.uniform(5, 400, n), rng.uniform(0.05, 20, n), rng.uniform(1, 300, n), rng.uniform(0.02, 0.5, n),
            rng.uniform(1, 6, n), rng.choice([0, 1, 3, 16, 64, 80], n), rng.uniform(200, 900, n),
            rng.uniform(0, 300, n), 300.0, 0.1, 3.0)
    pkg = rng.uniform(1, 5, n)

    def usd_of(i, die, y, dpw):  # a cost that is not monotone in the spares by itself
        return 17000.0 / (dpw * np.maximum(y, 1e-12)) + pkg[i] * die
    usd = usd_of if priced else None
    fast, ref = fab.best_spares(*args, usd_of=usd), _best_spares_scan(*args, usd_of=usd)
    assert (ref[0] > 0).sum() > n // 10  # spares are chosen often enough for the comparison to bite
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)


# ---- a design's plans do not depend on the other designs of its call -------------------------------

def test_design_alone_equals_design_in_mixed_chunk():
    """Pipeline depths that fill a whole system (e.g. 9 = 576 / 64) are tried by that system only: every
    design evaluated alone gets the metrics it gets in a call with designs of other (non power of two)
    chip counts."""
    tech = default_technology()
    rng = np.random.default_rng(11)
    n = 24
    cols = _columns(n, seed=5)
    cols["system.num_chips"] = rng.choice([72, 96, 300, 576, 640, 1152, 1200, 1600, 2400], n)
    cols["chip.memory"] = np.where(np.arange(n) % 2 == 0, "none", cols["chip.memory"])  # SRAM-only: deep pipelines
    cols["chip.memory_stacks"] = np.where(cols["chip.memory"] == "none", 0, cols["chip.memory_stacks"])
    cols["chip.sram_mb"] = np.where(cols["chip.memory"] == "none", rng.uniform(200, 800, n), cols["chip.sram_mb"])
    mixed = evaluate(DesignArrays.from_columns(cols, tech), "balanced", tech)
    assert (mixed["datacenter_llm.pp"] > 8).sum() >= 3  # deep, non power of two pipelines occur
    for i in range(n):
        alone = evaluate(DesignArrays.from_columns({k: v[i:i + 1] for k, v in cols.items()}, tech), "balanced", tech)
        _same({k: np.asarray(v)[i:i + 1] for k, v in mixed.items()}, alone, f"design {i}")


# ---- fast paths against their reference: all steps timed in one pass ---------------------------------

def test_step_times_equal_per_step_op_times(monkeypatch):
    """`perf.step_times` (residency-free part once per design and step, stacked tables for the steps of
    few designs) gives each instance Σ count × op_times and Σ count × op_energy_j of its own step; the
    stacked and the one-table-at-a-time paths agree to the bit (a step sums the same whatever shares it)."""
    from dse.evaluate.table import design_metrics
    from dse.model import perf
    from dse.model.calibration import load_calibration

    tech, cal = default_technology(), load_calibration(None)
    hw, _, _, _ = design_metrics(DesignArrays.from_columns(_columns(N, seed=3), tech))
    tables = list(extended_mix_tables(hw.num_chips))
    tables = tuple(tables[i] for i in np.linspace(0, len(tables) - 1, min(60, len(tables))).astype(int))
    assert len({k for t in tables for k in np.asarray(t.kind).astype(str)} & {"allreduce", "alltoall"}) == 2
    rng = np.random.default_rng(4)
    m = 3000
    step_of, design_of = rng.integers(0, len(tables), m), rng.integers(0, N, m)
    wres = np.where(rng.random(m) < 0.5, rng.integers(0, 2, m).astype(float), rng.random(m))
    kres, res = rng.random(m), rng.uniform(0, 2e8, m) * (rng.random(m) < 0.3)
    energy = rng.random(m) < 0.7
    runs = {}
    # every step alone, all stacked, mixed; then mixed in blocks of a few instances (the scratch arrays of
    # `perf._Work` reused block after block, and grown mid-block)
    block = perf.WORK_ELEMENTS
    for own, work in ((0, block), (10 ** 9, block), (20, block), (20, 50)):
        monkeypatch.setattr(perf, "STEP_OWN_PAIRS", own)
        monkeypatch.setattr(perf, "WORK_ELEMENTS", work)
        runs[own, work] = perf.step_times(tables, step_of, design_of, hw, cal, wres, kres, res, energy)
    runs[0] = runs[0, block]
    for t, e in runs.values():
        np.testing.assert_array_equal(t, runs[0][0])
        np.testing.assert_array_equal(e, runs[0][1])
    t, e = runs[0]
    assert np.isnan(e[~energy]).all()
    for s in np.unique(step_of):
        i = np.flatnonzero(step_of == s)
        sub = hw.take(design_of[i])
        ref = perf.op_times(tables[s], sub, cal, wres[i], kres[i], res[i])
        cnt = np.asarray(tables[s].count, float)
        np.testing.assert_allclose(t[i], (ref.total * cnt).sum(axis=1), rtol=1e-12, atol=0)
        j = energy[i]
        np.testing.assert_allclose(e[i][j], (perf.op_energy_j(tables[s], sub, ref) * cnt).sum(axis=1)[j],
                                   rtol=1e-12, atol=0)


def test_harvested_yield_choices_in_columns_equal_one_choice_at_a_time():
    """The ascending-spares fast path of `fab.harvested_yield` (choices along the last axis) equals one
    call per spare count, to the bit."""
    from dse.model import fab
    rng = np.random.default_rng(9)
    n = 200
    f, c, m, d, a = rng.uniform(5, 400, n), rng.uniform(0.05, 20, n), rng.uniform(1, 300, n), \
        rng.uniform(0.02, 0.5, n), rng.uniform(1, 6, n)
    choices = np.arange(1.0, 17.0)
    fast = fab.harvested_yield(f[:, None], (m[:, None] + choices) * c[:, None], choices, d[:, None], a[:, None])
    for j, s in enumerate(choices):
        np.testing.assert_array_equal(fast[:, j], fab.harvested_yield(f, (m + s) * c, s, d, a))
