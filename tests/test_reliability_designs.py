"""Issue 7.2: physically impossible designs (die over the reticle with chiplets off, a model that fits
nowhere, power density over the limit) are infeasible with a reason, never crash a study, never put
NaN/inf in a metric column, and never reach a front — over `search_spaces/full.yaml` with many random
designs through `dse.evaluate.evaluate` and through a small real study."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml

from dse.model.arrays import DesignArrays
from dse.evaluate import evaluate
from dse.model.technology import default_technology, load_technology
from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from dse.workloads.scenarios import load_mix
from _designs import FULL_SPACE, random_designs


def assert_metrics_sane(m: dict[str, np.ndarray], mix) -> None:
    n = len(m["feasible"])
    for k, v in m.items():
        v = np.asarray(v)
        assert v.shape == (n,), k
        if v.dtype.kind in "fiu":
            assert np.isfinite(v.astype(float)).all(), f"non-finite values in {k}"
    infeasible = ~m["feasible"].astype(bool)
    assert all(str(r) for r in m["reason"][infeasible]), "an infeasible design without a reason"
    for e in mix.scenarios:
        s = e.scenario.name
        bad = ~m[f"{s}.feasible"].astype(bool)
        assert all(str(r) for r in m[f"{s}.reason"][bad])
        for metric in ("throughput", "ttft_ms", "tpot_ms", "tokens_per_s", "images_per_s", "latency_ms"):
            key = f"{s}.{metric}"
            if key in m:
                assert (np.asarray(m[key])[bad] == 0).all(), f"{key} of an infeasible mapping is not 0"


@pytest.mark.parametrize("mix_name,seed", [("balanced", 0), ("extended", 1)])
def test_random_full_space_designs_never_nan_and_reasons(mix_name, seed):
    tech, mix = default_technology(), load_mix(mix_name)
    cols = random_designs(2000, seed)
    m = evaluate(DesignArrays.from_columns(cols, tech), mix, tech)
    assert_metrics_sane(m, mix)
    reasons = " | ".join(str(r) for r in m["reason"][~m["feasible"]])
    assert "reticle" in reasons  # the space does produce impossible dies, and they are caught
    assert 0 < m["feasible"].sum() < len(m["feasible"])


def _design(**chip) -> dict[str, np.ndarray]:
    base = {"chip.process_node": "n5", "chip.cores": 64, "chip.array_rows": 128, "chip.array_cols": 128,
            "chip.clock_ghz": 1.2, "chip.sram_mb": 64.0, "chip.memory": "hbm3", "chip.memory_stacks": 4,
            "chip.packaging": "cowos_s", "chip.allow_chiplets": True, "system.num_chips": 1}
    base.update(chip)
    return {k: np.array([v]) for k, v in base.items()}


def test_targeted_impossible_designs_are_infeasible_with_reason():
    tech = default_technology()
    mix = load_mix("balanced")
    over_reticle = _design(**{"chip.cores": 1024, "chip.array_rows": 256, "chip.array_cols": 256,
                              "chip.allow_chiplets": False})
    m = evaluate(DesignArrays.from_columns(over_reticle, tech), mix, tech)
    assert_metrics_sane(m, mix)
    assert not m["feasible"][0] and "reticle" in m["reason"][0]
    assert m["mix.throughput"][0] == 0

    # a 70B model on one chip with 1 MB of SRAM and no DRAM: fits nowhere
    no_room = _design(**{"chip.sram_mb": 1.0, "chip.memory": "none", "chip.memory_stacks": 0})
    m = evaluate(DesignArrays.from_columns(no_room, tech), load_mix("datacenter"), tech)
    assert_metrics_sane(m, load_mix("datacenter"))
    assert not m["datacenter_llm.feasible"][0] and m["datacenter_llm.reason"][0]
    assert m["datacenter_llm.throughput"][0] == 0 and not m["feasible"][0]

    # power density over the limit: the same chip against a thermal limit it cannot meet
    hot = load_technology({"thermal": {"max_power_density_w_per_mm2": 0.05}})
    if "power_density_w_per_mm2" not in m:
        pytest.skip("the model has no power-density check")
    m = evaluate(DesignArrays.from_columns(_design(), hot), mix, hot)
    assert_metrics_sane(m, mix)
    assert not m["feasible"][0] and "power density" in m["reason"][0]


def test_small_real_study_over_full_space_stores_infeasible_never_on_front(tmp_path):
    study = {
        "name": "impossible", "search_space": str(FULL_SPACE), "mix": "balanced",
        "objectives": [{"metric": "mix.throughput", "direction": "maximize"},
                       {"metric": "system_cost_usd", "direction": "minimize"},
                       {"metric": "power_density_w_per_mm2", "direction": "minimize"}],
        # a stricter, study-level power-density bound on top of the model's own thermal limit
        "constraints": ["power_density_w_per_mm2 <= 1.0", "datacenter_llm.tpot_ms <= 50"],
        "sampler": {"kind": "nsga2", "population_size": 100}, "budget": {"trials": 400}, "seed": 5,
        "execution": {"backend": "serial"},
    }
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study, sort_keys=False))
    res = StudyRunner(load_study(f), tmp_path / "run").run()
    df = pl.read_parquet(tmp_path / "run/results.parquet")
    assert df.height == 400 and res.summary["trials_failed"] == 0
    for name, dtype in df.schema.items():
        if dtype.is_float():
            assert df[name].is_finite().all(), f"non-finite {name} in results.parquet"
    bad = df.filter(~pl.col("feasible"))
    assert bad.height > 0 and (bad["reason"].str.len_chars() > 0).all()
    assert bad["reason"].str.contains("reticle").any()
    assert bad["reason"].str.contains("power_density_w_per_mm2 <= 1.0|power density").any()
    front = pl.read_parquet(tmp_path / "run/pareto.parquet")
    assert front.height > 0 and front["feasible"].all()
    assert (front["power_density_w_per_mm2"] <= 1.0).all() and (front["datacenter_llm.tpot_ms"] <= 50).all()
    assert front.filter(~pl.col("chip.allow_chiplets"))["die_area_mm2"].le(858).all()


class _NaNModel(ModelEvaluator):
    """A model with a bug: NaN / inf in some metrics of some rows."""

    def __call__(self, cols):
        out = super().__call__(cols)
        n = len(out["feasible"])
        out["tdp_w"] = out["tdp_w"].copy()
        out["tdp_w"][::5] = np.nan  # not an objective
        out["chip_cost_usd"] = out["chip_cost_usd"].copy()
        out["chip_cost_usd"][1::7] = np.inf  # an objective
        assert n
        return out


def test_non_finite_model_output_is_a_failed_trial_not_a_nan(tmp_path):
    study = {
        "name": "nan", "space": {"name": "s", "params": {"chip.cores": {"low": 8, "high": 256, "type": "int"},
                                                          "chip.sram_mb": {"low": 8, "high": 512}},
                                 "fixed": {"system.num_chips": 1}},
        "mix": "local", "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                                       {"metric": "chip_cost_usd", "direction": "minimize"}],
        "sampler": {"kind": "nsga2", "population_size": 20}, "budget": {"trials": 60}, "seed": 2,
        "execution": {"backend": "serial"},
    }
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(study, sort_keys=False))
    StudyRunner(load_study(f), tmp_path / "run", evaluator=_NaNModel("local")).run()
    df = pl.read_parquet(tmp_path / "run/results.parquet")
    assert df.height == 60
    for name, dtype in df.schema.items():
        if dtype.is_float():
            assert df[name].is_finite().all(), name
    failed = df.filter(pl.col("state") == "FAIL")
    assert failed.height == len(set(range(0, 20, 5)) | set(range(1, 20, 7))) * 3
    assert failed["reason"].str.contains("non-finite").all() and not failed["feasible"].any()
    assert not df.filter(pl.col("pareto") & (pl.col("state") == "FAIL")).height
