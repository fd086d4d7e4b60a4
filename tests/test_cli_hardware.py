"""`dse catalog` / `dse describe` end to end (subprocess, as a user runs them), incl. bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dse", *args], capture_output=True, text=True, timeout=120)


def test_catalog_json():
    r = run("catalog", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["H100-SXM"]["peak_tflops"] == pytest.approx(989.4, rel=0.01)
    assert data["H100-SXM"]["published"]["mem_gb"] == 80


def test_catalog_table():
    r = run("catalog")
    assert r.returncode == 0, r.stderr
    assert "A100" in r.stdout and "Groq" in r.stdout


def test_describe_catalog_json_is_one_object():
    r = run("describe", "H100-SXM", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)  # the whole stdout is one JSON object
    assert obj["feasible"] and obj["derived"]["mem_gb"] == 80
    assert set(obj["area_mm2"]) >= {"mac_mm2", "sram_mm2", "die_mm2", "num_dies"}
    assert obj["cost_usd"]["chip_usd"] > 0 and obj["power_w"]["tdp_w"] > 0


def test_describe_yaml_and_tech_override(tmp_path):
    d = tmp_path / "chip.yaml"
    d.write_text("name: mine\nchip:\n  process_node: n5\n  cores: 32\n  memory: hbm3\n  memory_stacks: 2\n"
                 "  dies: 1\n")  # a fixed die count: the automatic split is re-optimised at another wafer price
    t = tmp_path / "tech.yaml"
    t.write_text("process_nodes:\n  n5:\n    wafer_price_usd: 33976\n")
    base = json.loads(run("describe", str(d), "--json").stdout)
    over = json.loads(run("describe", str(d), "--json", "--tech", str(t)).stdout)
    assert over["cost_usd"]["die_usd"] == pytest.approx(2 * base["cost_usd"]["die_usd"])
    human = run("describe", str(d))
    assert human.returncode == 0 and "mine" in human.stdout


@pytest.mark.parametrize("body,line,field", [
    ("chip:\n  cores: many\n", 2, "chip.cores"),
    ("chip:\n  cores: 8\n  sram_mbb: 3\n", 3, "chip.sram_mbb"),
    ("chip:\n  sram_mb: -5\n", 2, "chip.sram_mb"),
    ("chip:\n  process_node: n6\n", 2, "chip.process_node"),
    ("chip: [1, 2\n", None, None),
])
def test_describe_bad_input_exits_2(tmp_path, body, line, field):
    p = tmp_path / "bad.yaml"
    p.write_text(body)
    r = run("describe", str(p))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert str(p) in r.stderr
    if field:
        assert f"{p}:{line}:" in r.stderr and field in r.stderr


def test_describe_unknown_name_exits_2():
    r = run("describe", "H100-SMX")  # "H100" itself is an alias (issue 14.4)
    assert r.returncode == 2 and "did you mean 'H100-SXM'" in r.stderr and "Traceback" not in r.stderr
    r = run("describe", "missing.yaml")
    assert r.returncode == 2 and "missing.yaml" in r.stderr and "not found" in r.stderr


def test_unknown_command_and_bad_option_exit_2_without_traceback():
    import subprocess
    import sys

    for argv in (["nosuch"], ["evaluate", "H100-SXM", "--batch", "0"]):
        res = subprocess.run([sys.executable, "-m", "dse", *argv], capture_output=True, text=True)
        assert res.returncode == 2, (argv, res.stderr)
        assert "Traceback" not in res.stderr and "Error" in res.stderr


def test_one_design_of_a_multi_design_file(tmp_path):
    import yaml

    from dse.catalog import load_catalog_design

    docs = []
    for name in ("H100-SXM", "A100-SXM-80GB"):
        d = load_catalog_design(name).model_dump(exclude_none=True)
        d.pop("published", None)
        docs.append(d)
    f = tmp_path / "two.yaml"
    f.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    r = run("describe", str(f))
    assert r.returncode == 2 and "holds 2 designs" in r.stderr and "#NAME" in r.stderr
    r = run("describe", f"{f}#{docs[1]['name']}", "--json")
    assert r.returncode == 0, r.stderr
    r = run("describe", f"{f}#H100")
    assert r.returncode == 2 and "did you mean 'H100-SXM'" in r.stderr
