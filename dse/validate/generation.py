"""`dse validate --by generation`: calibrate on older hardware, report the error on newer hardware.

A design-space tool predicts hardware that has not been measured, so the honest test is across
generations: every software class is fitted (the same Nelder-Mead fit as `dse calibrate`) on the
measurements of hardware whose catalog tags include one of `TRAIN_TAGS` (A100-era, issue 16.7), then
every measurement of the other hardware (H100, H200, B200, MI300X) is predicted with those constants.
The shipped calibration (fitted on the train split of all generations) is reported beside it.
Nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from dse.catalog import load_catalog_design
from dse.model.calibration import calibration_classes, derived_classes
from dse.validate.calibrate import INITIAL, FitResult, fit_class, fit_rows
from dse.validate.measurements import load_measurements, select
from dse.validate.report import Row, Summary, predict_rows, summarize_by

TRAIN_TAGS = ("ampere",)  # issue 16.7: "calibrates on older hardware (e.g. A100-era)"


def is_older(hardware: str, train_tags: tuple[str, ...] = TRAIN_TAGS) -> bool:
    """True if the catalog design `hardware` carries one of `train_tags` (unknown hardware: newer)."""
    try:
        tags = set(load_catalog_design(hardware).tags)
    except Exception:  # noqa: BLE001  a measurement on hardware outside the catalog counts as newer
        return False
    return bool(tags & set(train_tags))


@dataclass
class GenerationReport:
    train_hardware: list[str]
    fits: dict[str, FitResult]
    cross: list[Row]            # newer hardware, constants fitted on the older generation only
    shipped: list[Row]          # the same rows with the shipped calibration
    cross_summary: list[Summary]
    shipped_summary: list[Summary]


def _by_hardware(rows: list[Row]) -> list[Summary]:
    return summarize_by(rows, lambda r: r.hardware)


def cross_generation(train_tags: tuple[str, ...] = TRAIN_TAGS, max_evals: int = 300,
                     restarts: int = 1) -> GenerationReport:
    """Fit on the older generation, predict the newer one (see the module docstring)."""
    data = load_measurements()
    ms = [m for m, _ in select("all")]
    older = {m.hardware for m in ms if is_older(m.hardware, train_tags)}
    current = calibration_classes()
    fits = {}
    for name in sorted({m.software_class for m in ms if m.hardware in older} - derived_classes()):
        rows = fit_rows(m for m in ms if m.hardware in older and m.software_class == name)
        if name in current and rows:
            start = current[name].model_copy(update=INITIAL.get(name, {}))
            fits[name] = fit_class(name, start, rows, data.models, max_evals=max_evals, restarts=restarts)
    cals = {name: f.after for name, f in fits.items()}
    cross = [r for r in predict_rows("all", cals) if r.hardware not in older]
    shipped = [r for r in predict_rows("all") if r.hardware not in older]
    return GenerationReport(sorted(older), fits, cross, shipped, _by_hardware(cross), _by_hardware(shipped))


def generation_markdown(rep: GenerationReport) -> str:
    """Per newer hardware: error with constants fitted on the older generation vs the shipped constants."""
    ship = {s.group: s for s in rep.shipped_summary}
    lines = [f"| hardware (fitted on {', '.join(rep.train_hardware)}) | n | median abs error | worst abs error "
             "| within ±25 % | median abs error, shipped calibration |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in rep.cross_summary:
        name = f"**{s.group}**" if s.group == "overall" else s.group
        lines.append(f"| {name} | {s.n} | {s.median_abs_pct:.1f} % | {s.worst_abs_pct:.1f} % | "
                     f"{s.within_25_pct:.0f} % | {ship[s.group].median_abs_pct:.1f} % |")
    return "\n".join(lines)


__all__ = ["TRAIN_TAGS", "GenerationReport", "cross_generation", "generation_markdown", "is_older"]
