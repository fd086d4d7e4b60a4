"""Dashboard specs (`dashboards/*.yaml`): which views, which metrics on which axes, colours, filters, titles.

Validated with pydantic (extra="forbid"); `load_dashboard_spec` reports problems as `file:line:col: path: msg`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dse.runs.layout import Objective

__all__ = ["Objective", "DashboardSpec", "load_dashboard_spec", "default_spec"]

DASHBOARD_DIR = Path(__file__).resolve().parents[2] / "dashboards"
DEFAULT_SPEC = DASHBOARD_DIR / "default.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ParetoView(_Strict):
    """Scatter matrix of objective pairs with a shared brush, front step lines and reference chips."""

    kind: Literal["pareto"] = "pareto"
    title: str = "Pareto explorer"
    pairs: list[tuple[str, str]] | None = Field(None, description="[x, y] metric pairs; null = every objective pair")
    color: str = "chip.process_node"
    color_choices: list[str] = Field(
        default_factory=lambda: ["chip.process_node", "chip.memory", "system.num_chips"],
        description="categorical knobs offered in the 'colour by' dropdown (legend click filters)",
    )
    log_axes: Literal["auto", "always", "never"] = "auto"
    feasible_only: bool = True
    reference_chips: list[str] | Literal["all"] | None = "all"
    width: int = Field(300, ge=100, le=1200)
    height: int = Field(260, ge=100, le=1200)
    uncertainty_samples: int = Field(32, ge=0, le=1024, description="Monte-Carlo samples of the technology ranges "
                                     "and model error for the front's p10-p90 error bars and P(on the front); 0 = off")
    uncertainty_designs: int = Field(1000, ge=2, le=5000, description="front designs per run given error bars and "
                                     "P(on the front), spread evenly along a larger front")


class RooflineView(_Strict):
    """Operators of one design (picked in a dropdown) on its roofline."""

    kind: Literal["roofline"] = "roofline"
    title: str = "Roofline of the selected design"
    designs: int = Field(40, ge=1, le=200, description="cap on the front designs that can be drilled into (clicked "
                         "for a roofline, breakdown and tornado; split over runs): the whole front when it is smaller, "
                         "else the best per objective and the most isolated ones; the page says which")
    reference_designs: list[str] = Field(
        default_factory=lambda: ["H100-SXM"], description="catalog chips also offered in the dropdown, for comparison"
    )
    scenarios: list[str] | None = None
    width: int = Field(560, ge=100, le=1600)
    height: int = Field(340, ge=100, le=1200)


class BreakdownView(_Strict):
    """Stacked bars of where step time goes, per scenario, for the designs of the dropdown."""

    kind: Literal["breakdown"] = "breakdown"
    title: str = "Where the time goes"
    normalize: bool = True
    width: int = Field(420, ge=100, le=1600)


class TornadoView(_Strict):
    """The selected design's sensitivity: each knob one step and each technology range at its ends, by effect."""

    kind: Literal["tornado"] = "tornado"
    title: str = "What moves the selected design"
    top: int = Field(10, ge=1, le=60, description="inputs shown per objective (largest effects)")
    width: int = Field(300, ge=100, le=1200)
    height: int = Field(220, ge=60, le=1200)


class CompositionView(_Strict):
    """Knob distributions over the front vs all trials."""

    kind: Literal["composition"] = "composition"
    title: str = "What the front is made of"
    knobs: list[str] | None = Field(None, description="null = every knob that varies")
    bins: int = Field(12, ge=2, le=60)
    columns: int = Field(4, ge=1, le=8)


class ConvergenceView(_Strict):
    """Normalised hypervolume of the feasible front vs trials, one line per run."""

    kind: Literal["convergence"] = "convergence"
    title: str = "Convergence"
    points: int = Field(40, ge=2, le=400, description="checkpoints per run")
    width: int = Field(560, ge=100, le=1600)
    height: int = Field(240, ge=100, le=1200)


View = Annotated[
    Union[ParetoView, RooflineView, BreakdownView, TornadoView, CompositionView, ConvergenceView],
    Field(discriminator="kind")
]


class DashboardSpec(_Strict):
    """A whole dashboard: data handling and an ordered list of views."""

    title: str = "dse dashboard"
    description: str = ""
    objectives: list[Objective] | None = Field(None, description="null = the study's objectives")
    max_points: int = Field(8000, ge=100, le=200_000, description="per run: front + thinned dominated sample")
    headline_metrics: list[str] = Field(
        default_factory=lambda: ["system_cost_usd", "mix.throughput", "power_w", "tco_usd_per_mtok"]
    )
    labels: dict[str, str] = Field(default_factory=dict, description="metric → axis title with unit")
    views: list[View] = Field(min_length=1)

    @field_validator("views")
    @classmethod
    def _one_of_each(cls, views):
        kinds = [v.kind for v in views]
        dup = sorted({k for k in kinds if kinds.count(k) > 1})
        if dup:
            raise ValueError(f"each view kind may appear once; repeated: {', '.join(dup)}")
        return views


def load_dashboard_spec(path: Path | str | None = None) -> DashboardSpec:
    """Load and validate a dashboard YAML (default: dashboards/default.yaml); errors raise ConfigError."""
    from dse.config import load_yaml_model

    return load_yaml_model(path or DEFAULT_SPEC, DashboardSpec, what="dashboard spec")


def default_spec() -> DashboardSpec:
    """Every view with its defaults (used when dashboards/default.yaml is not shipped with the install)."""
    if DEFAULT_SPEC.exists():
        return load_dashboard_spec(DEFAULT_SPEC)
    return DashboardSpec(
        views=[ParetoView(), RooflineView(), BreakdownView(), TornadoView(), CompositionView(), ConvergenceView()]
    )
