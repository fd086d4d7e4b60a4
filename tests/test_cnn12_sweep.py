"""The batch-1 CNN sweep of benchmarks/device_sweep.py (`--cnn`): its rows are the model's own metrics and roofline,
and a layer-pipelined chip's latency is its period times (1 + depth) plus one launch (issue 11)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

import dse
from dse.model.calibration import load_calibration
from dse.model.perf import BOUNDS
from dse.workloads.cnn import pipeline_depth
from dse.workloads.scenarios import load_scenario

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("device_sweep", ROOT / "benchmarks" / "device_sweep.py")
sweep_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep_mod)

DEVICES = ["A100-SXM-80GB", "speedAI240-Slim", "Inferentia2"]


@pytest.fixture(scope="module")
def rows():
    return {r["device"]: r for r in sweep_mod.cnn_sweep(DEVICES, "tuned", "ResNet-50", 1, "int8")}


def test_rows_are_the_models_metrics(rows):
    sc = load_scenario({"name": "cnn", "model": "ResNet-50", "kind": "cnn", "batch": 1, "precision": "int8",
                        "max_chips": 1})
    cols = dse.evaluate_designs(DEVICES, scenario=sc, software="tuned")
    for i, name in enumerate(DEVICES):
        r = rows[name]
        assert r["feasible"]
        assert r["latency_ms"] == pytest.approx(float(cols["cnn.latency_ms"][i]), rel=1e-12)
        assert r["images_per_s"] == pytest.approx(1e3 / r["latency_ms"], rel=1e-12)
        assert r["bound"] in BOUNDS
        assert 0.0 < r["peak_fraction"] <= 1.0
        assert min(r[f"{c}_ms"] for c in ("compute", "memory", "sram", "overhead")) >= 0.0


def test_pipeline_period_only_on_a_layer_pipelined_chip(rows):
    assert rows["A100-SXM-80GB"]["period_us"] is None and rows["Inferentia2"]["period_us"] is None
    r = rows["speedAI240-Slim"]
    # one image through a line-buffered layer pipeline: T·(1 + depth) + the stack's inference launch
    launch_ms = load_calibration("tuned").for_phase("inference").step_overhead_us * 1e-3
    depth = pipeline_depth("ResNet-50")  # 656 / 112 = 5.857
    assert depth == pytest.approx(656 / 112)
    assert r["latency_ms"] == pytest.approx(r["period_us"] * 1e-3 * (1 + depth) + launch_ms, rel=1e-9)


def test_cli_json(capsys):
    assert sweep_mod.main(["--cnn", "ResNet-50", "--tags", "untetherai", "--software", "tuned", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["model"] == "ResNet-50" and out["batch"] == 1
    assert [r["device"] for r in out["rows"]] == ["speedAI240-Slim"]
