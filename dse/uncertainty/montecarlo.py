"""Monte-Carlo evaluation: every design × S samples of the technology ranges and of the model error.

How it is vectorized (designs × samples, common random numbers: every design sees the same S
technologies and the same model-error draws, so comparisons between designs are fair):
- design level (area, cost, power): the designs are repeated once per sample and each row carries its
  sample's constants (the row attributes of `DesignArrays` that copy a technology entry, e.g.
  `wafer_price_usd` per process node), so a few `design_metrics` calls cover all samples. The first
  sample moving a constant is checked against a build with that technology; a constant read elsewhere
  (not per row) makes every later sample be built instead (correct for every range, slower).
- performance: most ranges are prices (wafers, HBM, packages, electricity) that change no performance
  input. Where a sample's `HwView` and feasibility equal the nominal ones the per-scenario columns are
  reused, with the money-per-token columns (unit `US$ …`) scaled by the sample's hourly TCO at the
  scenario's power over the nominal one (they are linear in it). The (sample, design) pairs whose
  performance inputs or feasibility moved (a range on a bandwidth, or a price that changes the cheapest
  chiplet split) are evaluated together, once per distinct (design, performance inputs, reference): a
  design whose split moves in many samples has few distinct splits. Their money per token is rescaled
  to each pair's hourly TCO.

Model error (dse.uncertainty.model_error) is a multiplicative lognormal exp(σ·z) per scenario and
sample, applied to time columns (unit `ms`: ×, rates `…/s`: ÷, `US$` per token: ×) and carried into
the mix cost per token (the throughput ratio to the reference design is unchanged: the reference
carries the same factor).

Sampling: one stratified (Latin hypercube) uniform per sample and per technology field name, shared by
every entry with that field (all wafer prices move together, all defect densities together, …: a market
level, not independent per node).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from dse import pareto
from dse.evaluate.metrics import metric_info
from dse.catalog import load_catalog_design
from dse.evaluate.table import design_metrics, evaluate, reference_throughputs
from dse.model.calibration import load_calibration
from dse.model.arrays import ROW_SUFFIX_KNOBS, DesignArrays
from dse.model.knobs import BY_NAME, KNOBS
from dse.model.area import AreaBreakdown, chip_area, split_costs
from dse.model.cost import chip_cost, tco_usd_per_hour
from dse.model.perf import HwView
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


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's quantile interpolation, operation for operation (so the values are the same bits)."""
    diff = b - a
    out = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=out, where=t >= 0.5)
    return out


def sorted_quantiles(v: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """np.quantile(v, qs, axis=0) (its default linear method) from one sort of the samples: a few times
    faster than its partition over the samples axis; checked against np.quantile on a slice, which it
    falls back to if they ever differ (another numpy)."""
    v = np.asarray(v, dtype=float)
    q = np.asarray(qs, dtype=float)
    m = v.shape[0]
    s = np.sort(v, axis=0)
    virtual = m * q + (1 + q * (1 - 1 - 1)) - 1  # numpy's virtual index, alpha = beta = 1
    lo = np.floor(virtual).astype(np.intp)
    above, below = virtual >= m - 1, virtual < 0
    hi = np.where(above, m - 1, np.where(below, 0, lo + 1))
    lo = np.where(above, m - 1, np.where(below, 0, lo))
    gamma = (virtual - np.floor(virtual)).reshape((-1,) + (1,) * (v.ndim - 1))
    out = _lerp(s[lo], s[hi], gamma)
    if v.ndim > 1 and np.isnan(s[-1]).any():
        out[:, np.isnan(s[-1])] = np.nan
    check = (slice(None),) + (slice(0, 8),) * (v.ndim - 1)
    if not np.array_equal(out[check], np.quantile(v[check], q, axis=0), equal_nan=True):
        return np.quantile(v, q, axis=0)
    return out


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
        return {c: sorted_quantiles(v, qs) for c, v in self.samples.items()}

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


STACK_ROWS = 1 << 16  # rows per stacked design-level pass: amortises numpy's per-call cost over samples
# at a few tens of MB (benchmarks/uncertainty_speed.py)


@functools.lru_cache(maxsize=None)
def _row_attributes(path: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The (DesignArrays attribute, selecting str knob) pairs that carry technology constant `path` = (table,
    entry, field) into each row unchanged, e.g. process_nodes.n5.wafer_price_usd → (wafer_price_usd,
    chip.process_node) and, for the I/O dies, (wafer_price_usd_io, chip.io_die_node) (arrays.ROW_SUFFIX_KNOBS);
    () when no single attribute does."""
    if len(path) != 3:
        return ()
    suffixed = set(ROW_SUFFIX_KNOBS.values())
    knob = next((k.name for k in KNOBS if k.table == path[0] and k.name not in suffixed), None)
    names = {f.name for f in dataclasses.fields(DesignArrays)}
    attrs = [a for a in sorted(names) if a == path[2] or a.endswith("_" + path[2])]
    if not knob or len(attrs) != 1:
        return ()
    extra = tuple((attrs[0] + suffix, other) for suffix, other in ROW_SUFFIX_KNOBS.items()
                  if attrs[0] + suffix in names and BY_NAME[other].table == path[0])
    return ((attrs[0], knob),) + extra


def _patched(arr: DesignArrays, values: Sequence[Mapping[tuple[str, ...], float]], design: np.ndarray,
             sample: np.ndarray) -> DesignArrays:
    """Rows `design` of `arr`, row i carrying the constants of sample `sample[i]` (those a row attribute
    carries; others, e.g. the electricity price, enter later through the technology)."""
    big = arr.take(design)
    for path in {p for vals in values for p in vals if _row_attributes(p)}:
        v = np.array([vals.get(path, np.nan) for vals in values])[sample]
        for attr, knob in _row_attributes(path):
            col = getattr(big, attr)
            hit = (np.asarray(big.names[knob]) == path[1]) & np.isfinite(v)
            col[:] = np.where(hit, v, col)
    return big


# the row attributes a sample may move without changing any geometry: the automatic split's chip cost is
# then linear in the prices and grows with the defect density (yield), which _SplitBounds relies on
SPLIT_PRICES = ("wafer_price_usd", "wafer_price_usd_io", "mem_usd_per_gb", "pkg_usd_per_mm2")
SPLIT_YIELD = ("defect_density_per_cm2", "defect_density_per_cm2_io")
SPLIT_SLACK = 1e-9  # relative: far above the rounding between area's and cost's pricing of one split


@dataclass
class _SplitBounds:
    """Bounds on the automatic split under the samples, so each stacked (design, sample) row searches only
    the die counts that may be the cheapest, and not at all when one count and one spare choice remain
    (the search dominated the Monte-Carlo time: 12 counts × 17 spare choices per row). A split's chip
    cost is linear in the prices, with coefficients that grow with the defect density: at a sample's
    prices p a count costs at least p_wafer·cw + p_pkg·cp + memory·cq, the coefficients being each one's
    smallest over the spare choices at the lowest sampled defect density (cw: the cost with wafer at $1
    and nothing else priced, cp: package at $1/mm², cq: $1 of memory), and a spare choice of the nominal
    count at least its own coefficients' sum (sw, sp, sq). The nominal split (n0 dies, s0 spares) is a
    choice of every sample with the same geometry: priced at the sample (cost.chip_cost) it bounds the
    cheapest from above where every spare choice the search may take for n0 fits (it takes a count's
    cheapest spare choice, then checks that it fits). A count or spare choice whose lower bound exceeds that is never
    chosen, nor is a count that fits under no spare choice."""

    cw: np.ndarray        # (max_auto_dies, n) per count: cost per $ of wafer, per $/mm² of package, per $ of memory
    cp: np.ndarray
    cq: np.ndarray
    may_fit: np.ndarray
    area: AreaBreakdown   # the nominal split
    fits: np.ndarray      # (n,) the nominal split fits (reticle, die edge, package)
    always: np.ndarray    # (n,) ... and so does every spare choice of its count
    spare_free: np.ndarray  # (n,) no spare choice: a die count's geometry is the same at every sample
    spare: np.ndarray     # (3, spare choices, n) the same coefficients per spare choice of n0 dies
    spare_ok: np.ndarray  # (spare choices, n) the choice may be taken (fits the reticle, within the cap)
    spare_fits: np.ndarray  # (spare choices, n) the choice fits (reticle, die edge, package)

    @classmethod
    def build(cls, arr: DesignArrays, area: AreaBreakdown, values: Sequence[Mapping[tuple[str, ...], float]]
              ) -> "_SplitBounds | None":
        """The bounds for `values`, or None when a sampled constant is not a price or a defect density
        (e.g. an area density: the geometry moves) or the cost is not linear in the prices."""
        attrs = {a for vals in values for p in vals for a, _ in _row_attributes(p)}
        if not arr.n or not attrs <= set(SPLIT_PRICES + SPLIT_YIELD):
            return None
        defects = {p for vals in values for p in vals if any(a in SPLIT_YIELD for a, _ in _row_attributes(p))}
        low = {p: min(vals[p] for vals in values if p in vals) for p in defects}  # the lowest sampled densities
        rows, zero = np.arange(arr.n), np.zeros(arr.n, int)

        def unit_rows(wafer: float, package: float, memory: float, take=rows) -> DesignArrays:
            """Rows `take` at the lowest defect densities with only the given prices."""
            a = _patched(arr, [low], take, zero[:len(take)])
            a.wafer_price_usd[:] = wafer
            a.wafer_price_usd_io[:] = wafer
            a.pkg_usd_per_mm2[:] = package
            a.mem_usd_per_gb[:] = np.where(a.mem_gb > 0, memory / np.where(a.mem_gb > 0, a.mem_gb, 1.0), 0.0)
            return a

        def priced(wafer: float, package: float, memory: float, take=rows) -> dict[str, np.ndarray]:
            return split_costs(unit_rows(wafer, package, memory, take), geometry=False)

        if np.any(priced(0.0, 0.0, 0.0, rows[:256])["chip_usd"] != 0):  # a cost outside the prices: no bound
            return None
        top = arr.tech.chiplets.max_auto_dies
        n0 = area.num_dies.astype(float)
        geometry = split_costs(arr, priced=False)
        most = geometry["spares_max"]
        nominal = split_costs(arr, dies=n0)  # the nominal split, priced as the search does
        # the search takes a count's cheapest spare choice, then checks that it fits: the nominal count
        # bounds a sample's cheapest only if every choice it may take there fits
        fits = (n0 >= 1) & (n0 <= top) & nominal["ok"][0]
        always = nominal["always_fits"][0]
        used = fits | (most > 0)
        if not np.allclose(nominal["chip_usd"][0][used], chip_cost(arr, area).chip_usd[used], rtol=SPLIT_SLACK,
                           atol=0):
            return None  # cost.py prices the split otherwise than the search: no upper bound
        coef = np.zeros((3, top, arr.n))  # only the rows whose nominal split fits bound the counts
        for j, unit in enumerate(np.eye(3)):
            coef[j][:, fits] = priced(*unit, take=rows[fits])["chip_usd"]
        cap = int(most.max(initial=0))
        spare, spare_ok = np.zeros((3, cap + 1, arr.n)), np.zeros((cap + 1, arr.n), bool)
        spare_fits = np.ones((cap + 1, arr.n), bool)
        choose = np.flatnonzero(most > 0)
        units = [unit_rows(*unit, take=choose) for unit in np.eye(3)] if len(choose) else []
        for s in range(cap + 1) if len(choose) else ():
            for j, a in enumerate(units):
                r = split_costs(a, geometry=False, dies=n0[choose], spares=float(s))
                spare[j, s, choose] = r["chip_usd"][0]
            spare_ok[s, choose] = r["reticle_ok"][0] & (s <= most[choose])
            spare_fits[s, choose] = r["ok"][0]
        return cls(cw=coef[0], cp=coef[1], cq=coef[2], may_fit=geometry["may_fit"], area=area, fits=fits,
                   always=always, spare_free=most == 0, spare=spare, spare_ok=spare_ok, spare_fits=spare_fits)

    def chip_area(self, big: DesignArrays, design: np.ndarray) -> AreaBreakdown:
        """chip_area(big) (row i = design[i] under its sample's constants), searching only the die counts
        that may be cheapest; a row left the nominal count and spare choice has the nominal geometry (and
        reasons), which is copied."""
        out = {f.name: getattr(self.area, f.name)[design] for f in dataclasses.fields(AreaBreakdown)}
        lo, hi, upper = self._ranges(big, design, AreaBreakdown(**out))
        # a design with I/O dies always searches: their count is a priced choice the sample's prices may move
        # (e.g. 5 -> 6 I/O dies of a one-die chip at a cheaper wafer), which no bound here covers
        one = (lo == hi) & ~np.asarray(big.has_io_die, bool)
        fixed = one & self.spare_free[design]
        check = np.flatnonzero(one & ~self.spare_free[design])
        if len(check):
            fixed[check] = self._nominal_spares(big, design, check, upper[check])
        search = np.flatnonzero(~fixed)
        if len(search):
            part = chip_area(big.take(search) if len(search) < big.n else big, (lo[search], hi[search]))
            for k, v in out.items():
                v[search] = getattr(part, k)
        return AreaBreakdown(**out)

    def dies_between(self, big: DesignArrays, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) die counts per row of `big` (row i = design[i] under its sample's constants) for
        chip_area's `dies_between`."""
        return self._ranges(big, design)[:2]

    @staticmethod
    def _prices(big: DesignArrays, rows=slice(None)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(wafer, package, memory) prices of rows: the cheaper wafer with I/O dies on another node."""
        wafer = np.where(big.has_io_die, np.minimum(big.wafer_price_usd, big.wafer_price_usd_io), big.wafer_price_usd)
        return wafer[rows], big.pkg_usd_per_mm2[rows], (big.mem_gb * big.mem_usd_per_gb)[rows]

    def _ranges(self, big: DesignArrays, design: np.ndarray, nominal: AreaBreakdown | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lo, hi, cost of the nominal split) per row (`nominal`: its rows `design`, if taken already)."""
        top = self.cw.shape[0]
        if nominal is None:
            nominal = AreaBreakdown(**{f.name: getattr(self.area, f.name)[design]
                                       for f in dataclasses.fields(AreaBreakdown)})
        upper = chip_cost(big, nominal).chip_usd
        wafer, package, memory = self._prices(big)
        lower = wafer * self.cw[:, design] + package * self.cp[:, design] + memory * self.cq[:, design]
        may_fit = self.may_fit[:, design]
        count = np.arange(1, top + 1)[:, None]
        n0 = self.area.num_dies[design]
        alive = (may_fit & (lower <= upper * (1 + SPLIT_SLACK))) | (count == n0)
        lo = count[np.argmax(alive, axis=0), 0].astype(float)
        hi = count[top - 1 - np.argmax(alive[::-1], axis=0), 0].astype(float)
        fits = self.fits[design].copy()
        some = np.flatnonzero(fits & ~self.always[design])  # n0 fits with some spare choices only: with
        if len(some):  # those the search may take at this sample (cheaper than the nominal spares)
            fits[some] = self._spares_fit(big, design, some, upper[some])
        lo = np.where(fits, lo, 1.0)  # the nominal split does not fit: every count ...
        hi = np.where(fits, hi, float(top))
        # ... unless no count fits under any spare choice (the search keeps its first, n0; not with I/O dies,
        # whose count is a priced choice the sample's prices may move), or n0 lies beyond the counts compared
        # (its only candidate)
        keep = ~fits & ~may_fit.any(axis=0) & ~np.asarray(big.has_io_die, bool) | (n0 < 1) | (n0 > top)
        return np.where(keep, n0, lo), np.where(keep, n0, hi), upper

    def _cheaper_spares(self, big: DesignArrays, design: np.ndarray, rows: np.ndarray, upper: np.ndarray
                        ) -> np.ndarray:
        """(spare choices, rows) the choices of the nominal count other than the nominal one that the
        search may take at rows' samples (their lower bound does not exceed the nominal split's cost)."""
        d = design[rows]
        wafer, package, memory = self._prices(big, rows)
        lower = wafer * self.spare[0][:, d] + package * self.spare[1][:, d] + memory * self.spare[2][:, d]
        s0 = self.area.spare_cores[d] / np.maximum(self.area.num_dies[d], 1)
        other = self.spare_ok[:, d] & (np.arange(self.spare.shape[1])[:, None] != s0)
        return other & (lower <= upper * (1 + SPLIT_SLACK))

    def _nominal_spares(self, big: DesignArrays, design: np.ndarray, rows: np.ndarray, upper: np.ndarray
                        ) -> np.ndarray:
        """True for rows (left the nominal count alone) where every other spare choice costs more than the
        nominal one: the search takes the nominal spares."""
        return ~self._cheaper_spares(big, design, rows, upper).any(axis=0)

    def _spares_fit(self, big: DesignArrays, design: np.ndarray, rows: np.ndarray, upper: np.ndarray
                    ) -> np.ndarray:
        """True for rows where every spare choice the search may take for the nominal count fits: the
        count's candidate fits at the sample and the nominal split's cost bounds the cheapest."""
        return ~(self._cheaper_spares(big, design, rows, upper) & ~self.spare_fits[:, design[rows]]).any(axis=0)


def _same_design_metrics(a: tuple, b: tuple) -> bool:
    """True when two `design_metrics` results are identical (HwView, columns, feasible, reason)."""
    return (not _changed_rows(a[0], b[0]).any() and a[1].keys() == b[1].keys()
            and all(np.array_equal(a[1][c], b[1][c]) for c in a[1])
            and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3]))


def _hw_columns(hw: HwView, ignore: tuple[str, ...] = ()) -> list[np.ndarray]:
    """Every field of an HwView but `ignore` as float columns (dict fields one column per key)."""
    out = []
    for f in dataclasses.fields(hw):
        v = getattr(hw, f.name)
        if f.name in ignore or v is None:
            continue
        for a in (v[k] for k in sorted(v)) if isinstance(v, dict) else (v,):
            out.append(np.asarray(a, float))
    return out


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
    cal = load_calibration(software)
    arr = build(tech)
    nominal = evaluate(arr, mix, tech, cal=cal)
    cols = [c for c in nominal if _numeric(c, mix)]
    n = arr.n
    area0 = chip_area(arr)
    hw0, d0, ok0, _ = design_metrics(arr, area0)
    money = [c for c in cols if c not in d0 and (metric_info(c, mix).metric.unit_for(None) or "").startswith("US$")]
    # money per token of a scenario is its hourly TCO (at the power it draws) over its tokens per hour
    power_of = {c: f"{metric_info(c, mix).scenario}.power_w" for c in money if metric_info(c, mix).scenario is not None}

    def hourly(d, t) -> dict[str, np.ndarray]:
        """Hourly TCO per money column at the nominal power the scenario draws (the mix's column is
        recomputed from its scenarios')."""
        return {c: np.asarray(tco_usd_per_hour(d["system_cost_usd"], nominal.get(p, 0.0), t), float)
                for c, p in power_of.items()}

    hour0 = hourly(d0, tech)
    llm = [e for e in mix.scenarios if e.scenario.kind != "cnn" and f"{e.scenario.name}.usd_per_mtok" in hour0]
    ref_design = load_catalog_design(getattr(mix, "reference_design", None) or "H100-SXM")
    ref_arr = DesignArrays.from_designs([ref_design], tech)
    ref_hw0 = design_metrics(ref_arr)[0]
    ref_stacked = None  # the reference under every sample, in one pass (while samples are stacked)
    ref0 = reference_throughputs(mix, cal, tech)
    values = sample_technology_values(tech, samples, seed) if values is None else list(values)
    samples = len(values)
    out = {c: np.empty((samples, n)) for c in cols}
    ignore = () if exact else ("static_w",)
    full = 0
    stack = n > 0  # design-level passes over stacked samples (checked against a build, see below)
    per_pass = max(1, STACK_ROWS // max(n, 1))
    verified: set[tuple[str, ...]] = set()
    big = None
    refs: list[dict[str, float]] = [ref0]  # distinct reference throughputs of the samples
    pairs: list[tuple[int, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []  # (sample, rows, key, design cols)
    techs: dict[int, Technology] = {}  # each sample's technology
    bounds = _SplitBounds.build(arr, area0, values) if stack else None
    for s, vals in enumerate(values):
        tech_s = techs[s] = tech.with_values(vals) if vals else tech
        if stack and s % per_pass == 0:  # one design-level pass over the next samples' rows
            k = len(values[s:s + per_pass])
            design = np.tile(np.arange(n), k)
            rows_arr = _patched(arr, values, design, np.repeat(np.arange(s, s + k), n))
            big = design_metrics(rows_arr, None if bounds is None else bounds.chip_area(rows_arr, design))
        if stack:
            rows = np.arange(n) + (s % per_pass) * n
            dm = (big[0].take(rows), {c: v[rows] for c, v in big[1].items()}, big[2][rows], big[3][rows])
            new = {p for p in vals if p not in verified}
            if new:  # the first sample that moves a constant checks the patched rows against a build
                built = design_metrics(build(tech_s))
                verified |= new
                if not _same_design_metrics(built, dm):
                    stack, big, dm = False, None, built  # a constant is also read elsewhere: build every sample
        else:
            dm = design_metrics(build(tech_s) if vals else arr)
        hw_s, d_s, ok_s, _ = dm
        hour = hourly(d_s, tech_s)
        for c in cols:
            if c in hour:
                out[c][s] = nominal[c] * np.where(hour0[c] > 0, hour[c] / np.where(hour0[c] > 0, hour0[c], 1.0), 1.0)
            else:
                out[c][s] = d_s[c] if c in d_s else nominal[c]
        if "tco_usd_per_mtok" in out and llm:
            out["tco_usd_per_mtok"][s] = _mix_usd_per_mtok(out, llm, s, nominal["tco_usd_per_mtok"])
        redo = np.flatnonzero(_changed_rows(hw0, hw_s, ignore) | (ok_s != ok0))
        if not len(redo):
            continue
        # rows whose performance inputs moved (e.g. the cheapest chiplet split changed)
        if stack and ref_stacked is None:
            ref_stacked = design_metrics(_patched(ref_arr, values, np.zeros(samples, int), np.arange(samples)))[0]
        ref_hw = ref_stacked.take(np.array([s])) if stack else design_metrics(
            DesignArrays.from_designs([ref_design], tech_s))[0]
        same_ref = not _changed_rows(ref_hw0, ref_hw, ("static_w",)).any()  # throughputs ignore static power
        ref_s = ref0 if same_ref else reference_throughputs(mix, cal, tech_s)
        if not stack:  # built rows: evaluate them with this sample's technology
            full += len(redo)
            res = evaluate(build(tech_s).take(redo), mix, tech_s, cal=cal, reference=ref_s)
            for c in cols:
                out[c][s, redo] = res[c]
            continue
        if ref_s not in refs:
            refs.append(ref_s)
        key = np.column_stack([redo, ok_s[redo], np.full(len(redo), refs.index(ref_s)),
                               *_hw_columns(hw_s.take(redo), ignore)])
        pairs.append((s, redo, key, {"system_cost_usd": d_s["system_cost_usd"][redo]}))
    if pairs:
        full += _evaluate_pairs(pairs, arr, values, techs, refs, out, cols, d0, power_of, llm, mix, tech, cal)
    factors = _apply_model_error(out, cols, mix, samples, seed, software, error_data) if model_error else {}
    return MonteCarlo(mix=mix, nominal=nominal, samples=out, tech_values=values, error_factor=factors,
                      full_evaluations=full)


def _mix_usd_per_mtok(out: dict[str, np.ndarray], llm: list, s: Any, was: np.ndarray) -> np.ndarray:
    """The mix's money per token from its LLM scenarios' (sample rows `s`), 0 where it was 0 (the design
    cannot run the mix), as dse.evaluate.table.evaluate averages it."""
    w = sum(float(e.weight) for e in llm)
    total = sum(float(e.weight) * out[f"{e.scenario.name}.usd_per_mtok"][s] for e in llm)
    return np.where(was != 0, total / w, 0.0)


def _distinct_rows(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse) of the distinct rows of a float matrix compared byte-wise, as np.unique(key, axis=0,
    return_index=True, return_inverse=True) gives them (groups in another order): rows are grouped by a
    hash of their bits, then each group is checked to hold equal rows (np.unique sorts wide rows slowly)."""
    bits = np.ascontiguousarray(key, dtype=float).view(np.uint64)
    h = (bits * (np.random.default_rng(0).integers(1, 1 << 62, bits.shape[1], dtype=np.uint64) | 1)).sum(axis=1)
    order = np.argsort(h, kind="stable")
    hs, bs = h[order], bits[order]
    new = np.r_[True, hs[1:] != hs[:-1]]
    if (bs[1:][~new[1:]] != bs[:-1][~new[1:]]).any():  # two different rows hashed alike: sort them
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        return first, inverse.ravel()
    inverse = np.empty(len(h), int)
    inverse[order] = np.cumsum(new) - 1
    return order[new], inverse


def _evaluate_pairs(pairs: list, arr: DesignArrays, values: Sequence[Mapping[tuple[str, ...], float]], techs: dict,
                    refs: list[dict[str, float]], out: dict[str, np.ndarray], cols: list[str], d0: dict,
                    power_of: dict[str, str], llm: list, mix: Mix, tech: Technology, cal: Any) -> int:
    """Evaluate the (sample, design) pairs whose performance inputs moved, once per distinct (design,
    performance inputs, reference), in one `evaluate` per reference; write their performance columns
    into `out`, money per token rescaled to each pair's hourly TCO. Returns the evaluations made."""
    sample = np.concatenate([np.full(len(p[1]), p[0]) for p in pairs])
    design = np.concatenate([p[1] for p in pairs])
    key = np.concatenate([p[2] for p in pairs])
    cost = np.concatenate([p[3]["system_cost_usd"] for p in pairs])
    first, inverse = _distinct_rows(key)
    ref_of = key[first, 2].astype(int)
    res = {c: np.empty(len(first)) for c in cols}
    for g in np.unique(ref_of):  # the patched rows carry their sample's prices; TCO at the nominal tech
        at = np.flatnonzero(ref_of == g)
        r = evaluate(_patched(arr, values, design[first[at]], sample[first[at]]), mix, tech, cal=cal,
                     reference=refs[g])
        for c in cols:
            res[c][at] = r[c]
    perf = [c for c in cols if c not in d0]
    for s in np.unique(sample):
        j = np.flatnonzero(sample == s)
        u = inverse[j]
        tech_s = techs[s]
        for c in perf:
            v = res[c][u]
            if c in power_of:  # money ∝ hourly TCO: this pair's cost and technology over the evaluated row's
                p = res[power_of[c]][u]
                h = np.asarray(tco_usd_per_hour(cost[j], p, tech_s), float)
                h0 = np.asarray(tco_usd_per_hour(cost[first[u]], p, tech), float)
                v = v * np.where(h0 > 0, h / np.where(h0 > 0, h0, 1.0), 1.0)
            out[c][s, design[j]] = v
        if "tco_usd_per_mtok" in out and llm:
            scen = (f"{e.scenario.name}.usd_per_mtok" for e in llm)  # the columns the mix's cost averages
            out["tco_usd_per_mtok"][s, design[j]] = _mix_usd_per_mtok(
                {c: out[c][s, design[j]] for c in scen}, llm, slice(None), res["tco_usd_per_mtok"][u])
    return len(first)


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
