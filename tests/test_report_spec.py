"""Dashboard spec loading: shipped YAMLs validate; mistakes are ConfigErrors pointing at file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from dse.errors import ConfigError
from dse.report.spec import (DASHBOARD_DIR, BreakdownView, CompositionView, ConvergenceView, DashboardSpec,
                             ParetoView, RooflineView, TornadoView, default_spec, load_dashboard_spec)


@pytest.mark.parametrize("name", ["default", "llm", "vision"])
def test_shipped_specs_validate(name):
    spec = load_dashboard_spec(DASHBOARD_DIR / f"{name}.yaml")
    kinds = [v.kind for v in spec.views]
    assert kinds[0] == "pareto" and {"roofline", "breakdown", "composition", "convergence"} <= set(kinds)


def test_default_spec_is_the_shipped_default():
    spec = default_spec()
    assert spec == load_dashboard_spec(DASHBOARD_DIR / "default.yaml")
    assert [type(v) for v in spec.views] == [ParetoView, RooflineView, BreakdownView, TornadoView,
                                            CompositionView, ConvergenceView]


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "dash.yaml"
    p.write_text(text)
    return p


def test_unknown_key_is_reported_with_position(tmp_path):
    p = _write(tmp_path, "title: x\nviews:\n  - kind: pareto\n    colour: chip.memory\n")
    with pytest.raises(ConfigError) as exc:
        load_dashboard_spec(p)
    text = str(exc.value)
    assert f"{p}:4:5" in text and "views.0.colour" in text
    assert "color" in text  # did-you-mean or the valid field list


def test_unknown_view_kind(tmp_path):
    p = _write(tmp_path, "views:\n  - kind: heatmap\n")
    with pytest.raises(ConfigError) as exc:
        load_dashboard_spec(p)
    assert "heatmap" in str(exc.value) and f"{p}:2" in str(exc.value)


def test_repeated_view_kind_rejected(tmp_path):
    p = _write(tmp_path, "views:\n  - kind: pareto\n  - kind: pareto\n")
    with pytest.raises(ConfigError) as exc:
        load_dashboard_spec(p)
    assert "repeated: pareto" in str(exc.value)


def test_bad_values(tmp_path):
    p = _write(tmp_path, "max_points: 10\nviews:\n  - kind: roofline\n    designs: 0\n"
               "objectives:\n  - {metric: power_w, direction: sideways}\n")
    with pytest.raises(ConfigError) as exc:
        load_dashboard_spec(p)
    msg = str(exc.value)
    assert "max_points" in msg and "views.0.designs" in msg and "objectives.0.direction" in msg


def test_missing_file_and_malformed_yaml(tmp_path):
    with pytest.raises(ConfigError):
        load_dashboard_spec(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError):
        load_dashboard_spec(_write(tmp_path, "views: [\n"))


def test_views_required():
    with pytest.raises(Exception):
        DashboardSpec(views=[])
