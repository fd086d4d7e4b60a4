"""Dashboard of a study with robust objectives (issue 16.4 + 16.6): the p<NN>.<metric> objectives get
whiskers from their metric's spread, P(on the front) and a tornado of the metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dse.report.model_data import mix_of
from dse.report.rundata import front_mask, load_runs, resolve_objectives
from dse.report.spec import ParetoView
from dse.report.uncertainty_view import P_FRONT, error_columns, front_uncertainty, tornado_data, tornado_metric
from dse.runs.layout import Objective
from dse.study.runner import StudyRunner
from dse.study.spec import load_study

from _spaces import SPACE


def _robust_run(tmp_path: Path) -> Path:
    body = {
        "name": "robust", "space": SPACE, "mix": "local",
        "objectives": [{"metric": "p90.chip_cost_usd", "direction": "minimize"},
                       {"metric": "p10.local_llm.tokens_per_s", "direction": "maximize"}],
        "constraints": ["prob.cheap >= 0.5"],
        "uncertainty": {"samples": 8, "seed": 3, "chance": {"cheap": "chip_cost_usd <= 12000"}},
        "sampler": {"kind": "nsga2", "population_size": 16},
        "budget": {"trials": 32}, "seed": 5, "execution": {"backend": "serial"},
    }
    p = tmp_path / "robust.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    StudyRunner(load_study(p), tmp_path / "run").run()
    return tmp_path / "run"


def test_robust_objectives_get_whiskers_p_front_and_tornado(tmp_path):
    runs = load_runs([_robust_run(tmp_path)])
    objs = resolve_objectives(runs, None)
    assert [o.metric for o in objs] == ["p90.chip_cost_usd", "p10.local_llm.tokens_per_s"]
    fronts = {r.name: front_mask(r.results, objs) for r in runs}
    df, notes = front_uncertainty(runs, fronts, objs, ParetoView(uncertainty_samples=8))
    assert df is not None and not notes, notes
    for o in objs:
        lo, hi = error_columns(o.metric)
        assert (df[lo] <= df[hi]).all() and (df[hi] > df[lo]).any(), o.metric  # a spread, ordered
    assert ((df[P_FRONT] >= 0) & (df[P_FRONT] <= 100)).all()
    assert [tornado_metric(o) for o in objs] == ["chip_cost_usd", "local_llm.tokens_per_s"]
    assert tornado_metric(Objective(metric="prob.cheap", direction="maximize")) is None
    from dse.catalog import load_catalog_design
    from dse.model.technology import default_technology

    t, tnotes = tornado_data({"H100": load_catalog_design("H100-SXM")}, {"H100": default_technology()},
                             mix_of(runs[0]), objs, top=4)
    assert t is not None and not tnotes
    assert t["objective"].n_unique() == 2  # one bar chart per robust objective's metric
    assert np.all(np.isfinite(t["delta_pct"].to_numpy()))
