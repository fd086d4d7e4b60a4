"""Cliff hunter: step every numeric knob of a search space by +1–2 % and report, for every metric, the
largest gain such a small step buys (and which knob, design and threshold bought it).

    python benchmarks/cliff_hunter.py [--space search_spaces/full.yaml] [--designs 2000] [--step 0.02]
                                      [--mix balanced | --mix none] [--metrics '*'] [--top 40]
                                      [--near 0.3] [--fail-above 5]

Designs are drawn at random from the space (its own distributions and `when` conditions). Every knob of
the space whose design knob is a number is stepped (ranges and numeric choices such as array rows or
chip counts; integers by at least 1), on the rows where it is active. The metrics are every numeric
column of `evaluate(arr, mix)` (performance, power, cost; `--mix none`: the area/cost columns only,
fast). A metric's *gain* is its relative improvement in its better direction (metric registry: cost,
time, power down; throughput up): after/before − 1 for a "max" metric, before/after − 1 for a "min" one.
`elasticity` = gain / relative step: a +2 % step that buys 10 % has elasticity 5. Only rows feasible
before and after the step are compared. The context column names what changed with the step (die count,
spares, the scenario's plan), i.e. the threshold that was crossed.

Designs are drawn at random from the space and, for a share of them (`--near`), moved next to the
chiplet split: their logic area is set within ±4 % of 1, 2 or 3 reticles by adjusting cores or SRAM (the
die count the automatic split picks changes there, so a step on those rows crosses it).

Documented physical thresholds (`exempt` below; tests/test_cliffs.py states why each is physical): the
scenario's plan changed (PLAN: a model, a KV cache or an SLO now fits), a knob that reshapes the MAC
arrays may remove a partial wave of GEMM tiles (WAVES: up to +100 % on performance metrics), and a step
of SRAM on a scenario that streams part of its weights or of its KV cache moves that many bytes off the
memory stream (RESIDENCY: time is linear in SRAM there, so its elasticity S/(W−S) grows without bound as
the model nears a full fit; such a gain counts as explained when it is a slope, i.e. no quarter of the
step buys more than RESIDENCY_SLOPE of the gain, or of the quarter that bought most no quarter does, for
RESIDENCY_ZOOM levels: a slope reaching full residency early in the step puts most of the gain in its
first quarter but spreads it over that quarter's quarters, a jump buys it all in one piece at every level). A change of the chip's die count (SPLIT)
explains a jump only in the geometry of the split (`SPLIT_GEOMETRY`: one die's area, its cost, the heat
flux over it, and the silicon and package area, which a split priced for cost need not minimise: fewer,
larger dies may need less filler and fewer die-to-die PHYs), and so does a change of the other priced
geometry choices (the I/O die count, the spare cores): every other metric, performance, power and chip
cost included, must be continuous across them. A second table lists the largest gain NOT explained by
them; with `--fail-above E` the exit code is 1 when such an unexplained elasticity exceeds E (a cliff).

Monotonicity (`monotone` below): a step up of a knob in `GROWING` (more silicon, memory, links or I/O
dies) must never lower chip or system cost, TDP or peak power, nor (at unchanged dies and spares) the
cost of a good die. Power has one documented threshold: where the bigger chip's cheapest split has fewer
dies, its TDP may fall by at most what the dropped die-to-die PHYs drew (`d2d_phy_w`). A violation is
reported and fails `--fail-above` as a cliff does. The same step must never make the design slower: each
scenario's goal metric (the one its best mapping maximises: `dse.evaluate.metrics.GOAL_METRICS`;
`goal_metrics`) never gets worse on rows feasible before
and after (the old mapping is still there to pick), for every such knob but the array's edges (`FASTER`).
tests/test_cliffs.py runs a reduced version with the same rules.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dse.evaluate import evaluate  # noqa: E402
from dse.evaluate.metrics import goal_column, metric_info  # noqa: E402
from dse.model.area import chip_area  # noqa: E402
from dse.model.knobs import RESOURCE_KNOBS  # noqa: E402
from dse.model.arrays import DesignArrays  # noqa: E402
from dse.model.cost import chip_cost  # noqa: E402
from dse.model.knobs import BY_NAME  # noqa: E402
from dse.model.power import chip_power  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from dse.study.space import load_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# design-level columns printed beside an offender when they changed: they name the threshold crossed
CONTEXT = ("num_dies", "spare_cores")
# per-scenario plan columns printed beside an offender of that scenario when they changed
PLAN = ("tp", "pp", "dp", "ep", "batch", "weights", "chips_used")
PLAN_COLUMNS = ("tp", "pp", "dp", "ep", "batch", "chips_used")  # a change of any is the PLAN threshold
ARRAY_EDGES = ("chip.array_rows", "chip.array_cols")
ARRAY_KNOBS = ("chip.cores",) + ARRAY_EDGES
WAVE_GAIN = 1.0  # WAVES: one partial wave of tiles removed buys at most 2x
# design-level metrics: no scenario runs GEMM waves in them, so the WAVES allowance does not apply
DESIGN_LEVEL = ("die_area_mm2", "chip_cost_usd", "system_cost_usd", "tdp_w", "power_w", "power_density_w_per_mm2",
                "peak_tflops_bf16", "mem_bw_tbps", "mem_gb", "sram_mb")
RESIDENCY_KNOB = "chip.sram_mb"
# the split's geometry: a change of the die count (SPLIT) moves it by design (two dies are each half the
# area; the cheapest split may have less filler and fewer PHYs than the one before)
SPLIT_GEOMETRY = ("die_area_mm2", "power_density_w_per_mm2", "cost_per_good_die_usd", "total_area_mm2", "package_mm2")
GEOMETRY_CHOICES = ("num_io_dies", "spare_cores")  # priced choices beside the die count that move that geometry
# more of these never lowers cost or power (issue 11: more area, MACs, SRAM, stacks, links or I/O dies): the
# knob registry's resource knobs
GROWING = RESOURCE_KNOBS
# more of these never makes a scenario's goal worse: the resource knobs but the array's edges (a longer edge
# fills and drains longer per operator, perf.fill_time_s, and pads more of a small GEMM's tiles: a larger array
# may be slightly slower on small operators, which is the physics of the trade, not a cliff)
FASTER = tuple(k for k in RESOURCE_KNOBS if k not in ARRAY_EDGES)
# power_w is the workload's: a faster chip may draw less
NEVER_LOWER = ("chip_cost_usd", "system_cost_usd", "tdp_w", "peak_power_w")
NEVER_LOWER_SAME_SPLIT = ("cost_per_good_die_usd",)  # one die's cost at the same dies and spares (a split or a
# spare core more may make each good die cheaper: the chip still costs more)
POWER = ("tdp_w", "peak_power_w")  # may fall across a split by at most the die-to-die PHYs' power (d2d_phy_w)
NEAR_KNOBS = ("chip.cores", "chip.sram_mb")  # knobs moved to put a design's logic next to k reticles
NEAR_MULTIPLES = (1, 2, 3)
NEAR_BAND = 0.04
NEAR_SPAN = 1.3   # the die-count change looked for within ×/÷ 1.3 of the reticle-multiple point
NEAR_BISECT = 10  # bisection steps: (1.3²)^(1/1024) ≈ 0.05 % of the knob
RESIDENCY_SLOPE = 0.6  # a slope: no quarter of the step buys more than 60 % of the gain (a cliff buys it all in one)
RESIDENCY_POINTS = (0.25, 0.5, 0.75, 1.0)  # the step's quarters
RESIDENCY_ZOOM = 3  # levels of quarters looked into (the last: 1/64 of the step, 0.03 % of the knob at +2 %)
COST_BETTER = {"die_area_mm2": "min", "total_area_mm2": "min", "package_mm2": "min", "num_dies": "none",
               "spare_cores": "none", "num_io_dies": "none", "cost_per_good_die_usd": "min", "chip_cost_usd": "min",
               "system_cost_usd": "min"}


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


def _logic_mm2(arr: DesignArrays) -> np.ndarray:
    """Logic area of each design's chip (what the automatic split divides into reticle-sized dies)."""
    a = chip_area(arr)
    phys = np.where(arr.has_io_die, 0.0, a.mem_phy_mm2 + a.link_phy_mm2)
    return a.mac_mm2 + a.vector_mm2 + a.sram_mm2 + phys + a.uncore_mm2


def near_split(columns: dict[str, np.ndarray], space, share: float, seed: int, tech=None,
               knobs: tuple[str, ...] = NEAR_KNOBS) -> dict[str, np.ndarray]:
    """`columns` with a `share` of the rows moved next to the chiplet split: chiplets allowed, a package
    that splits (not wafer-scale), and cores or SRAM set so that the logic area is within ±NEAR_BAND of
    1, 2 or 3 reticles (logic is affine in either knob: solved from two evaluations, then clipped to the
    space's bounds), then just below the nearest change of the die count (`_just_below_resplit`). `knobs`:
    the knobs moved (one per row, at random)."""
    tech = tech or default_technology()
    rng = np.random.default_rng(seed + 1)
    cols = {k: np.array(v, copy=True) for k, v in columns.items()}
    n = len(next(iter(cols.values())))
    rows = np.flatnonzero(rng.random(n) < share)
    if not rows.size:
        return cols
    if "chip.allow_chiplets" in cols:
        cols["chip.allow_chiplets"][rows] = True
    if "chip.packaging" in cols:
        pkg = cols["chip.packaging"]
        pkg[rows] = np.where(pkg[rows] == "wafer_scale", "cowos_l", pkg[rows])
    which = rng.integers(len(knobs), size=rows.size)
    target_k = rng.choice(NEAR_MULTIPLES, size=rows.size)
    band = rng.uniform(-NEAR_BAND, NEAR_BAND, size=rows.size)
    for j, knob in enumerate(knobs):
        if knob not in cols or knob not in space.knobs:
            continue
        r = rows[which == j]
        if not r.size:
            continue
        sub = {k: v[r] for k, v in cols.items()}
        v0 = np.asarray(sub[knob], float)
        v1 = v0 * 2.0 + 1.0
        arr0 = DesignArrays.from_columns(sub, tech)
        l0 = _logic_mm2(arr0)
        l1 = _logic_mm2(DesignArrays.from_columns({**sub, knob: v1}, tech))
        target = target_k[which == j] * arr0.reticle_mm2 * (1.0 + band[which == j])
        slope = (l1 - l0) / (v1 - v0)
        v = v0 + (target - l0) / np.where(slope > 0, slope, np.inf)
        d = space.knobs[knob].dist
        v = _just_below_resplit({**sub, knob: np.clip(v, d.low, d.high)}, knob, d.low, d.high, rng, tech)
        cols[knob][r] = np.round(v) if BY_NAME[knob].type is int else v
    return cols


def _just_below_resplit(sub: dict, knob: str, low: float, high: float, rng, tech) -> np.ndarray:
    """Per row, `knob` moved to 0–1.5 % below a value where the chip's die count changes, if one lies within
    ×/÷ NEAR_SPAN of it (bisection in log space: the automatic split is priced, so it may change anywhere,
    not only at a multiple of the reticle); other rows keep their value."""
    v = np.asarray(sub[knob], float)
    lo, hi = np.clip(v / NEAR_SPAN, low, high), np.clip(v * NEAR_SPAN, low, high)

    def dies(x):
        return chip_area(DesignArrays.from_columns({**sub, knob: x}, tech)).num_dies
    n_lo = dies(lo)
    moves = dies(hi) != n_lo
    for _ in range(NEAR_BISECT):
        mid = np.sqrt(lo * hi)
        same = dies(mid) == n_lo
        lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
    below = np.clip(lo * (1.0 - rng.uniform(0.0, 0.015, size=len(v))), low, high)
    return np.where(moves, below, v)


def numeric_knobs(space) -> list[str]:
    """The knobs of `space` whose design knob (dse.model.knobs) is a number, ranges and numeric choices."""
    return [name for name in space.knobs if name in BY_NAME and BY_NAME[name].numeric]


def sample(space, n: int, seed: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """`n` random designs of `space` as columns, and the names of its numeric knobs."""
    trial = _RandomTrial(np.random.default_rng(seed))
    rows = [space.suggest(trial) for _ in range(n)]
    return space.columns(rows), numeric_knobs(space)


def cost_metrics(arr: DesignArrays) -> dict[str, np.ndarray]:
    """Area and cost columns (the cheap metric provider)."""
    area = chip_area(arr)
    cost = chip_cost(arr, area)
    return {"feasible": arr.valid & area.feasible, "die_area_mm2": area.die_mm2, "total_area_mm2": area.total_mm2,
            "package_mm2": area.package_mm2, "num_dies": area.num_dies.astype(float),
            "num_io_dies": area.num_io_dies.astype(float),
            "spare_cores": area.spare_cores, "cost_per_good_die_usd": cost.die_usd_each,
            "chip_cost_usd": cost.chip_usd, "system_cost_usd": cost.system_usd}


def mix_metrics(mix: str):
    """Every numeric column of `evaluate(arr, mix)` (the full model), plus the chip's spare cores and the
    cost of one good die."""

    def provider(arr: DesignArrays) -> dict[str, np.ndarray]:
        out = evaluate(arr, mix, arr.tech)
        cols = {k: np.asarray(v) for k, v in out.items()}
        keep = {k: v for k, v in cols.items() if k == "feasible" or v.dtype.kind in "fiu" or k.endswith(".weights")}
        area = chip_area(arr)
        keep["spare_cores"] = area.spare_cores
        keep["num_io_dies"] = area.num_io_dies.astype(float)
        keep["cost_per_good_die_usd"] = chip_cost(arr, area).die_usd_each
        keep["d2d_phy_w"] = d2d_phy_w(arr, area)
        return keep
    return provider


def d2d_phy_w(arr: DesignArrays, area) -> np.ndarray:
    """Peak power per chip of its die-to-die PHYs (what a split into fewer dies no longer draws): the bits
    they move at their energy per bit, which is the PHYs' whole power (their area does not leak on top:
    dse.model.power.leaking_mm2)."""
    return chip_power(arr, area).d2d_w


def better_of(metric: str, mix: str | None) -> str:
    """'max', 'min' or 'none' for a metric column (metric registry; cost provider columns above)."""
    if metric in COST_BETTER:
        return COST_BETTER[metric]
    info = metric_info(metric, mix)
    return info.metric.better if info is not None else "none"


def step_column(col: np.ndarray, integer: bool, rel: float) -> tuple[np.ndarray, np.ndarray]:
    """`col` stepped up by `rel` (integers by at least 1) and the relative step taken per row."""
    v = np.asarray(col, dtype=float)
    new = np.maximum(v + 1, np.round(v * (1 + rel))) if integer else v * (1 + rel)
    return new, (new - v) / np.maximum(np.abs(v), 1e-12)


def active_rows(space, knob: str, col: np.ndarray) -> np.ndarray:
    """Rows where `knob` is in play: a knob with a `when` condition sits at its neutral value elsewhere."""
    k = space.knobs[knob]
    v = np.asarray(col, dtype=float)
    if k.when is None:
        return np.ones(len(v), bool)
    return v != float(k.neutral)


def gain(before: np.ndarray, after: np.ndarray, better: str) -> np.ndarray:
    """Relative improvement in the better direction (plain relative change for 'none')."""
    b, s = np.asarray(before, float), np.asarray(after, float)
    if better == "min":
        return np.where(s > 0, b / np.where(s > 0, s, 1.0) - 1.0, np.inf)
    change = s / np.where(b != 0, b, 1.0) - 1.0
    return change if better == "max" else np.abs(change)


def hunt(columns, numeric, space, provider, rel: float, patterns: list[str], mix: str | None = None,
         tech=None, limit: float = 5.0, violations: list | None = None) -> list[dict]:
    """One record per (knob, metric): the row with the largest gain (elasticity) under a +rel step, and
    (`u_*` fields) the row with the largest gain over what `allowed_gain(limit)` allows among the rows
    that crossed no documented threshold (`u_excess` > 1: a cliff). Monotonicity violations (`monotone`)
    are appended to `violations` when given."""
    tech = tech or default_technology()
    goals = goal_metrics(mix)
    base = provider(DesignArrays.from_columns(columns, tech))
    metrics = [m for m in base if m != "feasible" and base[m].dtype.kind in "fiu"
               and any(fnmatch.fnmatch(m, p) for p in patterns)]
    out = []
    for knob in numeric:
        integer = BY_NAME[knob].type is int
        new, step = step_column(columns[knob], integer, rel)
        live = active_rows(space, knob, columns[knob]) & (step > 0)
        new = np.where(live, new, np.asarray(columns[knob], float))
        stepped = provider(DesignArrays.from_columns({**columns, knob: new}, tech))
        if violations is not None:
            violations.extend(dict(v, design={k: _plain(c[v["row"]]) for k, c in columns.items()})
                              for v in monotone(base, stepped, knob, live, goals))
        both = np.asarray(base["feasible"], bool) & np.asarray(stepped["feasible"], bool) & live
        for m in metrics:
            b, s = np.asarray(base[m], float), np.asarray(stepped[m], float)
            ok = both & (np.abs(b) > 1e-12)
            if not ok.any():
                continue
            better = better_of(m, mix)
            g = np.where(ok, gain(b, s, better), 0.0)
            elasticity = np.where(ok, g / np.maximum(step, 1e-12), 0.0)
            i = int(np.argmax(elasticity))
            free = ok & ~exempt(base, stepped, m)
            excess = np.where(free, g / np.maximum(allowed_gain(knob, m, step, limit), 1e-12), 0.0)
            over = np.flatnonzero(excess > 1.0 + 1e-9)
            slope = residency_slope(provider, columns, knob, over, new, base, m, better, g, tech)
            free[over[slope]] = False
            excess[over[slope]] = 0.0
            u = int(np.argmax(excess))
            unexplained = {"u_excess": float(excess[u]), "u_elasticity": float(elasticity[u]) if free[u] else 0.0,
                           "u_gain": float(g[u]) if free[u] else 0.0, "u_step": float(step[u]),
                           "u_before": float(b[u]), "u_after": float(s[u]), "u_row": u,
                           "u_design": {k: _plain(v[u]) for k, v in columns.items()}}
            out.append({**unexplained, "knob": knob, "metric": m, "better": better, "elasticity": float(elasticity[i]),
                        "gain": float(g[i]), "step": float(step[i]), "before": float(b[i]), "after": float(s[i]),
                        "row": i, "context": context(base, stepped, m, i), "n_over_5": int((elasticity > 5).sum()),
                        "n": int(ok.sum()), "design": {k: _plain(v[i]) for k, v in columns.items()}})
    return sorted(out, key=lambda r: -r["elasticity"])


def resplit(base: dict, stepped: dict) -> np.ndarray:
    """Rows whose die count changed with the step."""
    if "num_dies" in base and "num_dies" in stepped:
        return np.asarray(base["num_dies"]) != np.asarray(stepped["num_dies"])
    return np.zeros(len(base["feasible"]), bool)


def regeometry(base: dict, stepped: dict) -> np.ndarray:
    """Rows whose chip geometry choice changed with the step: its die count, I/O die count or spares."""
    out = resplit(base, stepped)
    for c in GEOMETRY_CHOICES:
        if c in base and c in stepped:
            out |= np.asarray(base[c]) != np.asarray(stepped[c])
    return out


def exempt(base: dict, stepped: dict, metric: str) -> np.ndarray:
    """Rows where the step crossed a documented threshold for `metric` (PLAN, or SPLIT for the split's
    geometry; module docstring)."""
    n = len(base["feasible"])
    crossed = np.zeros(n, bool)
    if metric in SPLIT_GEOMETRY:
        crossed |= regeometry(base, stepped)
    scenario = metric.rpartition(".")[0]
    scenarios = [scenario] if scenario and scenario != "mix" else sorted(
        {c.rpartition(".")[0] for c in base if c.endswith(".tp")})
    for sc in scenarios:
        for p in PLAN_COLUMNS:
            col = f"{sc}.{p}"
            if col in base and col in stepped:
                crossed |= np.asarray(base[col]) != np.asarray(stepped[col])
    return crossed


def residency_slope(provider, columns: dict, knob: str, rows: np.ndarray, new: np.ndarray, base: dict,
                    metric: str, better: str, gained: np.ndarray, tech) -> np.ndarray:
    """RESIDENCY: of `rows` (indices whose gain `gained` was too large), those where the knob is SRAM and
    the gain is a slope: no quarter of the step buys more than RESIDENCY_SLOPE of it, or, where one does,
    no quarter of that quarter buys more than RESIDENCY_SLOPE of the quarter's gain, and so on for
    RESIDENCY_ZOOM levels (a continuous slope of partial residency of the weights or the KV cache that
    reaches full residency early in the step puts most of the gain in the first quarter, but spreads it
    over that quarter's quarters; a jump stays in one piece at every level). Evaluates the points on those
    rows only."""
    ok = np.zeros(len(rows), bool)
    if knob != RESIDENCY_KNOB or not len(rows):
        return ok
    sub = {k: np.asarray(v)[rows] if np.ndim(v) else v for k, v in columns.items()}
    old = np.asarray(sub[knob], float)
    span = np.asarray(new, float)[rows] - old
    start, width = np.zeros(len(rows)), np.ones(len(rows))  # the piece of the step looked at, in step fractions
    first = np.asarray(base[metric], float)[rows]
    feasible = np.ones(len(rows), bool)
    for _ in range(RESIDENCY_ZOOM):
        points = [first]
        for f in RESIDENCY_POINTS:
            at = provider(DesignArrays.from_columns({**sub, knob: old + span * (start + width * f)}, tech))
            points.append(np.asarray(at[metric], float))
            feasible &= np.asarray(at["feasible"], bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts = np.array([gain(a, b, better) for a, b in zip(points, points[1:])])
        total = parts.sum(axis=0)
        ok |= feasible & (parts.max(axis=0) <= RESIDENCY_SLOPE * np.maximum(total, 1e-300)) & (total > 0)
        # zoom into the quarter that bought the most
        j = np.argmax(parts, axis=0)
        first = np.array(points)[j, np.arange(len(rows))]
        q = RESIDENCY_POINTS[0]  # the points are evenly spaced quarters
        start, width = start + width * q * j, width * q
    return ok


def goal_metrics(mix: str | None) -> dict[str, str]:
    """Column -> better direction of each scenario's goal in `mix` (what its best mapping maximises)."""
    if not mix:
        return {}
    from dse.workloads.scenarios import load_mix

    cols = [goal_column(e.scenario) for e in load_mix(mix).scenarios]
    return {c: metric_info(c, mix).metric.better for c in cols}


def monotone(base: dict, stepped: dict, knob: str, live: np.ndarray, goals: dict[str, str] | None = None) -> list[dict]:
    """Violations of the monotonicity rules for a step up of `knob` (module docstring): per metric the
    rows (feasible before and after) where it fell, with the largest relative drop."""
    if knob not in GROWING:
        return []
    rows = live & np.asarray(base["feasible"], bool) & np.asarray(stepped["feasible"], bool)
    out = []
    split = resplit(base, stepped)
    same = ~split
    if "spare_cores" in base and "spare_cores" in stepped:
        same_geometry = same & (np.asarray(base["spare_cores"]) == np.asarray(stepped["spare_cores"]))
    else:
        same_geometry = same
    for m in NEVER_LOWER + NEVER_LOWER_SAME_SPLIT:
        if m not in base or m not in stepped:
            continue
        b, s = np.asarray(base[m], float), np.asarray(stepped[m], float)
        ok = rows & (same_geometry if m in NEVER_LOWER_SAME_SPLIT else True) & (b > 0)
        drop = np.where(ok, 1.0 - s / np.where(b > 0, b, 1.0), 0.0)
        allowed = np.zeros(len(b))
        if m in POWER and "d2d_phy_w" in base and "tdp_w" in base:
            # SPLIT: a split into fewer dies drops their die-to-die PHYs (fewer crossings, less PHY leakage)
            tdp = np.asarray(base["tdp_w"], float)
            allowed = np.where(split, np.asarray(base["d2d_phy_w"], float) / np.where(tdp > 0, tdp, 1.0), 0.0)
        bad = np.flatnonzero(drop > allowed + 1e-9)
        if bad.size:
            i = int(bad[np.argmax(drop[bad])])
            out.append({"knob": knob, "metric": m, "rows": int(bad.size), "drop": float(drop[i]), "row": i,
                        "before": float(b[i]), "after": float(s[i])})
    for m, better in (goals if knob in FASTER else {}).items():
        if m not in base or m not in stepped:
            continue
        b, s = np.asarray(base[m], float), np.asarray(stepped[m], float)
        ok = rows & (b > 0) & (s > 0)
        loss = np.where(ok, 1.0 - (s / np.where(ok, b, 1.0) if better == "max" else b / np.where(ok, s, 1.0)), 0.0)
        bad = np.flatnonzero(loss > 1e-9)
        if bad.size:
            i = int(bad[np.argmax(loss[bad])])
            out.append({"knob": knob, "metric": m, "rows": int(bad.size), "drop": float(loss[i]), "row": i,
                        "before": float(b[i]), "after": float(s[i])})
    return out


def allowed_gain(knob: str, metric: str, step: np.ndarray, elasticity: float) -> np.ndarray:
    """The largest gain a step may buy outside the thresholds: elasticity × step, or WAVES' +100 % for a
    knob that reshapes the arrays on a performance metric."""
    limit = elasticity * np.asarray(step, float)
    if knob in ARRAY_KNOBS and metric not in DESIGN_LEVEL:
        limit = np.maximum(limit, WAVE_GAIN)
    return limit


def context(base: dict, stepped: dict, metric: str, i: int) -> str:
    """The design-level and plan columns of row `i` that changed with the step."""
    scenario = metric.rpartition(".")[0]
    cols = list(CONTEXT) + ([f"{scenario}.{p}" for p in PLAN] if scenario and scenario != "mix" else [])
    parts = []
    for c in cols:
        if c in base and c in stepped and c != metric and base[c][i] != stepped[c][i]:
            parts.append(f"{c.rpartition('.')[2]} {_fmt(base[c][i])}→{_fmt(stepped[c][i])}")
    return " ".join(parts)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def per_metric(records: list[dict]) -> list[dict]:
    """The largest-gain record of every metric with a better direction (records come sorted by elasticity)."""
    seen: dict[str, dict] = {}
    for r in records:
        seen.setdefault(r["metric"], r)
    return sorted((r for r in seen.values() if r["better"] != "none"), key=lambda r: -r["elasticity"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(ROOT / "search_spaces" / "full.yaml"))
    ap.add_argument("--designs", type=int, default=2000)
    ap.add_argument("--step", type=float, default=0.02, help="relative step (integers step by at least 1)")
    ap.add_argument("--metrics", default="*", help="comma-separated globs over metric columns")
    ap.add_argument("--mix", default="balanced", help="evaluate this mix (every numeric column); 'none': area/cost")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--near", type=float, default=0.3,
                    help="share of the designs moved next to the chiplet split (logic ≈ 1–3 reticles)")
    ap.add_argument("--fail-above", type=float, default=None,
                    help="exit 1 if a gain not explained by a documented threshold has an elasticity above this")
    args = ap.parse_args(argv)

    space = load_space(args.space)
    columns, numeric = sample(space, args.designs, args.seed)
    columns = near_split(columns, space, args.near, args.seed)
    mix = None if args.mix == "none" else args.mix
    provider = mix_metrics(mix) if mix else cost_metrics
    limit = args.fail_above if args.fail_above is not None else 5.0
    violations: list[dict] = []
    records = hunt(columns, numeric, space, provider, args.step, args.metrics.split(","), mix, limit=limit,
                   violations=violations)
    print(f"{args.designs} designs of {space.name}{f' on mix {mix}' if mix else ''} ({args.near:.0%} next to the "
          f"chiplet split), +{args.step:.0%} steps of {', '.join(numeric)}")
    print("\nlargest gain per metric (gain in the metric's better direction; elasticity = gain / step):")
    best = per_metric(records)
    _table(best[:args.top])
    worst = best[0] if best else None
    if worst:
        print(f"\nworst: {worst['knob']} +{worst['step']:.1%} → {worst['metric']} {worst['gain']:+.1%} "
              f"({worst['before']:.4g} → {worst['after']:.4g}); design: {worst['design']}")
    unexplained = sorted((r for r in records if r["better"] != "none"), key=lambda r: -r["u_excess"])
    print(f"\nlargest gain NOT explained by a documented threshold (allowed: elasticity {limit:g}; array "
          f"knobs on performance metrics +{WAVE_GAIN:.0%}); excess > 1 is a cliff:")
    print(f"{'metric':34s} {'knob':20s} {'excess':>7s} {'elast.':>7s} {'gain':>8s} {'step':>6s} {'before':>11s} {'after':>11s}")
    for r in unexplained[:args.top]:
        print(f"{r['metric'][:34]:34s} {r['knob']:20s} {r['u_excess']:7.2f} {r['u_elasticity']:7.2f} {r['u_gain']:+8.1%} "
              f"{r['u_step']:6.1%} {r['u_before']:11.4g} {r['u_after']:11.4g}")
    cliffs = [r for r in unexplained if r["u_excess"] > 1.0 + 1e-9]
    print(f"\n{len(cliffs)} unexplained cliff(s)" + (f"; worst: {cliffs[0]['knob']} → {cliffs[0]['metric']} "
                                                    f"{cliffs[0]['u_gain']:+.1%}; design: {cliffs[0]['u_design']}"
                                                    if cliffs else ""))
    print(f"\nmonotonicity (a step up of {', '.join(GROWING)} never lowers {', '.join(NEVER_LOWER)}; "
          f"{', '.join(NEVER_LOWER_SAME_SPLIT)} at the same dies and spares; TDP across a split into fewer dies: "
          f"by at most the dropped die-to-die PHYs' power; a step up of {', '.join(FASTER)} never makes "
          f"{', '.join(goal_metrics(mix)) or 'no mix'} worse): {len(violations)} violation(s)")
    for v in sorted(violations, key=lambda v: -v["drop"])[:args.top]:
        print(f"  {v['knob']:20s} → {v['metric']:24s} lower on {v['rows']:4d} rows, worst −{v['drop']:.2%} "
              f"({v['before']:.6g} → {v['after']:.6g}); design: {v['design']}")
    if args.fail_above is not None and (cliffs or violations):
        return 1
    return 0


def _table(records: list[dict]) -> None:
    print(f"{'metric':34s} {'knob':20s} {'elast.':>7s} {'gain':>8s} {'step':>6s} {'before':>11s} {'after':>11s}"
          f" {'#>5':>5s}  changed with the step")
    for r in records:
        print(f"{r['metric'][:34]:34s} {r['knob']:20s} {r['elasticity']:7.2f} {r['gain']:+8.1%} {r['step']:6.1%} "
              f"{r['before']:11.4g} {r['after']:11.4g} {r['n_over_5']:5d}  {r['context']}")


if __name__ == "__main__":
    sys.exit(main())
