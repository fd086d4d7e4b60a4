"""Sensitivity: the marginal change of each objective per step of each knob and per technology range.

Knob steps are derived from the knob registry (`dse.model.knobs.KNOBS`), never listed by hand:
a count knob (int) +1 below 20, else +10 %; a float knob +10 %; a table knob (process node, memory,
link, packaging) the next entry of its technology table; a choice knob the next choice; a bool knob
flipped. Unset optional knobs and list/dict knobs are skipped. All stepped designs are evaluated in
one vectorized call. Technology ranges (`Technology.uncertain()`) are finite differences at the low and
high end of each range, one at a time (through `dse.uncertainty.montecarlo.monte_carlo` with explicit
values: common machinery, prices reuse the performance columns).

Each row reports the relative change of every objective and, for numeric knob steps, the elasticity
(relative change of the objective over relative change of the knob), which makes steps in different
units comparable ("+1 HBM stack" vs "+10 % MACs").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from dse.evaluate import evaluate
from dse.evaluate.metrics import metric_info
from dse.model.arrays import DesignArrays
from dse.model.hardware import Design
from dse.model.knobs import KNOBS, Knob
from dse.model.technology import Technology, default_technology
from dse.uncertainty.montecarlo import monte_carlo
from dse.workloads.scenarios import Mix, load_mix

SMALL_COUNT = 20      # count knobs below this step by +1 (a stack, a link, a chip), above by +10 %
REL_STEP = 0.10       # relative step of float knobs and large counts


@dataclass
class Change:
    """One perturbation: what changed, from → to, and the relative change of each objective."""

    kind: str                       # "knob" or "technology"
    name: str                       # dotted knob name or technology path
    label: str
    old: Any
    new: Any
    delta_rel: dict[str, float] = field(default_factory=dict)   # objective → (new − nominal) / |nominal|
    elasticity: dict[str, float] = field(default_factory=dict)  # objective → Δ% objective / Δ% knob
    feasible: bool = True

    def effect(self, objective: str) -> float:
        return abs(self.delta_rel.get(objective, 0.0))


def _step(k: Knob, value: Any, tech: Technology) -> Any:
    """The next value of knob `k` from `value` (None: no step for this knob)."""
    if value is None or k.type in (list, dict):
        return None
    if k.type is bool:
        return not value
    if k.type is str:
        names = [n for n in (k.allowed(tech) or []) if n != "none"]
        if value not in names:
            return None
        i = names.index(value)
        if k.table is not None:
            return names[i + 1] if i + 1 < len(names) else None
        return names[(i + 1) % len(names)] if len(names) > 1 else None
    if k.type is int:
        new = value + 1 if value < SMALL_COUNT else value + max(1, round(value * REL_STEP))
    else:
        new = value * (1 + REL_STEP) if value else None
    if new is None:
        return None
    hi = k.high if k.high is not None else np.inf
    return new if new <= hi else None


def knob_steps(design: Design, tech: Technology) -> list[tuple[Knob, Any, Any]]:
    """(knob, old, new) for every knob of the registry that has a step from `design`'s value."""
    flat = design.to_flat()
    out = []
    for k in KNOBS:
        old = flat.get(k.name)
        new = _step(k, old, tech)
        if new is not None and new != old:
            out.append((k, old, new))
    return out


def _rel(new: np.ndarray, base: float) -> np.ndarray:
    return (np.asarray(new, float) - base) / (abs(base) if base else 1.0)


def sensitivity(design: Design, mix: Mix | str, objectives: Sequence[str], tech: Technology | None = None,
                software: str | None = None, ranges: bool = True) -> tuple[dict[str, float], list[Change]]:
    """(nominal objective values, one Change per knob step and per technology range end)."""
    return sensitivity_many([design], mix, objectives, tech, software, ranges)[0]


def sensitivity_many(designs: Sequence[Design], mix: Mix | str, objectives: Sequence[str],
                     tech: Technology | None = None, software: str | None = None,
                     ranges: bool = True) -> list[tuple[dict[str, float], list[Change]]]:
    """`sensitivity` of several designs: every knob step of every design in one evaluation, every range
    end of every design in one Monte-Carlo call (for the dashboard's tornado of each front design)."""
    mix = load_mix(mix) if isinstance(mix, str) else mix
    tech = tech or default_technology()
    all_steps, variants, first = [], [], []
    for design in designs:
        base_flat = design.to_flat()
        first.append(len(variants))
        variants.append(design)
        steps = []
        for k, old, new in knob_steps(design, tech):
            try:  # a step the design rules forbid (e.g. chiplets off while dies > 1) is no change to rank
                variants.append(Design.from_flat({**base_flat, k.name: new}))
            except ValueError:
                continue
            steps.append((k, old, new))
        all_steps.append(steps)
    cols = evaluate(DesignArrays.from_designs(variants, tech), mix, tech, cal=software)
    for o in objectives:
        if o not in cols:
            from dse.errors import DseUserError
            raise DseUserError(f"unknown objective '{o}'; valid: {', '.join(c for c in cols if metric_info(c, mix))}")
    out = []
    for at, steps in zip(first, all_steps):
        nominal = {o: float(cols[o][at]) for o in objectives}
        changes = []
        for i, (k, old, new) in enumerate(steps, start=at + 1):
            c = Change("knob", k.name, k.label, old, new, feasible=bool(cols["feasible"][i]))
            for o in objectives:
                c.delta_rel[o] = float(_rel(cols[o][i], nominal[o]))
                if k.type in (int, float) and old:
                    c.elasticity[o] = c.delta_rel[o] / ((new - old) / abs(old))
            changes.append(c)
        out.append((nominal, changes))
    if ranges and tech.uncertain() and designs:
        ends = [(path, d, v) for path, d in tech.uncertain() for v in d.bounds() if v != d.nominal]
        mc = monte_carlo(lambda t: DesignArrays.from_designs(designs, t), mix, tech, values=[{p: v} for p, _, v in ends],
                         model_error=False, software=software, exact=True)
        for j, (nominal, changes) in enumerate(out):
            for s, (path, d, v) in enumerate(ends):
                c = Change("technology", ".".join(path), ".".join(path), d.nominal, v,
                           feasible=bool(mc.samples["feasible"][s, j] > 0.5))
                for o in objectives:
                    c.delta_rel[o] = float(_rel(mc.samples[o][s, j], nominal[o]))
                    c.elasticity[o] = c.delta_rel[o] / ((v - d.nominal) / abs(d.nominal)) if d.nominal else 0.0
                changes.append(c)
    return out


def ranked(changes: list[Change], objectives: Sequence[str]) -> list[Change]:
    """Changes by decreasing largest relative effect over the objectives; infeasible changes last."""
    return sorted(changes, key=lambda c: (not c.feasible, -max((c.effect(o) for o in objectives), default=0.0)))


__all__ = ["Change", "sensitivity", "sensitivity_many", "knob_steps", "ranked"]
