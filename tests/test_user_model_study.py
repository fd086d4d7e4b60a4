"""Issue 12's end-to-end bar: a study whose mix uses user models from files (a model YAML and a Hugging Face
config.json, paths relative to the study file) runs, resumes from another working directory, exports designs
that `dse evaluate` reads back on the same mix, and dashboards — all through the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import yaml

from _spaces import SPACE

HF = Path(__file__).parent / "data" / "hf"


def _dse(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True,
                         cwd=cwd, timeout=600)
    assert res.returncode == 0, (args, res.stdout[-2000:], res.stderr[-3000:])
    return res


def test_study_with_user_models_runs_resumes_exports_and_dashboards(tmp_path):
    proj = tmp_path / "proj"
    (proj / "models" / "qwen3").mkdir(parents=True)
    shutil.copy(HF / "qwen3-30b-a3b" / "config.json", proj / "models" / "qwen3" / "config.json")
    (proj / "models" / "tiny.yaml").write_text("base: Llama-3-8B\nlayers: 4\nhidden: 2048\nheads: 16\nkv_heads: 4\n"
                                              "ffn: 5632\n")
    (proj / "mixes").mkdir()
    (proj / "mixes" / "mine.yaml").write_text(yaml.safe_dump({
        "reference_design": "H100-SXM",
        "scenarios": [
            {"scenario": {"name": "tiny_chat", "model": "../models/tiny.yaml", "batch": 1, "prompt_len": 64,
                          "output_len": 32}, "weight": 1.0},
            {"scenario": {"name": "qwen3_moe", "model": "../models/qwen3/config.json", "batch": 8,
                          "prompt_len": 256, "output_len": 64, "precision": "int4"}, "weight": 1.0},
        ]}))
    (proj / "studies").mkdir()
    study = proj / "studies" / "mine.yaml"
    study.write_text(yaml.safe_dump({
        "name": "mine", "space": SPACE, "mix": "../mixes/mine.yaml",
        "objectives": [{"metric": "qwen3_moe.tpot_ms", "direction": "minimize"},
                       {"metric": "chip_cost_usd", "direction": "minimize"}],
        "sampler": {"kind": "nsga2", "population_size": 16}, "budget": {"trials": 32}, "seed": 2,
        "execution": {"backend": "serial"}}, sort_keys=False))
    runs = tmp_path / "runs"
    _dse("run", study, "--quiet", "--out", runs, cwd=proj)
    run = runs / "mine"
    assert pl.read_parquet(run / "results.parquet").height == 32
    # resumed from somewhere else: the models are found from the run's own record, not the working directory
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _dse("run", study, "--quiet", "--out", runs, "--trials", "48", cwd=elsewhere)
    df = pl.read_parquet(run / "results.parquet")
    assert df.height == 48 and df["trial"].n_unique() == 48
    assert df.filter(pl.col("feasible"))["qwen3_moe.tpot_ms"].is_finite().all()
    # export the front and read a design back on the same mix: same numbers as the study stored
    _dse("export", run, "--out", tmp_path / "front.yaml", cwd=elsewhere)
    text = (tmp_path / "front.yaml").read_text()
    first_doc = text.split("\n---\n")[0]
    trial = int(first_doc.split("# trial ", 1)[1].split()[0])  # the header names the trial
    one = tmp_path / "one.yaml"
    one.write_text(first_doc)
    res = _dse("evaluate", one, "--mix", proj / "mixes" / "mine.yaml", "--json", cwd=elsewhere)
    row = df.filter(pl.col("trial") == trial).row(0, named=True)
    assert _close(json.loads(res.stdout), "qwen3_moe", "tpot_ms", row["qwen3_moe.tpot_ms"]), res.stdout[:2000]
    _dse("dashboard", run, "--out", tmp_path / "d.html", cwd=elsewhere)
    html = (tmp_path / "d.html").read_text()
    assert "qwen3_moe" in html and "tiny_chat" in html


def _close(got: dict, scenario: str, metric: str, want: float) -> bool:
    """The evaluate JSON's value of `scenario.metric` equals `want` to 1e-9 relative (any nesting)."""
    def walk(o, path=()):
        if isinstance(o, dict):
            for k, v in o.items():
                yield from walk(v, path + (str(k),))
        elif isinstance(o, (int, float)):
            yield path, float(o)
    for path, v in walk(got):
        if scenario in ".".join(path) and path[-1] in (metric, f"{scenario}.{metric}"):
            return abs(v - want) <= 1e-9 * abs(want)
    return False
