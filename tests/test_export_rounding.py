"""Exported designs carry no float noise: floats of stepped knobs are rounded to their grid's decimals
(stored in run.json), other floats to 12 significant digits, and the design reads back to the same metrics."""
from __future__ import annotations

import re

import polars as pl
import pytest
import yaml

from dse.runs.reader import run_meta
from dse.study.export import export, tidy_float
from dse.study.space import decimals_of
from dse.study.runner import StudyRunner
from dse.study.spec import load_study


@pytest.mark.parametrize("low,step,want", [(0.05, 0.1, 2), (1, 0.25, 2), (100, 50, 0), (0.5, 1e-3, 3), (1.2, 0.1, 1)])
def test_decimals_of_a_grid(low, step, want):
    assert decimals_of(low, step) == want


def test_tidy_float_removes_noise_only():
    assert tidy_float(1.4000000000000001) == 1.4
    assert tidy_float(0.15000000000000002, 2) == 0.15
    assert tidy_float(812.3456789123456) == pytest.approx(812.3456789123456, rel=1e-11)
    assert tidy_float([0.30000000000000004, 3]) == [0.3, 3]
    assert tidy_float(7) == 7 and tidy_float("n5") == "n5"


def test_exported_yaml_is_on_the_grid_and_reads_back(tmp_path):
    body = {
        "name": "r",
        "space": {"name": "s", "params": {
            "chip.clock_ghz": {"low": 0.8, "high": 2.0, "step": 0.1},
            "chip.sram_mb": {"low": 8.0, "high": 300.0},
            "chip.cores": {"low": 8, "high": 64},
            "chip.memory_stacks": {"low": 1, "high": 6}},
            "fixed": {"chip.memory": "hbm3"}},
        "mix": "local",
        "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                       {"metric": "chip_cost_usd", "direction": "minimize"}],
        "sampler": {"kind": "random"}, "budget": {"trials": 24}, "seed": 3, "execution": {"backend": "serial"},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    run = tmp_path / "runs" / "r"
    StudyRunner(load_study(path), run).run()
    assert run_meta(run).step_decimals == {"chip.clock_ghz": 1}
    files = export(run, "top:24", "yaml", tmp_path / "out")
    assert files
    for f in files:
        text = f.read_text()
        clock = re.search(r"clock_ghz: ([0-9.]+)", text).group(1)
        assert len(clock.split(".")[-1]) <= 1, clock
        for number in re.findall(r": (-?[0-9]+\.[0-9]+)\b", text):
            assert len(number.replace("-", "").replace(".", "").lstrip("0")) <= 12, number
    from dse.evaluate import evaluate
    from dse.model.arrays import DesignArrays
    from dse.model.hardware import Design
    from dse.model.technology import default_technology
    from dse.workloads.scenarios import load_mix

    tech = default_technology()
    df = pl.read_parquet(run / "results.parquet")
    d = Design.model_validate(yaml.safe_load(files[0].read_text()))
    m = evaluate(DesignArrays.from_designs([d], tech), load_mix("local"), tech)
    row = df.filter(pl.col("trial") == int(files[0].stem.split("-t")[-1])).row(0, named=True)
    assert row["chip_cost_usd"] == pytest.approx(float(m["chip_cost_usd"][0]), rel=1e-9)
