"""Column names safe for Vega-Lite (no dots) and human axis titles with units for metrics and knobs."""

from __future__ import annotations

from dse.evaluate.metrics import metric_info
from dse.model.knobs import KNOBS

_KNOWN = {k.name: k.title for k in KNOBS}  # design knobs: label (unit) from the knob registry
_KNOB_UNITS = {k.name: k.unit for k in KNOBS if k.unit}


def safe(name: str) -> str:
    """Vega-Lite reads dots as nested fields: `chip.process_node` → `chip__process_node`."""
    return name.replace(".", "__").replace("[", "_").replace("]", "_").replace(":", "_")


def unit_of(metric: str, images: bool = False) -> str | None:
    """Unit of a metric (metric registry) or knob (knob registry) column; per-scenario `throughput` is images/s for CNN scenarios."""
    info = metric_info(metric)
    if info is not None:
        return info.metric.unit_for("cnn" if images else "llm") or None
    return _KNOB_UNITS.get(metric)


def title_of(metric: str, overrides: dict[str, str] | None = None, images: bool = False) -> str:
    """Axis title with unit, e.g. `local_llm.tpot_ms` → "local_llm: time per output token (ms)"."""
    if overrides and metric in overrides:
        return overrides[metric]
    if metric in _KNOWN:
        return _KNOWN[metric]
    info = metric_info(metric)
    words = info.metric.label if info is not None else metric.rpartition(".")[2].replace("_", " ")
    scenario = info.scenario if info is not None else metric.rpartition(".")[0]
    unit = unit_of(metric, images)
    text = f"{scenario}: {words}" if scenario else words[:1].upper() + words[1:]
    if unit and unit not in text:
        text += f" ({unit})"
    return text
