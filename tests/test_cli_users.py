"""Issue 14 items 3-4 as a person meets them: `dse compare`, `dse roofline --html`, catalog aliases in any
case, conflicting and enumerated options, cost labels and formats, tables at 100 columns."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dse.catalog import aliases, list_catalog, load_catalog_design, resolve_name
from dse.cli import app
from dse.commands._format import cell, fitting_columns, money
from dse.commands.perf import mix_help
from dse.workloads.scenarios import mix_files, mix_names

RUNNER = CliRunner()
NARROW = {"COLUMNS": "100"}


def _run(*argv: str, env: dict | None = None):
    return RUNNER.invoke(app, list(argv), env=env or NARROW)


def _dse(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real entry point (DseUserError → exit 2 lives in dse.cli.main)."""
    import os

    return subprocess.run([sys.executable, "-m", "dse", *argv], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or NARROW)})


# ---- names: aliases declared once in the catalog data, matched in any case --------------------------
@pytest.mark.parametrize("typed, name", [("h100", "H100-SXM"), ("H100", "H100-SXM"), ("a100", "A100-SXM-80GB"),
                                         ("mi300x", "MI300X"), ("MI300x", "MI300X"), ("b200", "B200"),
                                         ("h100-sxm", "H100-SXM"), ("B200", "B200")])
def test_aliases_and_case_resolve_to_the_catalog_entry(typed, name):
    assert resolve_name(typed) == name
    assert load_catalog_design(typed).name == name


def test_every_catalog_name_is_its_own_alias_and_unknown_names_resolve_to_none():
    table = aliases()
    assert all(table[n.lower()] == n for n in list_catalog())
    assert resolve_name("h1000") is None


def test_evaluate_accepts_a_lower_case_alias():
    res = _run("evaluate", "h100", "--scenario", "local_llm")
    assert res.exit_code == 0, res.output
    assert res.output.startswith("H100-SXM on")


# ---- several designs: evaluate points to compare; compare shows them side by side ----------------------
def test_evaluate_of_two_designs_points_to_compare():
    res = _dse("evaluate", "H100-SXM", "B200")
    assert res.returncode == 2
    assert "dse compare H100-SXM B200" in res.stderr and "Traceback" not in res.stderr


def test_compare_prints_metrics_mappings_breakdowns_and_rooflines(tmp_path):
    page = tmp_path / "cmp.html"
    res = _run("compare", "h100", "B200", "--scenario", "datacenter_llm", "--html", str(page))
    assert res.exit_code == 0, res.output
    out = res.output
    for text in ("H100-SXM", "B200", "chip build cost", "system cost", "mapping", "tp", "area (mm² per chip)",
                 "build cost", "power (W)", "off-chip knee (FLOP/byte)", "decode time per step (ms)",
                 "time per output token (ms)", "mix throughput (× H100-SXM)"):
        assert text in out, text
    assert re.search(r"\$\d{1,3},\d{3}", out)  # costs as $63,005
    assert "e+0" not in out
    _assert_fits(out, _run("compare", "h100", "B200", "--scenario", "datacenter_llm",
                           env={"COLUMNS": "400"}).output)
    html = page.read_text(encoding="utf-8")
    spec = json.loads(re.search(r"const spec = (\{.*?\});\n", html, re.S).group(1))
    datasets = spec["datasets"].values()
    roof_designs = {r["design"] for rows in datasets for r in rows if "roof" in r}
    op_designs = {r["design"] for rows in datasets for r in rows if "attainable_tflops" in r}
    assert roof_designs == op_designs == {"H100-SXM", "B200"}  # both rooflines in the one chart
    assert "<\\/script" in html or "</script" not in html.split("vegaEmbed")[0][-200:]
    assert "H100-SXM" in html and "B200" in html and "chip build cost" in html


def test_compare_json_has_each_design_and_its_roofline():
    res = _run("compare", "H100-SXM", "mi300x", "--mix", "local", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data["designs"]) == {"H100-SXM", "MI300X"}
    for d in data["designs"].values():
        assert d["rooflines"]["local_llm"]["peak_tflops"] > 0
        assert d["breakdowns"]["cost_usd"]["chip_usd"] == pytest.approx(d["metrics"]["chip_cost_usd"])


def test_compare_rejects_the_same_design_twice_and_conflicting_workloads():
    res = _dse("compare", "H100-SXM", "h100")
    assert res.returncode == 2 and "named twice" in res.stderr
    res = _dse("compare", "H100-SXM", "B200", "--mix", "local", "--scenario", "local_llm")
    assert res.returncode == 2 and "--mix local" in res.stderr and "--scenario local_llm" in res.stderr


def test_roofline_html_needs_no_run_folder(tmp_path):
    page = tmp_path / "sub" / "roof.html"
    res = _run("roofline", "H100", "--scenario", "local_llm", "--html", str(page))
    assert res.exit_code == 0, res.output
    html = page.read_text(encoding="utf-8")
    assert "vegaEmbed" in html and "H100-SXM" in html and "off-chip memory roof" in html
    assert "https://" not in html.split("<script")[0]  # no network: the bundle is inlined


# ---- conflicting and enumerated options ---------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--mix", "local", "--model", "llama-3-8b"], ["--mix", "local", "--scenario", "local_llm"],
                                  ["--scenario", "local_llm", "--model", "llama-3-8b"]])
def test_two_workload_options_are_an_error_naming_both(argv):
    res = _dse("evaluate", "H100-SXM", *argv)
    assert res.returncode == 2
    given = [f"{a} {b}" for a, b in zip(argv[::2], argv[1::2])]
    assert all(g in res.stderr for g in given), res.stderr


def test_roofline_unknown_phase_exits_2_listing_the_valid_phases():
    res = _dse("roofline", "H100-SXM", "--phase", "foo")
    assert res.returncode == 2
    assert "--phase foo" in res.stderr and "prefill" in res.stderr and "decode" in res.stderr
    res = _dse("roofline", "H100-SXM", "--scenario", "vision_cnn", "--phase", "decode")
    assert res.returncode == 2 and "inference" in res.stderr


@pytest.mark.parametrize("argv", [["evaluate", "H100-SXM", "--software", "foo"],
                                  ["evaluate", "H100-SXM", "--mix", "nosuchmix"],
                                  ["roofline", "H100-SXM", "--scenario", "nosuch"],
                                  ["compare", "H100-SXM", "B200", "--software", "foo"],
                                  ["software", "foo"]])
def test_enumerated_options_are_validated(argv):
    res = _dse(*argv)
    assert res.returncode == 2 and "valid" in res.stderr.lower() and "Traceback" not in res.stderr


def test_mix_help_lists_every_mix_from_the_registry():
    text = mix_help()
    assert all(n in text for n in [*mix_names(), *mix_files()])
    res = _run("evaluate", "--help", env={"COLUMNS": "400"})
    assert all(n in res.output for n in mix_names())


# ---- costs labelled and formatted the same everywhere; tables at 100 columns -------------------------
def test_money_format_and_cells():
    assert money(126035.4) == "$126,035"
    assert money(10.857) == "$10.86"
    assert cell(126035.4, "system_cost_usd") == "$126,035"
    assert cell(3.3441, "mix.throughput") == "3.344"
    assert cell(16, "system.num_chips") == "16"


def test_fitting_columns_drops_what_does_not_fit():
    heads, rows = ["a", "b", "c"], [["x" * 40, "y" * 40, "z" * 40]]
    assert fitting_columns(heads, rows, 100, keep=1) == 2
    assert fitting_columns(heads, rows, 200, keep=1) == 3
    assert fitting_columns(heads, rows, 10, keep=2) == 2


def _value_cells(out: str) -> list[str]:
    """Every non-empty table cell except the row-label column, in order."""
    cells = []
    for line in out.splitlines():
        if line.startswith("│"):
            cells += [c.strip() for c in line.strip().strip("│").split("│")[1:] if c.strip()]
    return cells


def _assert_fits(narrow: str, wide: str, width: int = 100) -> None:
    """At `width` columns every line fits and every value cell is the same as at 400 columns (a wrapped
    number would show as two fragments)."""
    assert max(len(line) for line in narrow.splitlines()) <= width
    assert _value_cells(narrow) == _value_cells(wide)


def test_evaluate_header_names_chip_counts_and_cost_kinds_at_100_columns():
    res = _run("evaluate", "H100-SXM")
    assert res.exit_code == 0, res.output
    head = " ".join(res.output.split("┏")[0].split())
    assert "chip build cost $2," in head
    assert re.search(r"system cost \(8 chips\) \$\d{2},\d{3}", head)
    assert "system power (8 chips)" in head and "× H100-SXM" in head and "chips used" in head
    _assert_fits(res.output, _run("evaluate", "H100-SXM", env={"COLUMNS": "400"}).output)


def test_pareto_prints_costs_as_dollars_and_fits_100_columns(tmp_path):
    study = Path(__file__).resolve().parents[1] / "studies" / "quickstart.yaml"
    res = _run("run", str(study), "--out", str(tmp_path), "--trials", "64", "--serial", "-q")
    assert res.exit_code == 0, res.output
    res = _run("pareto", str(tmp_path / "quickstart"), "--limit", "5")
    assert res.exit_code == 0, res.output
    assert re.search(r"\$\d{1,3}(,\d{3})+", res.output) and "e+0" not in res.output
    rows = [line for line in res.output.splitlines() if line[:1] in "┏┃┡│└"]
    assert rows and max(len(line) for line in rows) <= 100
    assert all(re.fullmatch(r"\$\d{1,3}(,\d{3})*", c) for c in _value_cells(res.output) if c.startswith("$"))
