"""`DesignArrays`: many designs as a struct of numpy arrays, with technology values resolved per row.

This is the hot path of studies: string knobs are resolved with `np.unique` + table lookups, numeric
work is vectorized, and bad values never raise: the row is kept and flagged in `valid` / `reason`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dse.config import suggest
from dse.model.hardware import ChipDesign, Design, SystemDesign
from dse.model.technology import Technology

TOPOLOGIES = ("ring", "torus2d", "switch")

# dotted knob → (default, kind); kinds: int, float, opt (float or None), bool, str
_CHIP_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in ChipDesign.model_fields.items()}
_SYS_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in SystemDesign.model_fields.items()}
INT_KNOBS = ("chip.cores", "chip.array_rows", "chip.array_cols", "chip.memory_stacks", "chip.links",
             "system.num_chips")
FLOAT_KNOBS = ("chip.clock_ghz", "chip.sram_mb")
OPT_KNOBS = ("chip.vector_flops_per_cycle", "chip.sram_tbps", "chip.memory_gbps_per_stack",
             "chip.memory_gb_per_stack", "chip.dies", "chip.tdp_w", "system.link_latency_us")
BOOL_KNOBS = ("chip.sparsity_2to4", "chip.allow_chiplets")
STR_KNOBS = ("chip.process_node", "chip.memory", "chip.link", "chip.packaging", "chip.sram_kind",
             "chip.core_style", "system.topology")


# sanity bounds: beyond them a row is flagged invalid and its values clamped (keeps every output finite)
MAX_CORES, MAX_ARRAY, MAX_SRAM_MB, MAX_COUNT, MAX_CHIPS = 10_000_000, 4096, 10_000_000, 10_000, 10_000_000
MAX_DIES = 64  # assumed: the largest 2.5D packages hold ~12 dies (MI300X: 8 XCD + 4 IOD); headroom for tiles


def _default(knob: str) -> Any:
    section, key = knob.split(".", 1)
    return (_CHIP_DEFAULTS if section == "chip" else _SYS_DEFAULTS)[key]


class _Flags:
    """Accumulates per-row validity and '; '-joined reasons without per-row Python for valid rows."""

    def __init__(self, n: int):
        self.valid = np.ones(n, dtype=bool)
        self.reason = np.full(n, "", dtype=object)

    def flag(self, bad: np.ndarray, message: str | np.ndarray) -> None:
        if not bad.any():
            return
        idx = np.flatnonzero(bad)
        msgs = message[idx] if isinstance(message, np.ndarray) else np.full(len(idx), message, dtype=object)
        old = self.reason[idx]
        self.reason[idx] = np.where(old == "", msgs, old + "; " + msgs)
        self.valid[idx] = False


def _broadcast(col: Any, n: int) -> np.ndarray:
    arr = np.asarray(col, dtype=object) if isinstance(col, (list, tuple)) else np.asarray(col)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=object if arr.dtype == object else arr.dtype)
    return arr


def _numeric(columns: Mapping[str, Any], knob: str, n: int, flags: _Flags, optional: bool) -> np.ndarray:
    """Column as float64; None → NaN; non-numeric entries flagged (never raising)."""
    default = _default(knob)
    if knob not in columns:
        return np.full(n, np.nan if default is None else float(default))
    raw = _broadcast(columns[knob], n)
    try:
        out = raw.astype(np.float64)
    except (TypeError, ValueError):
        out = np.empty(n)
        bad = np.zeros(n, dtype=bool)
        for i, v in enumerate(raw):  # rare: mixed / textual column
            try:
                out[i] = np.nan if v is None else float(v)
            except (TypeError, ValueError):
                out[i], bad[i] = np.nan, True
        flags.flag(bad, f"{knob}: not a number")
    return out  # range / NaN checks: _check_ranges


def _lookup(columns: Mapping[str, Any], knob: str, names: Sequence[str], n: int, flags: _Flags,
            what: str) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row's name in `names` (unknown → index 0 and a flagged reason), plus the str array."""
    raw = _broadcast(columns.get(knob, _default(knob)), n).astype(str)
    uniq, inv = np.unique(raw, return_inverse=True)
    pos = {name: i for i, name in enumerate(names)}
    table = np.array([pos.get(u, -1) for u in uniq], dtype=np.int64)
    idx = table[inv]
    bad = idx < 0
    if bad.any():
        msgs = np.array([f"{knob}: {suggest(u, names, what)}" for u in uniq], dtype=object)[inv]
        flags.flag(bad, msgs)
    return np.where(bad, 0, idx), raw


def _canon_precisions(col: Any, n: int) -> np.ndarray:
    """Each row's precision set as a canonical 'a,b,c' string (accepts lists or comma strings)."""
    if isinstance(col, str):
        return np.full(n, col.replace(" ", ""), dtype=object)
    if isinstance(col, (list, tuple)) and col and all(isinstance(c, str) for c in col) \
            and not any("," in c for c in col) and len(col) != n:
        return np.full(n, ",".join(col), dtype=object)
    arr = np.asarray(col, dtype=object) if not isinstance(col, np.ndarray) else col
    if arr.dtype.kind in "US":
        return np.char.replace(arr.astype(str), " ", "").astype(object)
    return np.array([v.replace(" ", "") if isinstance(v, str) else ",".join(v) for v in arr], dtype=object)


@dataclass
class DesignArrays:
    """Every knob and resolved technology value of `n` designs as arrays of shape (n,)."""

    n: int
    tech: Technology
    names: dict[str, np.ndarray]  # string knobs by dotted name (e.g. names['chip.memory'])
    valid: np.ndarray
    reason: np.ndarray
    speedup: dict[str, np.ndarray] = field(default_factory=dict)
    peak_tflops: dict[str, np.ndarray] = field(default_factory=dict)
    energy_pj_per_flop: dict[str, np.ndarray] = field(default_factory=dict)
    cols: dict[str, np.ndarray] = field(default_factory=dict)

    def __getattr__(self, name: str) -> np.ndarray:
        cols = self.__dict__.get("cols")
        if cols is not None and name in cols:
            return cols[name]
        raise AttributeError(name)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_designs(cls, designs: Iterable[Design], tech: Technology) -> "DesignArrays":
        """Struct of arrays from pydantic designs (their flat dotted fields)."""
        flats = [d.to_flat() for d in designs]
        keys = list(dict.fromkeys(k for f in flats for k in f))
        columns: dict[str, Any] = {}
        for k in keys:
            vals = [f.get(k) for f in flats]
            if k == "chip.precisions":
                columns[k] = np.array([",".join(v) for v in vals], dtype=object)
            elif k.startswith(("chip.", "system.")):
                columns[k] = np.array(vals, dtype=object)
        columns["name"] = np.array([f["name"] for f in flats], dtype=object)
        return cls.from_columns(columns, tech)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], tech: Technology) -> "DesignArrays":
        """Vectorized build from dotted-knob columns; missing knobs take the pydantic defaults."""
        n = _infer_n(columns)
        flags = _Flags(n)
        c: dict[str, np.ndarray] = {}
        for knob in INT_KNOBS + FLOAT_KNOBS:
            c[knob] = _numeric(columns, knob, n, flags, optional=False)
        for knob in OPT_KNOBS:
            c[knob] = _numeric(columns, knob, n, flags, optional=True)
        for knob in BOOL_KNOBS:
            raw = _broadcast(columns.get(knob, _default(knob)), n)
            c[knob] = np.asarray([_to_bool(v) for v in raw] if raw.dtype == object else raw, dtype=bool)

        node_names, mem_names = list(tech.process_nodes), list(tech.memories) + ["none"]
        link_names, pkg_names = list(tech.links) + ["none"], list(tech.packaging)
        node_i, node_s = _lookup(columns, "chip.process_node", node_names, n, flags, "process node")
        mem_i, mem_s = _lookup(columns, "chip.memory", mem_names, n, flags, "memory")
        link_i, link_s = _lookup(columns, "chip.link", link_names, n, flags, "link")
        pkg_i, pkg_s = _lookup(columns, "chip.packaging", pkg_names, n, flags, "packaging")
        kind_i, kind_s = _lookup(columns, "chip.sram_kind", ["scratchpad", "cache"], n, flags, "sram kind")
        style_i, style_s = _lookup(columns, "chip.core_style", ["systolic", "simt"], n, flags, "core style")
        topo_i, topo_s = _lookup(columns, "system.topology", list(TOPOLOGIES), n, flags, "topology")
        names = {"chip.process_node": node_s, "chip.memory": mem_s, "chip.link": link_s,
                 "chip.packaging": pkg_s, "chip.sram_kind": kind_s, "chip.core_style": style_s,
                 "system.topology": topo_s}
        if "name" in columns:
            names["name"] = _broadcast(columns["name"], n).astype(object)

        _check_ranges(c, flags)
        out: dict[str, np.ndarray] = {}

        def num(knob: str, default: float) -> np.ndarray:  # sanitized: bad/NaN → default, never NaN
            v = c[knob]
            return np.where(np.isfinite(v), v, default)

        cores, rows, cols_ = num("chip.cores", 1), num("chip.array_rows", 1), num("chip.array_cols", 1)
        # clamp to physical bounds (rows beyond them are flagged in _check_ranges) so nothing overflows
        cores = np.clip(np.rint(cores), 1, MAX_CORES)
        rows, cols_ = (np.clip(np.rint(x), 1, MAX_ARRAY) for x in (rows, cols_))
        clock = np.clip(num("chip.clock_ghz", 1.0), 1e-3, 10)
        macs = cores * rows * cols_
        out.update(cores=cores, array_rows=rows, array_cols=cols_, macs=macs, clock_ghz=clock)
        vec = c["chip.vector_flops_per_cycle"]
        out["vector_flops_per_cycle"] = np.where(np.isfinite(vec) & (vec >= 0), np.minimum(vec, 1e12),
                                                 2.0 * cores * cols_)

        # process node table
        nodes = list(tech.process_nodes.values())
        for attr in ("wafer_price_usd", "defect_density_per_cm2", "yield_alpha", "mac_area_um2",
                     "simt_area_factor", "vector_area_um2_per_flop_cycle", "sram_pj_per_byte",
                     "static_w_per_mm2", "uncore_fraction", "d2d_area_fraction", "d2d_pj_per_bit",
                     "reticle_mm2"):
            out[attr] = np.array([getattr(nd, attr) for nd in nodes])[node_i]
        is_cache = kind_i == 1
        sp = np.array([nd.sram_mm2_per_mb_scratchpad for nd in nodes])[node_i]
        ca = np.array([nd.sram_mm2_per_mb_cache for nd in nodes])[node_i]
        out["sram_mm2_per_mb"] = np.where(is_cache, ca, sp)
        gsp = np.array([nd.sram_gbps_per_mb for nd in nodes])[node_i]
        gca = np.array([nd.sram_gbps_per_mb_cache for nd in nodes])[node_i]
        out["is_simt"] = style_i == 1
        out["is_cache"] = is_cache

        sram_mb = np.clip(num("chip.sram_mb", 0.0), 0.0, MAX_SRAM_MB)
        sram_t = c["chip.sram_tbps"]
        out["sram_mb"] = sram_mb
        out["sram_tbps"] = np.where(np.isfinite(sram_t) & (sram_t > 0), np.minimum(sram_t, 1e9),
                                    sram_mb * np.where(is_cache, gca, gsp) * clock / 1000.0)

        # memory table (index len(memories) = none)
        mems = list(tech.memories.values())
        def mem_attr(attr: str, none_value: float = 0.0) -> np.ndarray:
            return np.array([float(getattr(m, attr)) for m in mems] + [none_value])[mem_i]
        has_mem = mem_i < len(mems)
        stacks = np.where(has_mem, np.clip(np.rint(num("chip.memory_stacks", 0)), 0, MAX_COUNT), 0)
        flags.flag(has_mem & (stacks == 0) & np.isfinite(c["chip.memory_stacks"]),
                   "chip.memory_stacks: a memory other than 'none' needs memory_stacks >= 1")
        gbps_o, gb_o = c["chip.memory_gbps_per_stack"], c["chip.memory_gb_per_stack"]
        gbps = np.where(np.isfinite(gbps_o) & (gbps_o > 0), np.minimum(gbps_o, 1e9), mem_attr("bw_gbps_per_stack"))
        gbps_stack = np.where(has_mem, gbps, 0.0)
        gb_stack = np.where(has_mem, np.where(np.isfinite(gb_o) & (gb_o > 0), np.minimum(gb_o, 1e9),
                                              mem_attr("capacity_gb_per_stack")), 0.0)
        out.update(memory_stacks=stacks, mem_bw_tbps=stacks * gbps_stack / 1000.0, mem_gb=stacks * gb_stack,
                   mem_pj_per_bit=mem_attr("pj_per_bit"), mem_usd_per_gb=mem_attr("usd_per_gb"),
                   mem_phy_mm2_per_stack=mem_attr("phy_area_mm2_per_stack"),
                   mem_needs_interposer=mem_attr("needs_interposer").astype(bool),
                   mem_footprint_mm2_per_stack=mem_attr("footprint_mm2_per_stack"), has_memory=has_mem)

        # links
        lks = list(tech.links.values())
        def link_attr(attr: str) -> np.ndarray:
            return np.array([float(getattr(lk, attr)) for lk in lks] + [0.0])[link_i]
        has_link = link_i < len(lks)
        links = np.where(has_link, np.clip(np.rint(num("chip.links", 0)), 0, MAX_COUNT), 0)
        lat_o = c["system.link_latency_us"]
        out.update(links=links, link_gbps=link_attr("gbps_per_link"), link_pj_per_bit=link_attr("pj_per_bit"),
                   link_phy_mm2=link_attr("phy_area_mm2"),
                   link_latency_us=np.where(np.isfinite(lat_o) & (lat_o >= 0), lat_o, link_attr("latency_us")))
        out["num_chips"] = np.clip(np.rint(num("system.num_chips", 1)), 1, MAX_CHIPS)
        out["topology"] = topo_i.astype(np.int64)

        # packaging
        pkgs = list(tech.packaging.values())
        for attr in ("usd_per_mm2", "assembly_yield_per_die", "max_interposer_mm2", "area_scale"):
            out[f"pkg_{attr}"] = np.array([getattr(p, attr) for p in pkgs])[pkg_i]
        out["wafer_scale"] = np.array([k == "wafer_scale" for k in tech.packaging])[pkg_i]
        out["pkg_is_interposer"] = np.array([k.startswith("cowos") for k in tech.packaging])[pkg_i]
        dies = c["chip.dies"]
        out["dies"] = np.where(np.isfinite(dies) & (dies >= 1), np.clip(np.rint(dies), 1, MAX_COUNT), 0)  # 0 = auto
        out["allow_chiplets"] = c["chip.allow_chiplets"]
        out["sparsity_2to4"] = c["chip.sparsity_2to4"]
        tdp = c["chip.tdp_w"]
        out["tdp_cap_w"] = np.where(np.isfinite(tdp) & (tdp > 0), tdp, 0.0)  # 0 = no cap

        speedup = _speedups(columns, n, tech, flags)
        peak = {p: 2.0 * macs * clock * s / 1000.0 for p, s in speedup.items()}
        energy = {p: np.array([nd.energy_pj_per_flop.get(p, nd.energy_pj_per_flop.get("bf16", 0.0))
                               for nd in nodes])[node_i] for p in speedup}
        headline = np.where(peak["bf16"] > 0, peak["bf16"], np.max(np.stack(list(peak.values())), axis=0))
        bw = np.where(out["mem_bw_tbps"] > 0, out["mem_bw_tbps"], out["sram_tbps"])
        ok = bw > 1e-9
        out["knee_flop_per_byte"] = np.where(ok, headline / np.where(ok, bw, 1.0), 0.0)
        out["peak_tflops_headline"] = headline
        return cls(n=n, tech=tech, names=names, valid=flags.valid, reason=flags.reason, speedup=speedup,
                   peak_tflops=peak, energy_pj_per_flop=energy, cols=out)

    # ------------------------------------------------------------------ helpers
    def row(self, i: int) -> dict[str, Any]:
        """Scalar view of one design's derived figures (used by the one-design wrappers)."""
        return {
            "macs": int(self.macs[i]),
            "peak_tflops": {p: float(v[i]) for p, v in self.peak_tflops.items() if v[i] > 0},
            "mem_bw_tbps": float(self.mem_bw_tbps[i]),
            "mem_gb": float(self.mem_gb[i]),
            "sram_mb": float(self.sram_mb[i]),
            "sram_tbps": float(self.sram_tbps[i]),
            "knee_flop_per_byte": float(self.knee_flop_per_byte[i]),
            "valid": bool(self.valid[i]),
            "reason": str(self.reason[i]),
        }

    def take(self, idx: np.ndarray) -> "DesignArrays":
        """Subset of rows (e.g. the valid ones), keeping every array aligned."""
        return DesignArrays(
            n=len(np.arange(self.n)[idx]), tech=self.tech, names={k: v[idx] for k, v in self.names.items()},
            valid=self.valid[idx], reason=self.reason[idx],
            speedup={k: v[idx] for k, v in self.speedup.items()},
            peak_tflops={k: v[idx] for k, v in self.peak_tflops.items()},
            energy_pj_per_flop={k: v[idx] for k, v in self.energy_pj_per_flop.items()},
            cols={k: v[idx] for k, v in self.cols.items()})


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v) if v is not None and v == v else False


def _infer_n(columns: Mapping[str, Any]) -> int:
    """Row count: the length of the first array-like column (a bare list of precision names is one row)."""
    for k, v in columns.items():
        if isinstance(v, str) or np.ndim(v) == 0:
            continue
        if k == "chip.precisions" and isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v) \
                and not any("," in x for x in v):
            continue
        return len(v)
    return 1


def _check_ranges(c: dict[str, np.ndarray], flags: _Flags) -> None:
    """Flag out-of-range numeric knobs (NaN compares False, so missing values are caught too)."""
    def bad_values(knob: str, ok: np.ndarray, rule: str) -> None:
        v = c[knob]
        bad = ~ok
        if bad.any():
            msgs = np.full(len(v), "", dtype=object)
            idx = np.flatnonzero(bad)
            msgs[idx] = [f"{knob} must be {rule} (got {v[i]:g})" for i in idx]
            flags.flag(bad, msgs)

    def is_int(v: np.ndarray) -> np.ndarray:
        return np.isfinite(v) & (np.rint(v) == v)

    bad_values("chip.cores", is_int(c["chip.cores"]) & (c["chip.cores"] > 0) & (c["chip.cores"] <= MAX_CORES),
               f"an integer in [1, {MAX_CORES:,}]")
    for knob in ("chip.array_rows", "chip.array_cols"):
        bad_values(knob, is_int(c[knob]) & (c[knob] > 0) & (c[knob] <= MAX_ARRAY), f"an integer in [1, {MAX_ARRAY}]")
    for knob in ("chip.memory_stacks", "chip.links"):
        bad_values(knob, is_int(c[knob]) & (c[knob] >= 0) & (c[knob] <= MAX_COUNT), f"an integer in [0, {MAX_COUNT}]")
    bad_values("system.num_chips", is_int(c["system.num_chips"]) & (c["system.num_chips"] >= 1)
               & (c["system.num_chips"] <= MAX_CHIPS), f"an integer in [1, {MAX_CHIPS:,}]")
    bad_values("chip.sram_mb", c["chip.sram_mb"] <= MAX_SRAM_MB, f"<= {MAX_SRAM_MB:,}")
    bad_values("chip.clock_ghz", (c["chip.clock_ghz"] > 0) & (c["chip.clock_ghz"] <= 10), "in (0, 10] GHz")
    bad_values("chip.sram_mb", c["chip.sram_mb"] >= 0, ">= 0")
    for knob in ("chip.sram_tbps", "chip.memory_gbps_per_stack", "chip.memory_gb_per_stack", "chip.tdp_w"):
        bad_values(knob, np.isnan(c[knob]) | (c[knob] > 0), "> 0 (or unset)")
    for knob in ("chip.vector_flops_per_cycle", "system.link_latency_us"):
        bad_values(knob, np.isnan(c[knob]) | (c[knob] >= 0), ">= 0 (or unset)")
    bad_values("chip.dies", np.isnan(c["chip.dies"]) | (is_int(c["chip.dies"]) & (c["chip.dies"] >= 1)
                                                       & (c["chip.dies"] <= MAX_DIES)),
               f"an integer in [1, {MAX_DIES}] (or unset)")
    bad_values("chip.dies", np.isnan(c["chip.dies"]) | (c["chip.dies"] <= np.maximum(c["chip.cores"], 1)),
               "at most chip.cores (every die holds at least one core)")


def _speedups(columns: Mapping[str, Any], n: int, tech: Technology, flags: _Flags) -> dict[str, np.ndarray]:
    """Throughput multiplier per precision and row (0 = unsupported), with per-row overrides."""
    canon = _canon_precisions(columns.get("chip.precisions", _default("chip.precisions")), n)
    uniq, inv = np.unique(canon.astype(str), return_inverse=True)
    known = list(tech.precision_speedup)
    members = np.zeros((len(uniq), len(known)), dtype=bool)
    bad_u = np.full(len(uniq), "", dtype=object)
    for u, s in enumerate(uniq):
        items = [p for p in s.split(",") if p]
        unknown = [p for p in items if p not in tech.precision_speedup]
        if unknown:
            bad_u[u] = "chip.precisions: " + suggest(unknown[0], known, "precision")
        if not items:
            bad_u[u] = "chip.precisions: at least one precision is required"
        for p in items:
            if p in tech.precision_speedup:
                members[u, known.index(p)] = True
    msgs = bad_u[inv]
    flags.flag(msgs != "", msgs)
    out: dict[str, np.ndarray] = {}
    for j, p in enumerate(known):
        mult = np.full(n, float(tech.precision_speedup[p]))
        key = f"chip.precision_speedup.{p}"
        if key in columns:
            o = np.asarray(_broadcast(columns[key], n), dtype=object)
            o = np.array([np.nan if v is None else float(v) for v in o]) if o.dtype == object else o.astype(float)
            mult = np.where(np.isfinite(o) & (o > 0), o, mult)
        out[p] = np.where(members[inv, j], mult, 0.0)
    return out
