"""`dse validate --by stack`: the model's error after one efficiency scale per software stack.

Issue 11 judges the model across devices this way: each software stack (a `software_class`) may be off by
one global factor (its kernels are faster or slower than the model's constants say), so every time the
model predicts for a (regime, software class) group is multiplied by the group's geometric-mean ratio of
measured to predicted time (a rate metric, tokens/s or images/s, is divided by it). What is left is the
model's physics: the error that remains after the scale, and how well the model ranks the measured setups
(Spearman rank correlation of measured vs predicted over the rows of one regime, metric and model —
different devices and setups running the same model — where such a group has at least `MIN_RANK_ROWS`
rows). Only regimes whose rows are one device running one setup are scaled (`SCALED_REGIMES`); kernels,
power and serving are left out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from dse.validate.measurements import lower_is_better
from dse.validate.report import Row, Summary, _summary, summarize_by

SCALED_REGIMES = ("decode_b1", "prefill", "large_batch", "cnn", "moe")
MIN_RANK_ROWS = 3  # a rank correlation of fewer points says nothing


@dataclass
class StackScale:
    regime: str
    software_class: str
    n: int
    scale: float           # the factor on every predicted time of the group (geomean measured / predicted time)
    before: Summary        # error of the group with the shipped calibration
    after: Summary         # error after the scale


@dataclass
class RankCorrelation:
    regime: str
    metric: str
    model: str
    n: int
    spearman: float


@dataclass
class StackReport:
    scales: list[StackScale]
    ranks: list[RankCorrelation]
    rows: list[Row]        # the scaled rows (error_pct after the scale)
    before: list[Summary]  # per regime, then overall, before the scale
    after: list[Summary]   # the same after the scale


def _regime(r: Row) -> str:
    return r.regime


def _time_exponent(r: Row) -> int:
    """+1 for a time metric (a slower stack raises it), -1 for a rate (tokens/s, images/s, TFLOPS)."""
    return 1 if lower_is_better(r.metric) else -1


def stack_scale(rows: list[Row]) -> float:
    """The one factor on predicted time that zeroes the mean log error of `rows` (geomean measured / predicted
    time; for a rate row the ratio is predicted / measured)."""
    logs = [_time_exponent(r) * math.log(r.measured / r.predicted) for r in rows
            if r.predicted > 0 and np.isfinite(r.predicted)]
    return math.exp(float(np.mean(logs))) if logs else 1.0


def _scaled(r: Row, scale: float) -> Row:
    p = r.predicted * scale ** _time_exponent(r)
    return replace(r, predicted=p, error_pct=100.0 * (p / r.measured - 1.0))


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (ties at their mean rank)."""
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def scale_per_stack(rows: list[Row], regimes: tuple[str, ...] = SCALED_REGIMES) -> StackReport:
    """Scale each (regime, software class) group of `rows` by its own factor; report error and ranking."""
    keep = [r for r in rows if r.regime in regimes and np.isfinite(r.predicted) and r.predicted > 0]
    groups = list(dict.fromkeys((r.regime, r.software_class) for r in keep))
    scales, scaled = [], []
    for regime, cls in groups:
        g = [r for r in keep if r.regime == regime and r.software_class == cls]
        s = stack_scale(g)
        gs = [_scaled(r, s) for r in g]
        name = f"{regime}/{cls}"
        scales.append(StackScale(regime, cls, len(g), s, _summary(name, g), _summary(name, gs)))
        scaled += gs
    ranks = []
    for key in dict.fromkeys((r.regime, r.metric, r.model) for r in keep):
        g = [r for r in keep if (r.regime, r.metric, r.model) == key]
        if len(g) >= MIN_RANK_ROWS:
            rho = spearman([r.measured for r in g], [r.predicted for r in g])
            ranks.append(RankCorrelation(*key, len(g), rho))
    return StackReport(scales, ranks, scaled, summarize_by(keep, _regime), summarize_by(scaled, _regime))


def stack_markdown(rep: StackReport, split: str) -> str:
    """The per-group scales, the error before/after, and the rank correlations, as Markdown tables."""
    lines = [f"| regime / software class ({split}) | n | scale | median abs error | worst abs error "
             "| median after scale | worst after scale (row) |", "|---|---:|---:|---:|---:|---:|---|"]
    for s in rep.scales:
        lines.append(f"| {s.regime} / {s.software_class} | {s.n} | {s.scale:.3f} | {s.before.median_abs_pct:.1f} % "
                     f"| {s.before.worst_abs_pct:.1f} % | {s.after.median_abs_pct:.1f} % "
                     f"| {s.after.worst_abs_pct:.1f} % ({s.after.worst_id}) |")
    before = {s.group: s for s in rep.before}
    lines += ["", "| regime | n | median abs error | worst abs error | median after scale | worst after scale |",
              "|---|---:|---:|---:|---:|---:|"]
    for s in rep.after:
        b = before[s.group]
        name = f"**{s.group}**" if s.group == "overall" else s.group
        lines.append(f"| {name} | {s.n} | {b.median_abs_pct:.1f} % | {b.worst_abs_pct:.1f} % "
                     f"| {s.median_abs_pct:.1f} % | {s.worst_abs_pct:.1f} % |")
    lines += ["", "| regime | metric | model | n | Spearman rank correlation, measured vs predicted |",
              "|---|---|---|---:|---:|"]
    for c in rep.ranks:
        lines.append(f"| {c.regime} | {c.metric} | {c.model} | {c.n} | {c.spearman:.3f} |")
    return "\n".join(lines)


__all__ = ["MIN_RANK_ROWS", "SCALED_REGIMES", "RankCorrelation", "StackReport", "StackScale",
           "scale_per_stack", "spearman", "stack_markdown", "stack_scale"]
