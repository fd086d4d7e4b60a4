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


def test_shipped_nominals_sit_inside_their_ranges():
    """A nominal at the end of its range makes every sample cheaper (or dearer) than nominal, so p10–p90
    of cost would not straddle it: each shipped nominal lies strictly between the range's p10 and p90."""
    for path, d in default_technology().uncertain():
        q10, q90 = d.sample(np.array([0.1, 0.9]))
        assert q10 < d.nominal < q90, (".".join(path), q10, d.nominal, q90)


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


# ------------------------------------------------------------------ Monte-Carlo evaluation
from dse.uncertainty.model_error import load_model_error, regime_of, sigma_for  # noqa: E402
from dse.uncertainty.montecarlo import latin_uniforms, monte_carlo_designs, sample_technology_values  # noqa: E402
from dse.workloads.scenarios import load_mix  # noqa: E402

DESIGNS = ("H100-SXM", "B200", "A100-SXM-80GB")


def _designs(names=DESIGNS):
    return [load_catalog_design(n) for n in names]


def test_collapsed_ranges_give_the_nominal_model_exactly():
    """Every range collapsed to its value and no model error: every sample equals evaluate()."""
    tech = default_technology()
    over = {}
    for path, d in tech.uncertain():
        node = over
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = {"value": d.nominal, "low": d.nominal, "high": d.nominal}
    t = load_technology(over)
    assert all(d.collapsed for _, d in t.uncertain()) and len(t.uncertain()) == len(tech.uncertain())
    ds = _designs()
    mc = monte_carlo_designs(ds, "balanced", t, samples=4, model_error=False)
    ref = evaluate(DesignArrays.from_designs(ds, default_technology()), "balanced", default_technology())
    for col, v in mc.samples.items():
        assert np.array_equal(v, np.broadcast_to(ref[col].astype(float), v.shape)), col


def test_quantiles_are_ordered_and_spread_where_ranges_act():
    mc = monte_carlo_designs(_designs(), "balanced", samples=32, seed=3)
    q = mc.quantiles()
    for col, v in q.items():
        assert np.all(v[0] <= v[1]) and np.all(v[1] <= v[2]), col
    assert np.all(q["system_cost_usd"][2] > q["system_cost_usd"][0])  # prices are ranges
    assert np.all(q["local_llm.tpot_ms"][2] > q["local_llm.tpot_ms"][0])  # model error
    assert np.array_equal(q["mem_bw_tbps"][0], q["mem_bw_tbps"][2])  # no range on bandwidth


def test_fast_path_equals_full_evaluation_of_the_sample():
    """Price-only samples reuse the performance columns; the result equals a full evaluate of that sample."""
    ds = _designs()
    mc = monte_carlo_designs(ds, "balanced", samples=6, seed=1, model_error=False, exact=True)
    for s in (0, 5):
        t = default_technology().with_values(mc.tech_values[s])
        full = evaluate(DesignArrays.from_designs(ds, t), "balanced", t)
        for col, v in mc.samples.items():
            assert np.allclose(v[s], full[col].astype(float), rtol=1e-12, atol=0), col


def test_common_random_numbers_identical_designs():
    """Two copies of one design see the same samples: identical quantiles, both always non-dominated."""
    h = load_catalog_design("H100-SXM")
    mc = monte_carlo_designs([h, h, load_catalog_design("A100-SXM-80GB")], "local", samples=16)
    for col, v in mc.samples.items():
        assert np.array_equal(v[:, 0], v[:, 1]), col
    p = mc.prob_nondominated([("system_cost_usd", False), ("mix.throughput", True)])
    assert p[0] == p[1] == 1.0


def test_hand_checked_cost_quantile_for_a_uniform_wafer_price():
    """Only the n4 wafer price uncertain, U(10,000, 30,000): chip cost is affine in the wafer price, so its
    p50 is the cost at $20,000 and p10/p90 those at $12,000/$28,000 (stratified samples, S = 1000)."""
    h = load_catalog_design("H100-SXM")
    over = {"process_nodes": {"n4": {"wafer_price_usd": {"value": 20000, "low": 10000, "high": 30000}}}}
    base = load_technology(over)
    only = {"process_nodes": {}}  # drop every other range: collapse them to their values
    for path, d in base.uncertain():
        if path != ("process_nodes", "n4", "wafer_price_usd"):
            node = only
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = d.nominal
    only["process_nodes"].setdefault("n4", {})["wafer_price_usd"] = {"value": 20000, "low": 10000, "high": 30000}
    tech = load_technology(only)
    assert len(tech.uncertain()) == 1
    mc = monte_carlo_designs([h], "local", tech, samples=1000, model_error=False)

    def cost_at(price):
        t = tech.with_values({("process_nodes", "n4", "wafer_price_usd"): price})
        return evaluate(DesignArrays.from_designs([h], t), "local", t)["chip_cost_usd"][0]

    q = mc.quantiles()["chip_cost_usd"][:, 0]
    slope = (cost_at(30000) - cost_at(10000)) / 20000
    assert slope > 0
    assert np.allclose(q, [cost_at(12000), cost_at(20000), cost_at(28000)], rtol=2e-3)


def test_latin_uniforms_stratify():
    u = latin_uniforms(10, 3, np.random.default_rng(0))
    for j in range(3):
        assert sorted(np.floor(u[:, j] * 10).astype(int)) == list(range(10))
    vals = sample_technology_values(default_technology(), 8, seed=2)
    n5 = [v[("process_nodes", "n5", "wafer_price_usd")] for v in vals]
    n4 = [v[("process_nodes", "n4", "wafer_price_usd")] for v in vals]
    assert n5 == n4  # one market level per field: the n4 and n5 ranges are equal, so the values are


def test_model_error_data_comes_from_the_held_out_split():
    data = load_model_error()
    assert data["split"] == "test" and data["all"]["n"] > 0
    mix = load_mix("balanced")
    sc = {e.scenario.name: e.scenario for e in mix.scenarios}
    assert regime_of(sc["vision_cnn"]) == "cnn"
    for s in sc.values():
        assert 0 <= sigma_for(s) < 1
    fake = {"all": {"n": 5, "sigma_log": 0.3}, "regimes": {}, "classes": {}}
    assert sigma_for(sc["local_llm"], data=fake) == 0.3
    mc = monte_carlo_designs(_designs(("H100-SXM",)), "local", samples=64, error_data=fake)
    f = mc.error_factor["local_llm"]
    assert 0.2 < np.std(np.log(f)) < 0.4
    # tpot carries exactly the factor (prices do not change times); throughput divides by it
    assert np.allclose(mc.samples["local_llm.tpot_ms"][:, 0], mc.nominal["local_llm.tpot_ms"][0] * f)
    assert np.allclose(mc.samples["local_llm.tokens_per_s"][:, 0], mc.nominal["local_llm.tokens_per_s"][0] / f)


def test_cli_evaluate_samples_prints_quantiles():
    import json

    from typer.testing import CliRunner

    from dse.cli import app

    r = CliRunner().invoke(app, ["evaluate", "H100-SXM", "--mix", "local", "--samples", "8", "--json"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.output)["metrics"]["system_cost_usd"]
    assert m["p10"] <= m["p50"] <= m["p90"] and m["p10"] < m["p90"]


# ------------------------------------------------------------------ cross-generation validation
def test_cross_generation_fits_on_older_hardware_only():
    from dse.validate.generation import cross_generation, generation_markdown, is_older

    assert is_older("A100-SXM-80GB") and not is_older("H100-SXM") and not is_older("no-such-chip")
    rep = cross_generation(max_evals=10, restarts=0)
    assert rep.train_hardware == ["A100-SXM-80GB"]
    assert rep.cross and all(r.hardware != "A100-SXM-80GB" for r in rep.cross)
    assert all(f.n_train > 0 for f in rep.fits.values())
    assert rep.cross_summary[-1].group == "overall" and rep.cross_summary[-1].n == len(rep.cross) == len(rep.shipped)
    assert "H100-SXM" in generation_markdown(rep)


# ------------------------------------------------------------------ sensitivity
def test_sensitivity_steps_come_from_the_registry():
    from dse.model.knobs import KNOBS
    from dse.uncertainty.sensitivity import knob_steps

    h = load_catalog_design("H100-SXM")
    steps = {k.name: (old, new) for k, old, new in knob_steps(h, default_technology())}
    assert steps["chip.memory_stacks"] == (5, 6)            # small count: +1
    assert steps["chip.cores"] == (132, 145)                # large count: +10 %
    assert steps["chip.process_node"] == ("n4", "n3")       # next entry of the process table
    assert steps["chip.sparsity_2to4"] == (True, False)
    assert set(steps) <= {k.name for k in KNOBS}


def test_hbm_bandwidth_is_worth_more_than_macs_for_h100_on_local():
    """The seed's claim, checked by the tool: on the `local` mix (batch-1 decode) the throughput
    elasticity of memory bandwidth is positive and larger than that of compute."""
    from dse.uncertainty.sensitivity import sensitivity

    nominal, changes = sensitivity(load_catalog_design("H100-SXM"), "local", ["mix.throughput", "system_cost_usd"],
                                   ranges=False)
    by = {c.name: c for c in changes}
    bw = max(by["chip.memory_stacks"].elasticity["mix.throughput"],
             by["chip.memory_gbps_per_stack"].elasticity["mix.throughput"])
    assert bw > 0
    macs = [by[n] for n in ("chip.cores", "chip.array_rows", "chip.array_cols") if by[n].feasible]
    compute = [c.elasticity["mix.throughput"] for c in macs] + [by["chip.clock_ghz"].elasticity["mix.throughput"]]
    assert bw > max(compute)
    assert by["chip.memory_stacks"].delta_rel["system_cost_usd"] > 0  # a stack costs money


def test_sensitivity_technology_ranges_move_cost_not_throughput():
    from dse.uncertainty.sensitivity import sensitivity

    _, changes = sensitivity(load_catalog_design("H100-SXM"), "local", ["mix.throughput", "system_cost_usd"])
    tech_rows = {(c.name, c.new): c for c in changes if c.kind == "technology"}
    ranges = dict(default_technology().uncertain())
    hbm_low = tech_rows[("memories.hbm3.usd_per_gb", ranges[("memories", "hbm3", "usd_per_gb")].bounds()[0])]
    assert hbm_low.delta_rel["system_cost_usd"] < 0 and hbm_low.delta_rel["mix.throughput"] == 0
    n3_high = ranges[("process_nodes", "n3", "wafer_price_usd")].bounds()[1]
    assert tech_rows[("process_nodes.n3.wafer_price_usd", n3_high)].delta_rel["system_cost_usd"] == 0  # H100 is n4


def test_cli_sensitivity_ranks_changes():
    import json

    from typer.testing import CliRunner

    from dse.cli import app

    r = CliRunner().invoke(app, ["sensitivity", "H100-SXM", "--mix", "local", "-o", "mix.throughput", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["changes"]
    feasible = [c["feasible"] for c in rows]
    assert feasible == sorted(feasible, reverse=True)  # infeasible steps last
    effects = [abs(c["delta_rel"]["mix.throughput"]) for c in rows if c["feasible"]]
    assert effects == sorted(effects, reverse=True) and effects[0] > 0
    bad = CliRunner().invoke(app, ["sensitivity", "H100-SXM", "-o", "no_such_metric"])
    assert bad.exit_code != 0


def test_mix_throughput_is_relative_so_model_error_cancels():
    """mix.throughput is a ratio to the reference design under a per-scenario model error common to both:
    its samples equal nominal (feasible designs), while absolute rates carry the error."""
    ds = [load_catalog_design(n) for n in ("H100-SXM", "A100-SXM-80GB")]
    mc = monte_carlo_designs(ds, "local", samples=16, seed=2)
    assert np.array_equal(mc.samples["mix.throughput"], np.broadcast_to(mc.nominal["mix.throughput"], (16, 2)))
    rate = mc.samples["local_llm.tokens_per_s"]
    assert np.all(rate.max(axis=0) > 1.05 * rate.min(axis=0))
