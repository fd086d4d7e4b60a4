"""The whole dashboard: offline HTML, every axis titled (units on continuous axes), PNGs, and `dse dashboard`."""

from __future__ import annotations

import re
import subprocess
import sys
import warnings

import altair as alt
import pytest

from dse.report import demo
from dse.report.page import build_dashboard, render_html, write_pngs
from dse.report.spec import DASHBOARD_DIR, DashboardSpec, ParetoView, default_spec, load_dashboard_spec

CONTINUOUS = {"linear", "log", "pow", "sqrt", "symlog", "time", "utc"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    return [demo.write_run(base / "a", 1500, seed=0, name="a"),
            demo.write_run(base / "b", 1500, seed=1, name="b", sampler="random")]


@pytest.fixture(scope="module")
def dashboard(runs):
    return build_dashboard(runs, default_spec())


def _vega(chart) -> dict:
    import vl_convert

    with warnings.catch_warnings(), alt.data_transformers.disable_max_rows():
        warnings.simplefilter("ignore", UserWarning)
        return vl_convert.vegalite_to_vega(chart.to_dict())


def _axes_and_scales(spec) -> tuple[list[dict], dict[str, str]]:
    axes, scales = [], {}

    def walk(o):
        if isinstance(o, dict):
            for s in o.get("scales") or []:
                scales[s["name"]] = s.get("type", "linear")
            axes.extend(o.get("axes") or [])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)

    walk(spec)
    return axes, scales


def test_every_axis_has_a_title_with_units(dashboard):
    axes, scales = _axes_and_scales(_vega(dashboard.chart))
    labelled = [a for a in axes if not (a.get("grid") and a.get("labels") is False)]  # skip grid-only axes
    assert len(labelled) >= 20
    for a in labelled:
        title = a.get("title")
        assert isinstance(title, str) and title.strip(), a
        if scales.get(a["scale"]) in CONTINUOUS:
            assert re.search(r"\(.+\)", title), f"continuous axis without a unit: {title!r}"


def test_html_is_self_contained(dashboard):
    page = render_html(dashboard)
    assert 1_000_000 < len(page) < 20_000_000
    assert not re.search(r"<script[^>]+src=", page) and not re.search(r"<link[^>]+href=\"?https?:", page)
    assert "vegaEmbed(" in page and "window.dseView" in page
    assert 'id="dse-controls"' in page and "How to use" in page
    assert "Showing" in page
    assert re.search(r"<td>a</td><td>nsga2</td><td>1,500</td>", page)


def test_pngs_for_every_view(dashboard, tmp_path):
    paths = write_pngs(dashboard, tmp_path, scale=1.0)
    assert {p.stem for p in paths} == {"pareto", "roofline", "breakdown", "tornado", "composition", "convergence"}
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5_000


def test_specs_pick_views_and_objectives(runs):
    spec = DashboardSpec(objectives=[{"metric": "power_w", "direction": "minimize"},
                                     {"metric": "mix.throughput", "direction": "maximize"}],
                         views=[ParetoView(reference_chips=None)])
    d = build_dashboard(runs[:1], spec)
    assert list(d.views) == ["pareto"]
    text = str(d.chart.to_dict())
    assert "System power (W)" in text and "pareto_points_1" not in text  # one pair → one scatter
    for name in ("llm", "vision"):
        d = build_dashboard(runs[:1], load_dashboard_spec(DASHBOARD_DIR / f"{name}.yaml"))
        assert "pareto" in d.views


def _dse(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dse", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_cli_dashboard(runs, tmp_path):
    out = tmp_path / "dash" / "x.html"
    res = _dse("dashboard", *runs, "--out", out, "--png", tmp_path / "png")
    assert res.returncode == 0, res.stderr
    assert out.is_file() and "dashboard:" in res.stdout and "3,000 trials" in res.stdout
    assert len(list((tmp_path / "png").glob("*.png"))) == 6  # pareto, roofline, breakdown, tornado, composition, convergence


def test_cli_errors_are_user_errors(runs, tmp_path):
    res = _dse("dashboard", tmp_path / "missing", "--out", tmp_path / "x.html")
    assert res.returncode == 2 and "no results.parquet" in res.stderr and "Traceback" not in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("views:\n  - kind: pareto\n    colour: x\n")
    res = _dse("dashboard", runs[0], "--spec", bad, "--out", tmp_path / "x.html")
    assert res.returncode == 2 and f"{bad}:3:5" in res.stderr
