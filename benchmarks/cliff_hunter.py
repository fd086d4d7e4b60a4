"""Cliff hunter: step every numeric knob of a search space by +1–2 % and report the largest relative change
of each metric column, worst offenders first.

    python benchmarks/cliff_hunter.py [--space search_spaces/full.yaml] [--designs 4000] [--step 0.02]
                                      [--metrics 'chip_cost_usd,*_mm2'] [--mix NAME] [--top 25]
                                      [--fail-above 5]

Designs are drawn at random from the space (its own distributions and `when` conditions). Without
`--mix` the metrics are the area/cost columns (fast); with `--mix` every numeric column of
`evaluate(arr, mix)` is a candidate (performance, power, ...), filtered by `--metrics` globs. Only rows
feasible before and after the step are compared. `elasticity` = relative metric change / relative step:
a +2 % step that moves a metric by 10 % has elasticity 5. With `--fail-above E` the exit code is 1 when
any pair exceeds elasticity E (integer knobs step by at least 1, so their relative step can be large).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dse.model.area import chip_area  # noqa: E402
from dse.model.arrays import DesignArrays  # noqa: E402
from dse.model.cost import chip_cost  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from dse.study.space import load_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# columns printed beside an offender when they changed too: they name the threshold that was crossed
CONTEXT = ("num_dies", "spare_cores", "die_area_mm2")
DEFAULT_METRICS = "chip_cost_usd,system_cost_usd,total_area_mm2,package_mm2"


class _RandomTrial:
    """Duck-typed Optuna trial drawing each knob from its own distribution with a numpy generator."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def suggest_categorical(self, name, choices):
        return choices[int(self.rng.integers(len(choices)))]

    def suggest_int(self, name, low, high, step=1, log=False):
        if log:
            v = np.exp(self.rng.uniform(np.log(low), np.log(high + 1)))
            return int(min(high, max(low, np.floor(v))))
        return int(low + step * self.rng.integers((high - low) // step + 1))

    def suggest_float(self, name, low, high, step=None, log=False):
        v = float(np.exp(self.rng.uniform(np.log(low), np.log(high)))) if log else float(self.rng.uniform(low, high))
        return v if step is None else low + round((v - low) / step) * step


def sample(space, n: int, seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """`n` random designs of `space` as columns, and the names of its numeric knobs."""
    trial = _RandomTrial(np.random.default_rng(seed))
    rows = [space.suggest(trial) for _ in range(n)]
    numeric = [k for k, knob in space.knobs.items() if knob.kind in ("int", "float")]
    return space.columns(rows), numeric


def cost_metrics(arr: DesignArrays) -> dict[str, np.ndarray]:
    """Area and cost columns (the cheap metric provider)."""
    area = chip_area(arr)
    cost = chip_cost(arr, area)
    return {"feasible": arr.valid & area.feasible, "die_area_mm2": area.die_mm2, "total_area_mm2": area.total_mm2,
            "package_mm2": area.package_mm2, "num_dies": area.num_dies.astype(float),
            "spare_cores": area.spare_cores, "cost_per_good_die_usd": cost.die_usd_each,
            "chip_cost_usd": cost.chip_usd, "system_cost_usd": cost.system_usd}


def mix_metrics(mix: str):
    """Every numeric column of `evaluate(arr, mix)` (the full model)."""
    try:
        from dse.evaluate import evaluate
    except ImportError:
        from dse.model.evaluate import evaluate

    def provider(arr: DesignArrays) -> dict[str, np.ndarray]:
        out = evaluate(arr, mix, arr.tech)
        cols = {k: np.asarray(v) for k, v in out.items()}
        return {k: v for k, v in cols.items() if k == "feasible" or v.dtype.kind in "fiu"}
    return provider


def step_column(col: np.ndarray, kind: str, rel: float) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(col, dtype=float)
    new = np.maximum(v + 1, np.round(v * (1 + rel))) if kind == "int" else v * (1 + rel)
    return new, (new - v) / np.maximum(np.abs(v), 1e-12)


def hunt(columns, numeric, space, provider, rel: float, patterns: list[str]) -> list[dict]:
    """One record per (knob, metric): the row with the largest relative change under a +rel step."""
    tech = default_technology()
    base = provider(DesignArrays.from_columns(columns, tech))
    metrics = [m for m in base if m != "feasible" and any(fnmatch.fnmatch(m, p) for p in patterns)]
    out = []
    for knob in numeric:
        new, step = step_column(columns[knob], space.knobs[knob].kind, rel)
        stepped = provider(DesignArrays.from_columns({**columns, knob: new}, tech))
        both = np.asarray(base["feasible"], bool) & np.asarray(stepped["feasible"], bool) & (step > 0)
        for m in metrics:
            b, s = np.asarray(base[m], float), np.asarray(stepped[m], float)
            ok = both & (np.abs(b) > 1e-12)
            if not ok.any():
                continue
            change = np.where(ok, s / np.where(ok, b, 1.0) - 1.0, 0.0)
            elasticity = np.where(ok, np.abs(change) / np.maximum(step, 1e-12), 0.0)
            i = int(np.argmax(elasticity))
            ctx = " ".join(f"{c} {float(base[c][i]):g}→{float(stepped[c][i]):g}" for c in CONTEXT
                           if c in base and c != m and float(base[c][i]) != float(stepped[c][i]))
            out.append({"knob": knob, "metric": m, "elasticity": float(elasticity[i]), "change": float(change[i]),
                        "step": float(step[i]), "before": float(b[i]), "after": float(s[i]), "context": ctx,
                        "n_over_5": int((elasticity > 5).sum()), "n": int(ok.sum()),
                        "design": {k: _plain(v[i]) for k, v in columns.items()}})
    return sorted(out, key=lambda r: -r["elasticity"])


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(ROOT / "search_spaces" / "full.yaml"))
    ap.add_argument("--designs", type=int, default=4000)
    ap.add_argument("--step", type=float, default=0.02, help="relative step (integers step by at least 1)")
    ap.add_argument("--metrics", default=DEFAULT_METRICS,
                    help="comma-separated globs over metric columns ('*' = all, incl. per-die ones)")
    ap.add_argument("--mix", default=None, help="evaluate this mix (all numeric columns) instead of area/cost")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fail-above", type=float, default=None, help="exit 1 if any elasticity exceeds this")
    args = ap.parse_args(argv)

    space = load_space(args.space)
    columns, numeric = sample(space, args.designs, args.seed)
    provider = mix_metrics(args.mix) if args.mix else cost_metrics
    records = hunt(columns, numeric, space, provider, args.step, args.metrics.split(","))
    print(f"{args.designs} designs of {space.name}, +{args.step:.0%} steps of {', '.join(numeric)}")
    print(f"{'knob':22s} {'metric':24s} {'elast.':>7s} {'change':>8s} {'step':>6s} {'before':>12s} {'after':>12s}"
          f" {'#>5':>5s}")
    for r in records[:args.top]:
        print(f"{r['knob']:22s} {r['metric']:24s} {r['elasticity']:7.2f} {r['change']:+8.1%} {r['step']:6.1%} "
              f"{r['before']:12.4g} {r['after']:12.4g} {r['n_over_5']:5d}  {r['context']}")
    worst = records[0] if records else None
    if worst:
        print(f"\nworst: {worst['knob']} → {worst['metric']} {worst['change']:+.1%} for a {worst['step']:.1%} step; "
              f"design: {worst['design']}")
    if args.fail_above is not None and worst and worst["elasticity"] > args.fail_above:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
