"""The design-knob registry: every knob of a chip or a system declared once (name, unit, type, bounds,
allowed values, label, description, default and its source).

Everything else is derived from `KNOBS`: the pydantic `ChipDesign` / `SystemDesign` (dse.model.hardware),
the struct-of-arrays columns and their range checks (dse.model.arrays), the search-space checks
(dse.study.knobs / dse.study.space), the dashboard labels (dse.report.labels) and the JSON Schema of a
design (`design_json_schema`, printed by `dse schema design`). Adding a knob the model already reads is
one entry here. This module is pure data plus small helpers: it imports nothing else of dse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

SECTIONS = ("chip", "system")
TOPOLOGIES = ("ring", "torus2d", "switch")  # DESIGN.md §3; collective steps per topology: dse.model.perf
TOPOLOGY_CODE = {name: i for i, name in enumerate(TOPOLOGIES)}  # integer code in DesignArrays.topology
NONE = "none"  # the name of "no off-chip memory" / "no chip-to-chip link"

_TYPE_NAMES = {int: "int", float: "float", bool: "bool", str: "str", list: "list", dict: "dict"}


@dataclass(frozen=True)
class Knob:
    """One design knob. `low`/`high` bound the value (or, for a dict knob, each value; `*_open`: the bound
    itself is excluded); `choices` or `table` (a `Technology` attribute, plus `extra` names) list the
    allowed names of a str/list/dict knob; `none_means` makes the knob optional and says what unset means."""

    name: str
    type: type
    default: Any
    label: str
    description: str
    default_source: str
    unit: str | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    bounds_source: str | None = None
    choices: tuple[str, ...] | None = None
    table: str | None = None
    extra: tuple[str, ...] = ()
    what: str | None = None  # noun in "unknown <what> 'x'" messages
    none_means: str | None = None
    min_items: int | None = None
    resource: bool = False  # more of it is more hardware (area, MACs, SRAM, stacks, links): never cheaper or lower power

    @property
    def section(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def key(self) -> str:
        """Field name inside its section (`sram_mb` of `chip.sram_mb`)."""
        return self.name.split(".", 1)[1]

    @property
    def optional(self) -> bool:
        return self.none_means is not None

    @property
    def numeric(self) -> bool:
        return self.type in (int, float)

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.type]

    @property
    def title(self) -> str:
        """Axis / column title with unit, e.g. "SRAM (MB)"."""
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def default_value(self) -> Any:
        """A fresh copy of the default (lists and dicts are never shared)."""
        return type(self.default)(self.default) if isinstance(self.default, (list, dict)) else self.default

    def allowed(self, tech: Any) -> list[str] | None:
        """Allowed names of a str/list/dict knob with this technology (None: any value of its type)."""
        if self.choices is not None:
            return list(self.choices)
        if self.table is not None:
            return list(getattr(tech, self.table)) + list(self.extra)
        return None

    def int_bounds(self) -> tuple[float, float]:
        """Inclusive integer bounds of an int knob (an open bound 0 becomes 1); ±inf when unbounded."""
        lo = -math.inf if self.low is None else (math.floor(self.low) + 1 if self.low_open else math.ceil(self.low))
        hi = math.inf if self.high is None else (math.ceil(self.high) - 1 if self.high_open else math.floor(self.high))
        return lo, hi

    def rule(self) -> str:
        """The bounds in words, as range-check messages print them: "an integer in [1, 4,096]", "in (0, 10] GHz"."""
        unit = f" {self.unit}" if self.unit and self.unit != "count" else ""
        if self.type is int and self.low is not None and self.high is not None:
            lo, hi = self.int_bounds()
            text = f"an integer in [{_fmt(lo)}, {_fmt(hi)}]"
        elif self.low is not None and self.high is not None:
            text = f"in {'(' if self.low_open else '['}{_fmt(self.low)}, {_fmt(self.high)}{')' if self.high_open else ']'}{unit}"
        elif self.low is not None:
            text = f"{'>' if self.low_open else '>='} {_fmt(self.low)}"
        elif self.high is not None:
            text = f"{'<' if self.high_open else '<='} {_fmt(self.high)}"
        else:
            text = "a number"
        if self.type is int and not text.startswith("an integer"):
            text = f"an integer {text}"
        return text + (" (or unset)" if self.optional else "")

    def in_bounds(self, v: np.ndarray) -> np.ndarray:
        """Vectorized bounds check of float64 values (NaN = unset: fine for optional knobs, bad otherwise)."""
        ok = np.isfinite(v)
        if self.type is int:
            ok &= np.rint(v) == v
        if self.low is not None:
            ok &= (v > self.low) if self.low_open else (v >= self.low)
        if self.high is not None:
            ok &= (v < self.high) if self.high_open else (v <= self.high)
        return ok | np.isnan(v) if self.optional else ok

    def clip_bounds(self) -> tuple[float, float]:
        """The closed bounds `clip` clamps into: an int knob's `int_bounds`, a float knob's bounds (±inf unset)."""
        if self.type is int:
            return self.int_bounds()
        return -math.inf if self.low is None else self.low, math.inf if self.high is None else self.high

    def clip(self, v: np.ndarray) -> np.ndarray:
        """Values clamped into the closed bounds (integers rounded), so a flagged row still computes finitely."""
        lo, hi = self.clip_bounds()
        return np.clip(np.rint(v) if self.type is int else v, lo, hi)


class BoundsTable:
    """`Knob.in_bounds` and `Knob.clip` of several numeric knobs at once: one pass over a (knobs × rows) float64 array instead of
    a few numpy calls per knob (the per-call cost of a study's small batches). Same result row for row."""

    def __init__(self, knobs: tuple[Knob, ...]):
        col = lambda xs, dtype=float: np.array(xs, dtype=dtype).reshape(-1, 1)  # noqa: E731
        self.knobs = knobs
        self.is_int = col([k.type is int for k in knobs], bool)
        # closed float64 bounds: an open bound x as the next float beyond it (v > x ⟺ v >= nextafter(x, +inf)
        # exactly in float64); an unset bound as ±inf, which every finite value passes
        self.low = col([-math.inf if k.low is None else np.nextafter(k.low, math.inf) if k.low_open else k.low
                        for k in knobs])
        self.high = col([math.inf if k.high is None else np.nextafter(k.high, -math.inf) if k.high_open else k.high
                         for k in knobs])
        self.optional = col([k.optional for k in knobs], bool)
        self.clip_low, self.clip_high = (col(b) for b in zip(*(k.clip_bounds() for k in knobs)))
        # the same as flat C arrays (one entry per knob), as a compiled pass takes them (dse.model.arrays._bounds)
        self.low_row, self.high_row, self.is_int_row, self.optional_row, self.clip_low_row, self.clip_high_row = (
            np.ascontiguousarray(a[:, 0]) for a in (self.low, self.high, self.is_int, self.optional, self.clip_low,
                                                   self.clip_high))

    def in_bounds(self, v: np.ndarray) -> np.ndarray:
        """Row j of `v` checked as `knobs[j].in_bounds` checks it (non-finite values fail, NaN passes where the
        knob is optional)."""
        ok = np.isfinite(v)
        ok &= ~self.is_int | (np.rint(v) == v)
        ok &= v >= self.low
        ok &= v <= self.high
        return ok | (self.optional & np.isnan(v))

    def clip(self, v: np.ndarray) -> np.ndarray:
        """Row j of `v` clamped as `knobs[j].clip` clamps it (int knobs' rows rounded first)."""
        return np.clip(np.where(self.is_int, np.rint(v), v), self.clip_low, self.clip_high)


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Rule:
    """A check across knobs, reported on `knob`. `ok` is vectorized over columns keyed by dotted name
    (numbers as float with NaN for unset, names as str, flags as bool); every knob in `reads` other
    than `knob` comes before it in `KNOBS` (pydantic validates fields in order)."""

    knob: str
    reads: tuple[str, ...]
    ok: Callable[[Mapping[str, Any]], Any]
    message: Callable[[Mapping[str, Any]], str]
    source: str = ""


def _n(x: Any) -> str:
    return _fmt(float(x)) if x is not None and x == x else str(x)


_ASSUMED = "assumed: DESIGN.md §10 example design (a mid-size n5 accelerator)"

KNOBS: tuple[Knob, ...] = (
    # ---------------------------------------------------------------- chip
    Knob("chip.process_node", str, "n5", "Process node", "Logic process node of the compute dies.", _ASSUMED,
         table="process_nodes", what="process node"),
    Knob("chip.cores", int, 64, "Cores", "Compute cores, each with one MAC array.", _ASSUMED, unit="count",
         low=0, low_open=True, high=10_000_000, bounds_source="sanity bound: far beyond any wafer", resource=True),
    Knob("chip.array_rows", int, 128, "Array rows", "Rows of each core's MAC array.",
         "assumed: 128×128 (TPU v4 MXU)", unit="count", low=0, low_open=True, high=4096,
         bounds_source="sanity bound: 32× the largest published array (128)", resource=True),
    Knob("chip.array_cols", int, 128, "Array columns", "Columns of each core's MAC array.",
         "assumed: 128×128 (TPU v4 MXU)", unit="count", low=0, low_open=True, high=4096,
         bounds_source="sanity bound: 32× the largest published array (128)", resource=True),
    Knob("chip.clock_ghz", float, 1.0, "Clock", "Clock of the compute arrays.", _ASSUMED, unit="GHz",
         low=0, low_open=True, high=10, bounds_source="sanity bound: 2× the fastest shipping logic clock"),
    Knob("chip.precisions", list, ["bf16", "fp8", "int8"], "Precisions",
         "Datatypes the arrays run natively (others dequantize to bf16).", "DESIGN.md §3 (bf16, fp8/int8 2×)",
         table="precision_speedup", what="precision", min_items=1),
    Knob("chip.precision_speedup", dict, {}, "Precision speedup",
         "Per-precision throughput multiplier over bf16, overriding the technology table.",
         "technology precision_speedup table", unit="× bf16", low=0, low_open=True,
         table="precision_speedup", what="precision"),
    Knob("chip.core_style", str, "systolic", "Core style",
         "systolic: statically scheduled arrays; simt: GPU-style cores that launch kernels.", _ASSUMED,
         choices=("systolic", "simt"), what="core style"),
    Knob("chip.mma_operands", str, "shared", "MMA operands",
         "simt only: where the tensor cores take their matrix operands and accumulators each instruction. "
         "shared: A/B from shared memory once per warpgroup-wide instruction (Hopper wgmma, Blackwell tcgen05); "
         "registers: A/B and the accumulators through the register file on every warp instruction (Ampere "
         "mma.sync, CDNA 3 MFMA), whose operand delivery costs energy on every FLOP (dse.model.arrays).",
         "assumed: the Hopper/Blackwell path, no operand-delivery energy beyond the MAC's",
         choices=("shared", "registers"), what="mma operand source"),
    Knob("chip.sparsity_2to4", bool, False, "2:4 sparsity", "Tensor cores run 2:4 sparse weights at dense rate.",
         _ASSUMED),
    Knob("chip.layer_pipeline", bool, False, "Layer pipeline",
         "systolic only: every layer of a CNN runs on its own region of the chip, beside its weights, and an "
         "image streams through the layers as a pipeline (at-memory / spatial dataflow chips); batch-1 latency "
         "is the pipeline's depth in periods, not the layers run one after another on the whole chip.",
         "assumed: layers time-share the whole chip (GPUs, TPUs, Groq-style)"),
    Knob("chip.vector_flops_per_cycle", float, None, "Vector FLOP/cycle",
         "FLOP per cycle of the vector unit (softmax, norms, activations).",
         "assumed: an FMA lane per array column (2 FLOP)",
         unit="FLOP/cycle", low=0, none_means="2 per array column per core"),
    Knob("chip.sram_mb", float, 64.0, "SRAM", "On-chip SRAM capacity.", _ASSUMED, unit="MB", low=0,
         high=10_000_000, bounds_source="sanity bound: 10 TB of SRAM", resource=True),
    Knob("chip.sram_tbps", float, None, "SRAM bandwidth", "On-chip SRAM bandwidth.", "technology process_nodes table",
         unit="TB/s", low=0, low_open=True, none_means="technology GB/s per MB × clock"),
    Knob("chip.sram_kind", str, "scratchpad", "SRAM kind",
         "scratchpad: software-managed; cache: hardware-managed (tags: more area, less bandwidth per MB).",
         _ASSUMED, choices=("scratchpad", "cache"), what="sram kind"),
    Knob("chip.memory", str, "hbm3e", "Off-chip memory", "Off-chip memory technology (or none).", _ASSUMED,
         table="memories", extra=(NONE,), what="memory"),
    Knob("chip.memory_stacks", int, 4, "Memory stacks", "Off-chip memory stacks (HBM) or devices (LPDDR, GDDR).",
         _ASSUMED, unit="count", low=0, high=10_000, bounds_source="sanity bound", resource=True),
    Knob("chip.memory_gbps_per_stack", float, None, "Memory bandwidth per stack",
         "Bandwidth of one memory stack, overriding the memory table.", "technology memories table",
         unit="GB/s", low=0, low_open=True, none_means="the memory table's figure"),
    Knob("chip.memory_gb_per_stack", float, None, "Memory capacity per stack",
         "Capacity of one memory stack, overriding the memory table; GB of 2^30 bytes (memory capacities are "
         "binary, JEDEC JESD100B.01: an H100's 80 GB is 5 x 16 GiB).", "technology memories table",
         unit="GB", low=0, low_open=True, none_means="the memory table's figure"),
    Knob("chip.link", str, "nvlink4", "Link", "Chip-to-chip link technology (or none).",
         "H100 SXM (NVLink 4)", table="links", extra=(NONE,), what="link"),
    Knob("chip.links", int, 18, "Links", "Chip-to-chip links per chip.", "H100 SXM: 18 NVLink 4 links",
         unit="count", low=0, high=10_000, bounds_source="sanity bound", resource=True),
    Knob("chip.packaging", str, "cowos_s", "Packaging", "Package technology (organic, 2.5D interposer, wafer).",
         "H100 SXM (CoWoS-S)", table="packaging", what="packaging"),
    Knob("chip.dies", int, None, "Dies", "Logic dies per package.", "automatic", unit="count", low=1, high=64,
         bounds_source="assumed: the largest 2.5D packages hold ~12 dies (MI300X: 8 XCD + 4 IOD); headroom for tiles",
         none_means="automatic chiplet split at the reticle limit"),
    Knob("chip.spare_cores", int, None, "Spare cores",
         "Spare cores per chip beyond `cores` (harvesting: the chip ships with `cores` good ones).", "automatic",
         unit="count", low=0, high=10_000_000, bounds_source="sanity bound: as chip.cores",
         none_means="automatic: per die the count that minimises the chip cost (SIMT cores, none on "
                    "systolic ones); wafer-scale: the technology's spare-tile fraction"),
    Knob("chip.allow_chiplets", bool, True, "Allow chiplets", "Split logic over several dies when it exceeds the reticle.",
         _ASSUMED),
    Knob("chip.io_die_node", str, NONE, "I/O die node",
         "Process node of separate I/O dies that carry the memory and chip-to-chip link PHYs (none: the PHYs "
         "sit on the compute dies).",
         "none: PHYs on the compute dies (H100, B200); MI300X puts them on 4 I/O dies in N6 under 8 N5 compute dies",
         table="process_nodes", extra=(NONE,), what="process node"),
    Knob("chip.io_dies", int, 1, "I/O dies",
         "Fewest I/O dies per chip when chip.io_die_node is set: the chip takes the cheapest count from it up to "
         "the upper bound (an I/O-limited die is padded to the perimeter its PHYs need, so several smaller "
         "ones may cost less), so a higher floor never makes a chip cheaper.",
         "one or more, the cheapest; MI300X: 4", unit="count", low=1, high=16,
         bounds_source="assumed: MI300X carries 4 I/O dies; headroom for wider memory systems (also the most "
                       "the model's choice considers)", resource=True),
    Knob("chip.tdp_w", float, None, "TDP cap", "Power cap of one chip.", "no cap", unit="W", low=0, low_open=True,
         none_means="no power cap"),
    # ---------------------------------------------------------------- system
    Knob("system.num_chips", int, 1, "Chips", "Chips in the system.", "one chip", unit="count", low=1,
         high=10_000_000, bounds_source="sanity bound: beyond the largest clusters"),
    Knob("system.topology", str, "switch", "Topology", "How the chips are connected.", "H100 HGX (NVSwitch)",
         choices=TOPOLOGIES, what="topology"),
    Knob("system.link_latency_us", float, None, "Link latency", "Latency of one chip-to-chip hop.",
         "technology links table", unit="µs", low=0, none_means="the link table's figure"),
)

BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}


# the knobs whose increase buys hardware (issue 11: "more area, MACs, SRAM or memory stacks" never lower cost or
# power); the cliff hunter and the cost tests step exactly these
RESOURCE_KNOBS: tuple[str, ...] = tuple(k.name for k in KNOBS if k.resource)


def knobs_of(section: str) -> tuple[Knob, ...]:
    """The knobs of one section (`chip` or `system`), in declaration order."""
    return tuple(k for k in KNOBS if k.section == section)


def _f(x: Any) -> np.ndarray:
    """A number or a column as float (None → NaN), so rules read the same over scalars and arrays."""
    return np.asarray(np.nan if x is None else x, dtype=float)


def _b(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=bool)


RULES: tuple[Rule, ...] = (
    Rule("chip.memory_stacks", ("chip.memory", "chip.memory_stacks"),
         lambda v: _b(np.asarray(v["chip.memory"]) == NONE) | ~(_f(v["chip.memory_stacks"]) == 0),
         lambda v: f"memory '{v['chip.memory']}' needs memory_stacks >= 1 (or set memory: none)"),
    Rule("chip.dies", ("chip.cores", "chip.dies"),
         lambda v: np.isnan(_f(v["chip.dies"])) | (_f(v["chip.dies"]) <= np.maximum(_f(v["chip.cores"]), 1)),
         lambda v: f"dies={_n(v['chip.dies'])} must be at most cores={_n(v['chip.cores'])} "
                   "(every die holds at least one core)"),
    Rule("chip.allow_chiplets", ("chip.dies", "chip.allow_chiplets"),
         lambda v: _b(v["chip.allow_chiplets"]) | ~(_f(v["chip.dies"]) > 1),
         lambda v: f"dies={_n(v['chip.dies'])} needs allow_chiplets: true"),
)


def _check_registry() -> None:
    order = {k.name: i for i, k in enumerate(KNOBS)}
    for r in RULES:
        assert all(order[x] <= order[r.knob] for x in r.reads), f"rule on {r.knob} reads a later knob"
    for k in KNOBS:
        assert k.section in SECTIONS and ((k.default is None) == k.optional or k.type in (list, dict)), k.name


_check_registry()


# ------------------------------------------------------------------------------- JSON Schema


def _knob_schema(k: Knob, tech: Any) -> dict[str, Any]:
    json_type = {int: "integer", float: "number", bool: "boolean", str: "string", list: "array", dict: "object"}[k.type]
    s: dict[str, Any] = {"title": k.title, "description": k.description}
    bounds: dict[str, Any] = {}
    if k.low is not None:
        bounds["exclusiveMinimum" if k.low_open else "minimum"] = k.low
    if k.high is not None:
        bounds["exclusiveMaximum" if k.high_open else "maximum"] = k.high
    names = k.allowed(tech)
    if k.type is list:
        s.update(type="array", items={"type": "string", **({"enum": names} if names else {})})
        if k.min_items:
            s["minItems"] = k.min_items
    elif k.type is dict:
        s.update(type="object", additionalProperties={"type": "number", **bounds})
        if names:
            s["propertyNames"] = {"enum": names}
    else:
        s["type"] = [json_type, "null"] if k.optional else json_type
        s.update(bounds)
        if names:
            s["enum"] = names + ([None] if k.optional else [])
    if k.unit:
        s["x-unit"] = k.unit
    if k.none_means:
        s["x-unset-means"] = k.none_means
    s["default"] = k.default_value()
    s["x-default-source"] = k.default_source
    return s


def design_json_schema(tech: Any) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a design file, with technology names from `tech`."""
    sections = {
        sec: {"type": "object", "additionalProperties": False,
              "properties": {k.key: _knob_schema(k, tech) for k in knobs_of(sec)}}
        for sec in SECTIONS
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dse design",
        "description": "One chip type × a system (what `dse export` writes and `dse evaluate` reads).",
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}, **sections},
    }


__all__ = ["Knob", "Rule", "BoundsTable", "KNOBS", "RESOURCE_KNOBS", "BY_NAME", "RULES", "SECTIONS", "TOPOLOGIES", "TOPOLOGY_CODE", "NONE",
           "knobs_of", "design_json_schema"]
