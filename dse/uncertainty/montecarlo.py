"""Monte-Carlo evaluation: every design × S samples of the technology ranges and of the model error.

How it is vectorized: each sample is one technology (`Technology.with_values`) evaluated over all n
designs at once, with common random numbers (every design sees the same S technologies and the same
model-error draws, so comparisons between designs are fair). Most ranges are prices (wafers, HBM,
packages, electricity) that change no performance input: when a sample's `HwView` and feasibility equal
the nominal ones, only the design-level metrics (area, cost, power: `design_metrics`) are recomputed
and the per-scenario performance columns are reused, with the money-per-token columns (unit `US$ …`)
scaled by the sample's hourly TCO at the scenario's power over the nominal one (they are linear in it). The designs whose
performance inputs or feasibility did move in a sample (a range on a bandwidth, or a price that changes
the cheapest chiplet split) get a full `evaluate` of just those rows (correct for every range). Model error (dse.uncertainty.model_error) is a
multiplicative lognormal exp(σ·z) per scenario and sample, applied to time columns (unit `ms`: ×,
rates `…/s`: ÷, `US$` per token: ×) and carried into the mix cost per token (the throughput ratio to
the reference design is unchanged: the reference carries the same factor).

Sampling: one stratified (Latin hypercube) uniform per sample and per technology field name, shared by
every entry with that field (all wafer prices move together, all defect densities together, …: a market
level, not independent per node).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dse import pareto
from dse.evaluate.metrics import metric_info
from dse.catalog import load_catalog_design
from dse.evaluate.table import design_metrics, evaluate, reference_throughputs
from dse.model.calibration import load_calibration
from dse.model.arrays import DesignArrays
from dse.model.cost import tco_usd_per_hour
from dse.model.technology import Technology, default_technology
from dse.uncertainty.model_error import sigma_for
from dse.workloads.scenarios import Mix, load_mix

QUANTILES = (0.1, 0.5, 0.9)
Builder = Callable[[Technology], DesignArrays]


def latin_uniforms(samples: int, dims: int, rng: np.random.Generator) -> np.ndarray:
    """(samples, dims) uniforms in (0, 1), one stratum of width 1/samples per sample in every dimension."""
    u = (np.arange(samples)[:, None] + rng.random((samples, dims))) / samples
    for j in range(dims):
        u[:, j] = u[rng.permutation(samples), j]
    return u


def sample_technology_values(tech: Technology, samples: int, seed: int = 0) -> list[dict[tuple[str, ...], float]]:
    """S dicts path → value drawn from `tech.uncertain()` (one stratified uniform per field name)."""
    ranges = tech.uncertain()
    fields = sorted({path[-1] for path, _ in ranges})
    u = latin_uniforms(samples, len(fields), np.random.default_rng(seed))
    col = {f: j for j, f in enumerate(fields)}
    vals = [d.sample(u[:, col[path[-1]]]) for path, d in ranges]
    return [{path: float(v[s]) for (path, _), v in zip(ranges, vals)} for s in range(samples)]


@dataclass
class MonteCarlo:
    """Nominal columns, sampled numeric columns (S, n), the technology values of each sample, and the
    model-error factor per scenario and sample; `full_evaluations` counts the (sample, design) pairs
    that needed a full evaluation."""

    mix: Mix
    nominal: dict[str, np.ndarray]
    samples: dict[str, np.ndarray]
    tech_values: list[dict[tuple[str, ...], float]]
    error_factor: dict[str, np.ndarray]
    full_evaluations: int

    @property
    def n_samples(self) -> int:
        return len(self.tech_values)

    def quantiles(self, qs: Sequence[float] = QUANTILES) -> dict[str, np.ndarray]:
        """column → (len(qs), n) quantiles over the samples."""
        return {c: np.quantile(v, qs, axis=0) for c, v in self.samples.items()}

    def prob_nondominated(self, objectives: Sequence[tuple[str, bool]]) -> np.ndarray:
        """(n,) share of samples in which each design is feasible and non-dominated on `objectives`
        ((column, maximize) pairs), among the designs of this evaluation."""
        n = len(self.nominal["feasible"])
        count = np.zeros(n)
        feas = self.samples.get("feasible", np.broadcast_to(self.nominal["feasible"].astype(float), (self.n_samples, n)))
        maximize = [m for _, m in objectives]
        for s in range(self.n_samples):
            ok = feas[s] > 0.5
            idx = np.flatnonzero(ok)
            if not len(idx):
                continue
            Y = np.column_stack([self.samples[c][s, idx] for c, _ in objectives])
            count[idx[pareto.nondominated_mask(Y, maximize)]] += 1
        return count / max(self.n_samples, 1)


def _numeric(column: str, mix: Mix) -> bool:
    info = metric_info(column, mix)
    return info is not None and info.metric.numeric or column == "feasible"


def _changed_rows(a: Any, b: Any, ignore: tuple[str, ...] = ()) -> np.ndarray:
    """(n,) True where two HwViews differ in any field but `ignore`."""
    diff = np.zeros(a.n, bool)
    for f in dataclasses.fields(a):
        if f.name in ignore:
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            if x.keys() != y.keys():
                return np.ones(a.n, bool)
            for k in x:
                diff |= np.asarray(x[k]) != np.asarray(y[k])
        elif (x is None) != (y is None):
            return np.ones(a.n, bool)
        elif x is not None:
            diff |= np.asarray(x) != np.asarray(y)
    return diff


def _error_rule(column: str, mix: Mix) -> int:
    """+1: scales with time (× factor), −1: a rate (÷ factor), 0: untouched by model error."""
    scenario, dot, _ = column.rpartition(".")
    info = metric_info(column, mix)
    if not dot or info is None or info.metric.scope != "scenario":
        return 0
    kind = next(e.scenario.kind for e in mix.scenarios if e.scenario.name == scenario)
    unit = info.metric.unit_for(kind)
    if unit == "ms" or unit.startswith("US$"):
        return 1
    return -1 if "/s" in unit else 0


def monte_carlo(build: Builder, mix: Mix | str, tech: Technology | None = None, *, samples: int = 64,
                seed: int = 0, model_error: bool = True, software: str | None = None,
                error_data: dict | None = None, exact: bool = False,
                values: list[dict[tuple[str, ...], float]] | None = None) -> MonteCarlo:
    """Evaluate the designs `build(tech)` makes on `mix` under S samples of the technology ranges (and of
    the model error, unless `model_error=False`), with common random numbers across designs.

    `exact=False` also reuses the performance columns when only the static power differs (defect
    density moves the spare-core choice and so the die area by a few %): then `energy_j_per_unit` keeps
    the nominal static share; `exact=True` re-evaluates such samples in full. `values` (path → value per
    sample) replaces the random technology samples, e.g. for finite differences."""
    mix = load_mix(mix) if isinstance(mix, str) else mix
    tech = tech or default_technology()
    arr = build(tech)
    nominal = evaluate(arr, mix, tech, cal=software)
    cols = [c for c in nominal if _numeric(c, mix)]
    n = arr.n
    hw0, d0, ok0, _ = design_metrics(arr)
    money = [c for c in cols if c not in d0 and (metric_info(c, mix).metric.unit_for(None) or "").startswith("US$")]

    def hourly(d, t) -> dict[str, np.ndarray]:
        """Hourly TCO per money column: a scenario's at the power it draws (nominal: the power columns
        are reused), the mix's as the mean of its scenarios' (recomputed below)."""
        return {c: np.asarray(tco_usd_per_hour(d["system_cost_usd"],
                                               nominal.get(f"{metric_info(c, mix).scenario}.power_w", 0.0), t), float)
                for c in money if metric_info(c, mix).scenario is not None}

    hour0 = hourly(d0, tech)
    llm = [e for e in mix.scenarios if f"{e.scenario.name}.usd_per_mtok" in hour0]
    ref_design = load_catalog_design(getattr(mix, "reference_design", None) or "H100-SXM")
    ref_hw0 = design_metrics(DesignArrays.from_designs([ref_design], tech))[0]
    ref0 = reference_throughputs(mix, load_calibration(software), tech)
    values = sample_technology_values(tech, samples, seed) if values is None else list(values)
    samples = len(values)
    out = {c: np.empty((samples, n)) for c in cols}
    full = 0
    for s, vals in enumerate(values):
        tech_s = tech.with_values(vals) if vals else tech
        arr_s = build(tech_s) if vals else arr
        hw_s, d_s, ok_s, _ = design_metrics(arr_s)
        hour = hourly(d_s, tech_s)
        for c in cols:
            if c in hour:
                out[c][s] = nominal[c] * np.where(hour0[c] > 0, hour[c] / np.where(hour0[c] > 0, hour0[c], 1.0), 1.0)
            else:
                out[c][s] = d_s[c] if c in d_s else nominal[c]
        if "tco_usd_per_mtok" in out and llm:
            mean = sum(float(e.weight) * out[f"{e.scenario.name}.usd_per_mtok"][s] for e in llm)
            mean0 = sum(float(e.weight) * nominal[f"{e.scenario.name}.usd_per_mtok"] for e in llm)
            out["tco_usd_per_mtok"][s] = nominal["tco_usd_per_mtok"] * np.where(mean0 > 0, mean / np.where(
                mean0 > 0, mean0, 1.0), 1.0)
        redo = np.flatnonzero(_changed_rows(hw0, hw_s, () if exact else ("static_w",)) | (ok_s != ok0))
        if len(redo):  # rows whose performance inputs moved (e.g. the cheapest chiplet split changed)
            full += len(redo)
            ref_hw = design_metrics(DesignArrays.from_designs([ref_design], tech_s))[0]
            same_ref = not _changed_rows(ref_hw0, ref_hw, ("static_w",)).any()  # throughputs ignore static power
            res = evaluate(arr_s.take(redo), mix, tech_s, cal=software, reference=ref0 if same_ref else None)
            for c in cols:
                out[c][s, redo] = res[c]
    factors = _apply_model_error(out, cols, mix, samples, seed, software, error_data) if model_error else {}
    return MonteCarlo(mix=mix, nominal=nominal, samples=out, tech_values=values, error_factor=factors,
                      full_evaluations=full)


def _apply_model_error(out: dict[str, np.ndarray], cols: list[str], mix: Mix, samples: int, seed: int,
                       software: str | None, error_data: dict | None) -> dict[str, np.ndarray]:
    """Scale the time columns by exp(σ·z) per scenario and sample (common to all designs); recompute
    tco_usd_per_mtok from the scaled per-scenario costs. mix.throughput is a ratio to the reference
    design, which the model predicts with the same error, so a common factor cancels there."""
    rng = np.random.default_rng([seed, 1])
    factors: dict[str, np.ndarray] = {}
    for entry in mix.scenarios:
        sc = entry.scenario
        sigma = sigma_for(sc, software, error_data)
        factors[sc.name] = np.exp(sigma * rng.standard_normal(samples))
        for c in cols:
            if c.startswith(sc.name + "."):
                rule = _error_rule(c, mix)
                if rule:
                    out[c] *= (factors[sc.name] ** rule)[:, None]
    llm = [e for e in mix.scenarios if e.scenario.kind != "cnn" and f"{e.scenario.name}.usd_per_mtok" in out]
    if "tco_usd_per_mtok" in out and llm:
        w = sum(float(e.weight) for e in llm)
        total = sum(float(e.weight) * out[f"{e.scenario.name}.usd_per_mtok"] for e in llm)
        out["tco_usd_per_mtok"] = np.where(out["tco_usd_per_mtok"] != 0, total / w, 0.0)
    return factors


def monte_carlo_designs(designs: Sequence[Any], mix: Mix | str, tech: Technology | None = None, **kw: Any) -> MonteCarlo:
    """`monte_carlo` over pydantic `Design`s."""
    return monte_carlo(lambda t: DesignArrays.from_designs(designs, t), mix, tech, **kw)


def monte_carlo_columns(columns: Mapping[str, Any], mix: Mix | str, tech: Technology | None = None, **kw: Any) -> MonteCarlo:
    """`monte_carlo` over dotted-knob columns (as `DesignArrays.from_columns` takes them)."""
    return monte_carlo(lambda t: DesignArrays.from_columns(columns, t), mix, tech, **kw)


__all__ = ["MonteCarlo", "monte_carlo", "monte_carlo_designs", "monte_carlo_columns", "sample_technology_values",
           "latin_uniforms", "QUANTILES"]
