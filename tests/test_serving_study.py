"""A study over search_spaces/datacenter.yaml under a p99 TPOT SLO: every design on its front, replayed
one by one in the discrete-event simulator with the engine evaluate scored, meets the SLO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from dse.evaluate.replay import scenario_engines
from dse.model.arrays import DesignArrays
from dse.model.hardware import Design
from dse.model.technology import default_technology
from dse.report.page import build_dashboard
from dse.report.spec import default_spec
from dse.serving.sim import simulate
from dse.study.export import export
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from dse.workloads.scenarios import load_mix

ROOT = Path(__file__).resolve().parents[1]
TPOT_P99_MS = 50.0


@pytest.mark.slow
def test_front_under_a_p99_tpot_slo_meets_it_in_the_simulator(tmp_path):
    study = {
        "name": "serving_front", "search_space": str(ROOT / "search_spaces" / "datacenter.yaml"),
        "mix": "serving",
        "objectives": [{"metric": "chat_70b.max_rate_rps", "direction": "maximize"},
                       {"metric": "system_cost_usd", "direction": "minimize"}],
        "constraints": [f"chat_70b.tpot_p99_ms <= {TPOT_P99_MS}", "chat_70b.goodput_rps > 0", "tdp_w <= 1200"],
        "sampler": {"kind": "nsga2", "population_size": 16}, "budget": {"trials": 32}, "seed": 5,
        "execution": {"backend": "serial"},
    }
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(study, sort_keys=False))
    run = tmp_path / "runs" / "serving_front"
    StudyRunner(load_study(cfg), run).run()
    df = pl.read_parquet(run / "results.parquet")
    assert df.filter(pl.col("feasible")).height > 0, "no feasible design in the budget"
    files = export(run, "pareto", "yaml", tmp_path / "front")
    assert files
    tech = default_technology()
    designs = [Design.model_validate(yaml.safe_load(f.read_text())) for f in files]
    arr = DesignArrays.from_designs(designs, tech)
    sc = load_mix("serving").scenarios[0].scenario
    engine, idx, replicas = scenario_engines(arr, sc)
    assert sorted(idx) == list(range(len(designs)))     # every front design runs the scenario
    for j, i in enumerate(idx):
        r = simulate(engine.take(j), sc.serving, 1500, seed=j, replicas=int(replicas[j])).steady()
        p99 = float(np.percentile(r.tpot_s, 99)) * 1e3
        assert p99 <= TPOT_P99_MS, (files[i].name, p99)
    # the dashboard of this run shows the serving view for the dropdown's designs
    dash = build_dashboard([run], default_spec())
    assert "serving" in dash.views, dash.notes
    spec = dash.views["serving"].to_dict()
    assert "Pool split" in str(spec) and "latency vs throughput" in str(spec)
