"""Model error as data (issue 16.2): the shipped held-out spreads are those `dse validate` measures today,
and scenarios map to the regimes the spreads are measured in."""

from __future__ import annotations

import math

from dse.uncertainty.model_error import compute_model_error, load_model_error, regime_of, sigma_for
from dse.workloads.scenarios import load_mix

FIX = "regenerate it: python -m dse.uncertainty.model_error (dse calibrate does it too)"


def _groups(data):
    yield "all", data["all"]
    for g, v in data["regimes"].items():
        yield f"regimes.{g}", v
    for c, regs in data["classes"].items():
        for g, v in regs.items():
            yield f"classes.{c}.{g}", v


def test_shipped_model_error_is_current():
    """Every group's row count equal and σ within 10 % (or 0.01) of what the current model measures on
    the test split: a physics change that moves the held-out error must regenerate the file."""
    shipped, now = dict(_groups(load_model_error())), dict(_groups(compute_model_error("test")))
    assert shipped.keys() == now.keys(), f"model_error.yaml groups differ from dse validate's; {FIX}"
    for k, v in now.items():
        assert shipped[k]["n"] == v["n"], f"{k}: {shipped[k]['n']} rows shipped, {v['n']} now; {FIX}"
        assert math.isclose(shipped[k]["sigma_log"], v["sigma_log"], rel_tol=0.1, abs_tol=0.01), (
            f"{k}: shipped σ {shipped[k]['sigma_log']}, measured now {v['sigma_log']}; {FIX}")


def test_serving_scenarios_read_the_serving_regime():
    data = load_model_error()
    sc = {e.scenario.name: e.scenario for e in load_mix("serving").scenarios}
    served = [s for s in sc.values() if getattr(s, "serving", None) is not None]
    assert served and all(regime_of(s) == "serving" for s in served)
    assert data["regimes"]["serving"]["n"] >= 2
    assert sigma_for(served[0], "tuned") == data["classes"]["tuned"]["serving"]["sigma_log"]
    fake = {"all": {"n": 9, "sigma_log": 0.5}, "regimes": {"serving": {"n": 3, "sigma_log": 0.2}}, "classes": {}}
    assert sigma_for(served[0], "tuned", fake) == 0.2  # no class row: the pooled regime, not all rows
