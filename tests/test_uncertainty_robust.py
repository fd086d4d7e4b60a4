"""Robust objectives (issue 16.4): a study optimises percentiles over Monte-Carlo samples or the
probability of meeting a condition; the nominal front is written beside the robust one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dse.errors import ConfigError
from dse.runs.layout import PARETO, PARETO_NOMINAL, Objective, nominal_objectives, robust_column
from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from dse.uncertainty.montecarlo import monte_carlo_columns

from _spaces import SPACE

UNC = {"samples": 8, "seed": 3, "model_error": True, "chance": {"cheap": "chip_cost_usd <= 12000"}}


def _study(tmp_path: Path, **over) -> Path:
    body = {
        "name": "robust", "space": SPACE, "mix": "local",
        "objectives": [{"metric": "p90.chip_cost_usd", "direction": "minimize"},
                       {"metric": "p10.local_llm.tokens_per_s", "direction": "maximize"}],
        "constraints": ["prob.cheap >= 0.5"],
        "uncertainty": UNC,
        "sampler": {"kind": "nsga2", "population_size": 16},
        "budget": {"trials": 32}, "seed": 5, "execution": {"backend": "serial"},
    }
    body.update(over)
    p = tmp_path / "robust.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def test_robust_names():
    assert robust_column("p90.system_cost_usd") == ("quantile", 0.9, "system_cost_usd")
    assert robust_column("p10.mix.throughput") == ("quantile", 0.1, "mix.throughput")
    assert robust_column("prob.cheap") == ("chance", None, "cheap")
    assert robust_column("system_cost_usd") is None and robust_column("p100.x") is None
    objs = [Objective(metric="p90.chip_cost_usd", direction="minimize"),
            Objective(metric="prob.cheap", direction="maximize"),
            Objective(metric="local_llm.tpot_ms", direction="minimize")]
    assert [o.metric for o in nominal_objectives(objs)] == ["chip_cost_usd", "local_llm.tpot_ms"]
    assert nominal_objectives(objs[2:]) is None  # nothing robust: no second front


def test_evaluator_columns_equal_the_monte_carlo_percentiles_and_shares(tmp_path):
    study = load_study(_study(tmp_path))
    ev = ModelEvaluator.for_study(study)
    assert ev.robust == ["p90.chip_cost_usd", "p10.local_llm.tokens_per_s", "prob.cheap"]
    _, cols = study.space.grid_shard(0, 12)
    out = ev(cols)
    mc = monte_carlo_columns(cols, "local", samples=8, seed=3)
    assert np.array_equal(out["p90.chip_cost_usd"], np.quantile(mc.samples["chip_cost_usd"], 0.9, axis=0))
    assert np.array_equal(out["p10.local_llm.tokens_per_s"],
                          np.quantile(mc.samples["local_llm.tokens_per_s"], 0.1, axis=0))
    share = ((mc.samples["chip_cost_usd"] <= 12000) & (mc.samples["feasible"] > 0.5)).mean(axis=0)
    assert np.array_equal(out["prob.cheap"], share)
    assert np.all((out["prob.cheap"] >= 0) & (out["prob.cheap"] <= 1))
    # the nominal metrics stay the nominal model's; the price ranges spread the cost
    assert np.array_equal(out["chip_cost_usd"], mc.nominal["chip_cost_usd"])
    ok = out["feasible"]
    assert np.all(out["p90.chip_cost_usd"][ok] > np.quantile(mc.samples["chip_cost_usd"], 0.1, axis=0)[ok])


def test_robust_study_writes_the_nominal_front_beside_the_robust_one(tmp_path):
    res = StudyRunner(load_study(_study(tmp_path)), tmp_path / "run").run()
    run = res.run_dir
    robust = pl.read_parquet(run / PARETO)
    nominal = pl.read_parquet(run / PARETO_NOMINAL)
    assert robust.height and nominal.height
    assert {"p90.chip_cost_usd", "p10.local_llm.tokens_per_s", "prob.cheap"} <= set(robust.columns)
    assert (robust["prob.cheap"] >= 0.5).all()  # the chance constraint holds on the front
    # the nominal front is non-dominated on the nominal metrics among the feasible trials
    df = pl.read_parquet(run / "results.parquet").filter(pl.col("feasible"))
    Y = np.column_stack([df["chip_cost_usd"].to_numpy(), -df["local_llm.tokens_per_s"].to_numpy()])
    for c, t in zip(nominal["chip_cost_usd"].to_list(), nominal["local_llm.tokens_per_s"].to_list()):
        assert not np.any((Y[:, 0] <= c) & (Y[:, 1] <= -t) & ((Y[:, 0] < c) | (Y[:, 1] < -t)))


@pytest.mark.parametrize("over, needle", [
    ({"uncertainty": None}, "add `uncertainty: {samples: 32}`"),
    ({"constraints": ["prob.cheep >= 0.5"]}, "uncertainty.chance.cheep, which the study does not define"),
    ({"objectives": [{"metric": "p90.chip_cost_usdd", "direction": "minimize"}]}, "chip_cost_usd"),
    ({"uncertainty": {**UNC, "chance": {"cheap": "chip_costt <= 1"}}}, "uncertainty.chance.cheap"),
    ({"uncertainty": {**UNC, "samples": 1}}, "samples"),
])
def test_bad_robust_fields_name_file_field_and_fix(tmp_path, over, needle):
    path = _study(tmp_path, **over)
    with pytest.raises(ConfigError) as err:
        load_study(path)
    text = str(err.value)
    assert str(path) in text and needle in text, text


def test_uncertainty_with_nominal_objectives_stores_their_p10_p50_p90(tmp_path):
    """`uncertainty: {samples: N}` on a study of nominal objectives: every trial also carries each
    objective's p10/p50/p90 over the samples (ordered, spread where ranges act)."""
    path = _study(tmp_path, objectives=[{"metric": "chip_cost_usd", "direction": "minimize"},
                                        {"metric": "local_llm.tokens_per_s", "direction": "maximize"}],
                  constraints=[], uncertainty={"samples": 8, "seed": 1})
    study = load_study(path)
    assert study.spec.robust_names() == [f"p{q}.{m}" for m in ("chip_cost_usd", "local_llm.tokens_per_s")
                                         for q in (10, 50, 90)]
    res = StudyRunner(study, tmp_path / "run").run()
    df = pl.read_parquet(res.run_dir / "results.parquet").filter(pl.col("feasible"))
    assert df.height
    for m in ("chip_cost_usd", "local_llm.tokens_per_s"):
        lo, mid, hi = (df[f"p{q}.{m}"].to_numpy() for q in (10, 50, 90))
        assert np.all(lo <= mid) and np.all(mid <= hi), m
    assert np.all(df["p90.chip_cost_usd"].to_numpy() > df["p10.chip_cost_usd"].to_numpy())  # prices are ranges
