"""Operator times on a roofline with a memory hierarchy, vectorized over designs (DESIGN.md §5).

Every function takes a `HwView` (arrays of shape (n,), one entry per design) and an operator table
(arrays of shape (k,), one entry per operator) and returns arrays of shape (n, k) or (n,).
`step_times` is the mapping's fast path over many (design, step, residency) instances at once: the same
functions on operator tables stacked one row per step (`_stack`), summed per step in a fixed order.
Per operator: t = max(compute, off-chip memory, SRAM) + fixed overhead; collectives use an
alpha-beta model on the chip-to-chip links.

Physics v2 (DESIGN.md §5.1):
- Overheads belong to the software stack (`Calibration`): a per-step cost, a per-kernel cost only for
  the kernels that stay after the stack's fusion, on dynamically scheduled (SIMT) chips; statically
  scheduled chips pay their array fill/drain per operator instead.
- Off-chip bandwidth: pins × the technology's `stream_efficiency` × the stack's `mem_eff_max`, after a
  fixed ramp-up/tail time per streaming kernel (`mem_ramp_us`).
- GEMMs on SIMT cores spread M×N outputs over all lanes (no padding of M onto tensor-core rows); on a
  systolic array a small M streams through the stationary operand without padding, and the time to
  load that operand from SRAM bounds the operator (an SRAM-resident chip is limited by how fast SRAM
  feeds the array).
- Collectives (`_collective_class`, the one rule; `collective_time`): who runs a collective decides its cost.
  A library over a load/store fabric (a dynamically scheduled chip, GPU: NCCL / RCCL / a stack's custom
  all-reduce over NVLink or Infinity Fabric) pays the stack's `collective_floor_us` and the ring's per-step
  link latency, or a one-shot push where the stack has one; a library over RDMA network ports (any chip whose
  link class has `rdma`, e.g. Gaudi 2's HCCL over RoCE) pays the same floor and ring steps, never one-shot;
  a compiled collective (a statically scheduled chip on a scale-up fabric: TPU ICI, Groq-style) is part of
  the program: per-hop link latency only, no floor. A wafer-scale chip is one chip: its on-wafer traffic
  is no collective but the mesh term of each operator (`wafer_mesh`).
- On-wafer mesh (`wafer_mesh`, technology `wafer_fabric`): a wafer-scale chip runs each operator on a square region
  of its 2-D mesh of routers; the operator's time is its on-wafer work spread over the region plus the mesh's
  traversals of it (hop latency per router along the region's side, the activation bytes through the links of
  its edge), the region chosen per operator to minimise that time among sizes that hold the operator's weights.
- Overlap: a collective's bandwidth time hides under compute by the stack's `comm_overlap` when the step
  has at least two token chunks of COMM_OVERLAP_MIN_TOKENS (chunk i's all-reduce runs while chunk i+1
  computes); its latency never hides, and batch-1 decode (one dependent token) never overlaps.
- An unsupported narrow precision runs on the best supported precision that holds its values exactly
  (fp4 → fp8 → bf16; int4 → int8 → fp8 → bf16), at that precision's speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import threading

import numpy as np

from dse.model.area import chip_area
from dse.model.arrays import kernel_column
from dse.model.kernel import (  # noqa: F401  (the path's switches, re-exported: perf.KERNEL_ENV, perf.reset_kernel, ...)
    KERNEL_AUTO_ELEMENTS,
    KERNEL_ENV,
    KERNEL_READY_FILE,
    compiled_kernel,
    kernel_cache_ready,
    kernel_cache_stamp,
    kernel_mode,
    kernel_module,
    reset_kernel,
    warm_kernel,
)
from dse.model.calibration import Calibration
from dse.model.knobs import TOPOLOGY_CODE
from dse.model.mesh import (  # noqa: F401  (re-exported: perf.wafer_mesh, ...)
    MESH_TRAVERSALS_MATRIX,
    MESH_TRAVERSALS_VECTOR,
    wafer_mesh,
    wafer_mesh_constants,
    wafer_split_min,
)

VECTOR_KINDS = frozenset({"softmax", "norm", "act", "elementwise", "embed", "permute", "pool"})
COLLECTIVE_KINDS = frozenset({"allreduce", "allgather", "alltoall", "sendrecv"})
BOUNDS = ("compute", "memory", "sram", "interconnect", "overhead", "mesh")
# the OpTimes field holding each bound's time, in BOUNDS order (operator rows name their columns `<field>_s`)
TIME_FIELDS = dict(zip(BOUNDS, ("compute", "memory", "sram", "comm", "overhead", "mesh")))


@dataclass
class HwView:
    """What the performance model needs of each design, in SI units (FLOP/s, B/s, B, s)."""

    peak_flops: dict[str, np.ndarray]      # dense FLOP/s per precision, 0 = unsupported
    vector_flops: np.ndarray               # FLOP/s of the vector unit
    rows: np.ndarray
    cols: np.ndarray
    cores: np.ndarray
    mem_bw: np.ndarray                     # off-chip B/s per chip (0 = no off-chip memory)
    mem_bytes: np.ndarray                  # off-chip capacity per chip
    sram_bw: np.ndarray                    # on-chip SRAM B/s per chip
    sram_bytes: np.ndarray
    link_bw: np.ndarray                    # B/s per chip per direction over all its links
    link_latency_s: np.ndarray
    topology: np.ndarray                   # dse.model.knobs.TOPOLOGY_CODE
    num_chips: np.ndarray
    dataflow: np.ndarray                   # True: statically scheduled (no kernel launch overhead)
    sparsity: np.ndarray                   # True: 2:4 structured sparsity doubles peak
    mem_stream_eff: np.ndarray | None = None  # technology stream_efficiency (None: 1.0)
    clock_hz: np.ndarray | None = None        # array clock (None: 1 GHz)
    clock_over_nominal: np.ndarray | None = None  # clock / its node's nominal clock (dse.model.voltage; None: 1)
    energy_pj_per_flop: dict[str, np.ndarray] = field(default_factory=dict)
    sram_pj_per_byte: np.ndarray | None = None
    mem_pj_per_bit: np.ndarray | None = None
    link_pj_per_bit: np.ndarray | None = None
    static_w: np.ndarray | None = None
    leakage_w: np.ndarray | None = None       # the part of static_w that does not scale with the clock
    power_cap_w: np.ndarray | None = None     # the design's `tdp_w` cap per chip (0 = none)
    sram_cache: np.ndarray | None = None      # True: hardware-managed cache (None: scratchpad)
    # True: a statically scheduled chip runs a CNN's layers as a spatial pipeline (chip.layer_pipeline; None: no
    # design does; dse.evaluate.mapping.map_cnn)
    layer_pipeline: np.ndarray | None = None
    # chiplet split (dse.model.area): logic dies per chip, the die-to-die PHY bandwidth of all its dies
    # (B/s) and the share of on-chip SRAM traffic that crosses a die edge
    dies: np.ndarray | None = None            # None: one die
    d2d_bw: np.ndarray | None = None
    d2d_share: np.ndarray | None = None
    # deployment knobs a study sets per design (dse.evaluate.serving.DEPLOYMENT_KNOBS, e.g.
    # "serving.chunk_tokens"); empty: the serving mapping's own choices
    deployment: dict[str, np.ndarray] = field(default_factory=dict)
    link_rdma: np.ndarray | None = None       # True: RDMA network ports (None: scale-up links), see collective_time
    # the on-wafer mesh of a wafer-scale chip (`wafer_mesh`): its routers (0: not wafer-scale; None: no design is),
    # clock cycles per hop and bytes per cycle of a link and direction (technology `wafer_fabric`)
    mesh_tiles: np.ndarray | None = None
    mesh_hop_cycles: np.ndarray | None = None
    mesh_link_bytes: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.rows.shape[0])

    def take(self, idx: np.ndarray, fields: tuple | None = None) -> "HwView":
        """The sub-view of designs `idx` (bool mask or indices); only `fields` (and `rows`) when given,
        the others None or empty."""
        kw = {}
        for f, v in zip(_VIEW_FIELDS, map(self.__dict__.__getitem__, _VIEW_FIELDS)):  # (one pass, no call per field)
            if fields is not None and f not in fields and f != "rows":
                kw[f] = {} if isinstance(v, dict) else None
            else:
                kw[f] = None if v is None else {k: a[idx] for k, a in v.items()} if isinstance(v, dict) else v[idx]
        return HwView(**kw)

    @classmethod
    def from_arrays(cls, arr, area=None) -> "HwView":
        """Build from a `dse.model.arrays.DesignArrays` (the struct of arrays of many designs); the chiplet
        split comes from `area` (a `dse.model.area.AreaBreakdown` of `arr`, computed when not given)."""
        n = arr.n
        area = chip_area(arr) if area is None else area
        dies = np.asarray(area.num_dies, float)
        # share of SRAM traffic that crosses a die edge on a split: a scratchpad keeps its weights next to
        # the arrays that use them (d2d_tbps_per_sram_tbps crosses); a cache interleaves its addresses
        # over the slices of every die, so (n - 1)/n of its traffic is remote
        scratchpad_crossing = arr.tech.chiplets.d2d_tbps_per_sram_tbps

        def get(name, default=0.0):
            v = getattr(arr, name, None)
            return np.broadcast_to(np.asarray(default, dtype=float), (n,)).copy() if v is None else np.asarray(v)

        epf = getattr(arr, "energy_pj_per_flop", None) or {}
        dataflow = ~np.asarray(arr.is_simt, bool)  # GPUs (simt) launch kernels; systolic chips are scheduled
        fields = _view_fields(arr, area, dies, epf, scratchpad_crossing)
        if fields is None:
            crossing = np.where(np.asarray(getattr(arr, "is_cache", np.zeros(n, bool)), bool), 1.0,
                                scratchpad_crossing)
            # every precision of the technology's precision_speedup table (0 where the chip lacks it)
            peak = {p: np.asarray(v, dtype=float) * 1e12 for p, v in arr.peak_tflops.items()}
            fields = dict(
                clock_hz=get("clock_ghz", 1.0) * 1e9,
                peak_flops=peak,
                vector_flops=get("vector_flops_per_cycle") * get("clock_ghz") * 1e9,
                rows=get("array_rows").astype(float),
                cols=get("array_cols").astype(float),
                cores=get("cores").astype(float),
                mem_bw=get("mem_bw_tbps") * 1e12,
                sram_bw=get("sram_tbps") * 1e12,
                sram_bytes=get("sram_mb") * 1e6,
                link_bw=get("link_gbps") * 1e9 * get("links"),
                link_latency_s=get("link_latency_us") * 1e-6,
                # (each an (n,) float64 column, a DesignArrays' as it is: run_energy's one gather, whose columns are new)
                energy_pj_per_flop=run_energy({p: kernel_column(v, n) for p, v in epf.items()}, peak),
                static_w=get("static_w"),
                dies=dies,
                d2d_bw=np.asarray(area.d2d_tbps, float) * 1e12 * dies,
                d2d_share=np.where(dies > 1, crossing * (dies - 1) / np.maximum(dies, 1.0), 0.0),
            )
        return cls(
            mem_stream_eff=_memory_stream_efficiency(arr),
            clock_over_nominal=get("clock_over_nominal", 1.0),
            mem_bytes=np.asarray(arr.mem_bytes, float),  # GB of capacity are 2^30 B (DesignArrays.mem_bytes)
            link_rdma=get("link_rdma", False).astype(bool),
            topology=get("topology", TOPOLOGY_CODE["switch"]).astype(int),
            num_chips=get("num_chips", 1).astype(int),
            dataflow=dataflow,
            sparsity=get("sparsity_2to4", 0).astype(bool),
            sram_pj_per_byte=get("sram_pj_per_byte"),
            mem_pj_per_bit=get("mem_pj_per_bit"),
            link_pj_per_bit=get("link_pj_per_bit"),
            power_cap_w=get("tdp_cap_w"),
            sram_cache=get("is_cache", False).astype(bool),
            layer_pipeline=np.asarray((getattr(arr, "knobs", None) or {}).get("chip.layer_pipeline", np.zeros(n)),
                                      bool) & dataflow,
            **_mesh_fields(arr),
            **fields,
        )


_VIEW_FIELDS = tuple(HwView.__dataclass_fields__)  # (HwView's fields, in order)


def _mesh_fields(arr) -> dict:
    """`HwView`'s on-wafer mesh fields of `arr`'s designs: the wafer's routers (technology: the wafer-scale
    package's largest area over `harvesting.wafer_scale_tile_mm2`) on the wafer-scale ones, 0 elsewhere; None
    when no design is wafer-scale (no design pays a mesh term, and the fields cost nothing)."""
    ws = getattr(arr, "wafer_scale", None)
    tech = getattr(arr, "tech", None)
    if ws is None or tech is None or not np.asarray(ws, bool).any():
        return {}
    ws = np.asarray(ws, bool)
    area = tech.packaging["wafer_scale"].max_interposer_mm2  # (a wafer-scale row's package is that entry: arrays.py)
    fab = tech.wafer_fabric
    return {"mesh_tiles": np.where(ws, area / tech.harvesting.wafer_scale_tile_mm2, 0.0),
            "mesh_hop_cycles": np.full(arr.n, float(fab.hop_cycles)),
            "mesh_link_bytes": np.full(arr.n, float(fab.link_bytes_per_cycle))}


def _view_fields(arr, area, dies: np.ndarray, epf: dict, crossing: float) -> dict | None:
    """`HwView.from_arrays`' float fields (clock, vector FLOP/s, array shape, bandwidths, capacities, links, static
    power, the chiplet split, peak FLOP/s and `run_energy` per precision) in one compiled pass
    (`design_kernel.hw_kernel`; rows of one array), where the compiled kernels are on and `arr`'s columns are (n,)
    arrays; else None (`from_arrays` computes them in numpy: the same values)."""
    dk = _dk_module()
    if dk is None or not epf or getattr(arr, "static_w", None) is not None:
        return None
    n = arr.n
    peak_t = arr.peak_tflops
    try:
        # design_kernel.VIEW_ROW names the rows: the design's columns, then the split's two from `area`
        split = {"dies": dies, "d2d_tbps": area.d2d_tbps}
        v = np.array([split[f] if f in split else getattr(arr, f) for f in dk.VIEW_ROW], float)
        pk = np.array(list(peak_t.values()), float)
        en = np.array(list(epf.values()), float)
    except (AttributeError, ValueError, TypeError):  # (a column missing or not a column of n)
        return None
    if v.shape != (len(dk.VIEW_ROW), n) or pk.shape != (len(peak_t), n) or en.shape != (len(epf), n):
        return None
    e_keys, p_keys = tuple(epf), tuple(peak_t)
    e_row, s_row = _run_energy_table(e_keys, p_keys)
    F, P = len(dk.VIEW_OUT), len(p_keys)
    out = np.empty((F + P + len(e_keys), n))
    at = (lambda keys, k: keys.index(k) if k in keys else -1)
    dk.hw_kernel(v, pk, en, e_row, s_row, at(e_keys, "bf16"), at(e_keys, "fp16"), at(p_keys, "fp16"), float(crossing),
                 out)
    fields = dict(zip(dk.VIEW_OUT, out))
    fields["peak_flops"] = dict(zip(p_keys, out[F:F + P]))
    fields["energy_pj_per_flop"] = dict(zip(e_keys, out[F + P:]))
    return fields


def _dk_module():
    """`dse.model.design_kernel` where the compiled kernels are on (`compiled_kernel()`), else None."""
    return None if compiled_kernel() is None else kernel_module("design_kernel")


def _memory_stream_efficiency(arr) -> np.ndarray:
    """Per design: `stream_efficiency` of its memory technology (technology.yaml `memories`); 1 for none."""
    names = getattr(arr, "names", {}) or {}
    mem = names.get("chip.memory")
    tech = getattr(arr, "tech", None)
    if mem is None or tech is None:
        return np.ones(arr.n)
    at = (getattr(arr, "name_at", None) or {}).get("chip.memory")
    if type(at) is np.ndarray and at.shape == (arr.n,) and at.dtype.kind in "iu":
        # each row's index in `Knob.allowed(tech)` (`DesignArrays.name_at`): the technology's memories first, then
        # the extra names (none) and len of it for a name not there; a gather instead of a search of the names
        return _stream_by_index(tech.memories).take(np.minimum(at, len(tech.memories)))
    keys, vals = _stream_efficiencies(tech.memories)
    if not len(keys):
        return np.ones(arr.n)
    mem = np.asarray(mem).astype(str)
    pos = np.minimum(np.searchsorted(keys, mem), len(keys) - 1)
    return np.where(keys[pos] == mem, vals[pos], 1.0)


_STREAM_EFF: dict[tuple, tuple] = {}  # (names, ids of the entries) of a memories table → (the entries, its arrays)


def _stream_tables(memories: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(memory names sorted, each one's `stream_efficiency` in that order, each one's in the table's order then 1.0
    for no memory or a name not in it) of a technology's memories table; once per table content (its names and
    entry objects: frozen models, kept alive beside the value so their ids stay theirs)."""
    entries = tuple(memories.values())
    key = (tuple(memories), tuple(map(id, entries)))
    hit = _STREAM_EFF.get(key)
    if hit is None:
        if len(_STREAM_EFF) > 256:
            _STREAM_EFF.clear()
        keys = np.array(sorted(memories), dtype=str)
        hit = _STREAM_EFF[key] = (entries, keys,
                                  np.array([float(getattr(memories[k], "stream_efficiency", 1.0)) for k in keys]),
                                  np.array([float(getattr(m, "stream_efficiency", 1.0)) for m in entries] + [1.0]))
    return hit[1:]


def _stream_efficiencies(memories: dict) -> tuple[np.ndarray, np.ndarray]:
    """(memory names sorted, each one's `stream_efficiency`) of a memories table (`_stream_tables`)."""
    return _stream_tables(memories)[:2]


def _stream_by_index(memories: dict) -> np.ndarray:
    """Each memory's `stream_efficiency` in the table's order, then 1.0 (`_stream_tables`)."""
    return _stream_tables(memories)[2]


def _col(x) -> np.ndarray:
    return np.asarray(x, dtype=float)[None, :]


def _ceil_div(a, b):
    return np.ceil(a / np.maximum(b, 1.0))


SPLIT_K_MIN = 256  # assumption: a split-K slice keeps at least 256 of K per core (partial sums reduced on chip)


def gemm_utilization(m, n, rows, cols, cores, n_gemms=1.0, k=None, split_min=SPLIT_K_MIN):
    """Fraction of the MAC arrays doing useful work for GEMMs with output M×N on `cores` arrays of rows×cols.

    Output-stationary view: M is padded onto array rows, N onto columns (a batch-1 GEMV uses 1/rows of
    each array); the tiles are then spread over the cores in waves, and the last wave may be partial.
    When there are fewer tiles than cores, K is split over the idle cores (split-K) in slices of at
    least `split_min` (SPLIT_K_MIN; a wafer-scale chip's: `wafer_split_min`). Arguments broadcast: designs along
    axis 0, operators along axis 1.
    """
    m = np.maximum(m, 1.0)
    n = np.maximum(n, 1.0)
    tm = _ceil_div(m, rows)
    tn = _ceil_div(n, cols)
    pad = (m / (tm * rows)) * (n / (tn * cols))
    tiles = tm * tn * np.maximum(n_gemms, 1.0)
    if k is not None:
        split = np.maximum(np.minimum(np.floor(cores / tiles), np.floor(np.asarray(k, float) / split_min)), 1.0)
        tiles = tiles * split
    waves = _ceil_div(tiles, cores)
    return pad * tiles / (waves * cores)


def _collective_class(hw: HwView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per design, the interconnect class of its collectives, (n,) bools each: (dynamically scheduled chip,
    run by a library, one-shot capable). A library runs them on a GPU (no static schedule to compile them
    into) or over RDMA ports (the NIC's queue pairs give no deterministic timing to compile against); else
    they are compiled into the chip's schedule. A one-shot all-reduce needs a GPU's peer load/store (no RDMA).
    The one place the class is decided: `collective_time` and the compiled step kernel's design table
    (`dse.model.step_kernel.design_table`) both take it from here."""
    dyn = ~np.asarray(hw.dataflow, bool)
    rdma = np.zeros_like(dyn) if hw.link_rdma is None else np.asarray(hw.link_rdma, bool)
    return dyn, dyn | rdma, dyn & ~rdma


def _sendrecv_compiled(nbytes, group, hw: HwView, cal: Calibration) -> np.ndarray | None:
    """`collective_time("sendrecv", ...)` (designs × transfers) in one compiled pass (`design_kernel.sendrecv_kernel`)
    where the compiled kernels are on and the bytes and groups are one row of transfers; else None."""
    dk = _dk_module()
    if dk is None or type(nbytes) is not np.ndarray or type(group) is not np.ndarray or nbytes.ndim != 1 \
            or group.shape != nbytes.shape:
        return None
    n = hw.n
    out = np.empty((n, len(nbytes)))
    dk.sendrecv_kernel(kernel_column(nbytes, len(nbytes)), kernel_column(group, len(group)),
                       kernel_column(hw.link_bw, n), float(cal.link_eff), kernel_column(hw.link_latency_s, n),
                       _collective_class(hw)[1], cal.collective_floor_us * 1e-6, out)
    return out


def _torus_steps(kind: str, g):
    """Latency steps of a collective over g chips of a 2-D torus: one ring phase per dimension of an a x b
    grid, a = 2^ceil(log2(g) / 2) chips along the first (2 x 1 for two chips, 4 x 2 for eight, 4 x 4 for
    sixteen), b = g / a; an all-reduce's phase over n chips takes the ring's 2(n - 1) steps, an all-gather's
    or all-to-all's n - 1, and a point-to-point send to the next stage's chip one hop."""
    if kind == "sendrecv":
        return np.ones_like(g)
    a = np.exp2(np.ceil(np.log2(g) / 2))
    per_step = 2.0 if kind == "allreduce" else 1.0
    return per_step * (a + g / a - 2.0)


def collective_time(kind: str, nbytes, group, hw: HwView, cal: Calibration, split: bool = False):
    """Seconds for one collective of `nbytes` per chip over `group` chips (alpha-beta model).

    ring: bidirectional ring, 2(g-1) latency steps; torus2d: one ring phase per dimension of an a x b grid
    (`_torus_steps`), a point-to-point send one hop;
    switch: a single hop through the switch per step; log2(g) steps (halving-doubling) when compiled
    into a static schedule, the ring's steps when run by a GPU collective library (NCCL rings).
    Interconnect class: a dynamically scheduled chip (GPU) runs collectives as library kernels and pays
    the stack's `collective_floor_us` (NCCL-style launch + flag handshakes); a statically scheduled chip
    (systolic: TPU ICI, Groq-style fabrics) has them compiled into its program: per-hop latency only.
    Over RDMA network ports (`link_rdma`: RoCE, e.g. Gaudi 2) a library runs them on any chip (the NIC's
    queue pairs give no deterministic timing to compile against), and no peer can load/store another's
    memory, so there is no one-shot all-reduce.
    With `split`, returns (bandwidth part, latency part) instead of their sum.
    """
    if kind == "sendrecv" and not split:
        fast = _sendrecv_compiled(nbytes, group, hw, cal)
        if fast is not None:
            return fast
    g = np.maximum(np.asarray(group, dtype=float), 1.0)
    s = np.asarray(nbytes, dtype=float)
    bw = np.maximum(hw.link_bw[:, None] * cal.link_eff, 1.0)
    lat = hw.link_latency_s[:, None]
    if kind == "sendrecv":  # one step on every topology and class, never one-shot: the sums below with steps = 1
        floor = np.where(_collective_class(hw)[1][:, None], cal.collective_floor_us * 1e-6, 0.0)
        t_bw = np.where(g > 1, s / bw, 0.0)
        t_lat = np.where(g > 1, lat + floor, 0.0)
        return (t_bw, t_lat) if split else t_bw + t_lat
    topo = hw.topology[:, None]
    if kind == "allreduce":
        vol, ring_steps = 2 * (g - 1) / g * s, 2 * (g - 1)
        tree_steps = 2 * np.log2(g)
    elif kind in ("allgather", "alltoall"):
        vol, ring_steps = (g - 1) / g * s, g - 1
        tree_steps = np.log2(g)
    elif kind == "sendrecv":
        vol, ring_steps, tree_steps = s, np.ones_like(g), np.ones_like(g)
    else:
        raise ValueError(f"unknown collective kind {kind!r}")
    torus_steps = _torus_steps(kind, g)
    # Behind a switch the algorithm is the software's: a compiled (statically scheduled) collective runs
    # halving-doubling in log2(g) steps; a GPU library (NCCL) runs its ring over the switch ports and pays
    # the ring's 2(g-1) step latencies (the NVLink latencies in technology.yaml are derived from NCCL 2 KB
    # all-reduces over 14 ring steps); a stack with a peer-to-peer all-reduce (`cal.allreduce` "oneshot":
    # TensorRT-LLM / vLLM custom all-reduce) writes to every peer at once: one-shot (2 steps: push, barrier;
    # (g-1)·s over the links) or, when cheaper for large messages, two-shot (4 steps, the ring's volume).
    _, lib, p2p = _collective_class(hw)
    lib, p2p = lib[:, None], p2p[:, None]
    switch_steps = np.where(lib, ring_steps, tree_steps)
    oneshot = p2p & (topo == TOPOLOGY_CODE["switch"]) & (kind == "allreduce") & (cal.allreduce == "oneshot")
    steps = np.where(topo == TOPOLOGY_CODE["ring"], ring_steps,
                     np.where(topo == TOPOLOGY_CODE["torus2d"], torus_steps, switch_steps))
    if oneshot.any():
        one_vol, one_steps = (g - 1) * s, np.full_like(g, 2.0)
        two_vol, two_steps = vol, np.full_like(g, 4.0)
        use_one = one_vol / bw + one_steps * lat <= two_vol / bw + two_steps * lat
        vol = np.where(oneshot, np.where(use_one, one_vol, two_vol), vol)
        steps = np.where(oneshot, np.where(use_one, one_steps, two_steps), steps)
    floor = np.where(lib, cal.collective_floor_us * 1e-6, 0.0)
    t_bw = np.where(g > 1, vol / bw, 0.0)
    t_lat = np.where(g > 1, steps * lat + floor, 0.0)
    if split:
        return t_bw, t_lat
    return t_bw + t_lat


def fill_time_s(hw: HwView) -> np.ndarray:
    """Per design: the fixed cost of one operator on a statically scheduled chip, (n,) seconds: the
    array fills and drains (rows + cols cycles), e.g. 160×160 arrays at 0.9 GHz ≈ 0.36 µs. Physical,
    not fitted. A wafer-scale chip's mesh hops are the operator's own mesh term (`wafer_mesh`), not here.
    """
    clock = hw.clock_hz if hw.clock_hz is not None else np.full(hw.n, 1e9)
    return (hw.rows + hw.cols) / np.maximum(clock, 1.0)


@dataclass
class OpTimes:
    """Per design × operator times (s) and the bound that decided each."""

    compute: np.ndarray
    memory: np.ndarray
    sram: np.ndarray
    comm: np.ndarray
    overhead: np.ndarray
    total: np.ndarray
    offchip_bytes: np.ndarray
    sram_bytes: np.ndarray
    step_share: np.ndarray | float = 0.0  # the part of `overhead` that is the step's fixed cost spread over its operators
    # a wafer-scale chip's on-wafer mesh (`wafer_mesh`): the hops and link time of the operator's region (its
    # compute and SRAM above are then those of the region, not of the whole wafer); 0 elsewhere
    mesh: np.ndarray | float = 0.0

    def bound(self) -> np.ndarray:
        """Index into BOUNDS of the largest component per design × operator. The operator's overhead is
        its own (kernel boundary, exposed host launch), not its share of the step's fixed cost, which no
        operator causes and which would otherwise label every small kernel "overhead"."""
        own = {"overhead": self.overhead - self.step_share}
        stack = np.stack(np.broadcast_arrays(*(own.get(f, getattr(self, f)) for f in TIME_FIELDS.values())))
        return np.argmax(stack, axis=0)


_ROWS = ("noncoll", "flops", "w", "act", "kv", "count", "comm_bytes", "group", "prec", "mm_m", "mm_n", "mm_k",
         "mm_groups", "mm_prec", "mm_sparse", "mm_conv", "launches", "fusable", "tokens", "count_sum",
         "wn0", "wn1", "wn2", "actn0", "actn1", "actn2", "kvn", "cls0", "cls1", "cls2", "kernel0", "kernel1",
         "kernel2")


@dataclass
class _OpStatic:
    """Design-independent columns of operator tables, prepared once. Per-operator fields have one row per
    table, shape (r, k): a single table (r = 1) broadcasts over every design, a stack of tables (`_stack`,
    one row per table; `take` picks one row per design) times different steps on different designs in one
    pass. `mm`, `vec` and the values of `coll` pick the columns of each operator class (padding columns
    of a stack have no FLOPs, bytes nor count)."""

    k: int
    mm: np.ndarray | slice  # columns of matrix operators
    vec: np.ndarray | slice  # vector-unit operators
    coll: dict               # collective kind -> its columns
    noncoll: np.ndarray      # bool (r, k)
    flops: np.ndarray
    w: np.ndarray
    act: np.ndarray
    kv: np.ndarray
    count: np.ndarray
    comm_bytes: np.ndarray
    group: np.ndarray
    prec: np.ndarray         # int (r, k): compute precision of every operator, index into _PRECISIONS
    mm_m: np.ndarray         # (r, len(mm)) from here to mm_conv
    mm_n: np.ndarray
    mm_k: np.ndarray
    mm_groups: np.ndarray
    mm_prec: np.ndarray      # int, index into _PRECISIONS
    mm_sparse: np.ndarray
    mm_conv: np.ndarray
    launches: np.ndarray     # bool (r, k): the operator is a kernel of its own (moves bytes)
    fusable: np.ndarray      # bool (r, k): an epilogue/prologue a fusing stack folds into its neighbour
    tokens: np.ndarray       # (r, 1): tokens of the step (largest M of a weight GEMM): decides comm overlap
    count_sum: np.ndarray    # (r, 1): operators of the step (Σ count, summed as `_rowsum` does)
    # the memory bytes of each operator as a stack runs it, without (0) or with (1) epilogue fusion, or
    # with fusion in convolutional steps only (2) (`Calibration.fusion_variant`; 0 on collectives): weights,
    # activations, KV; which of weights (1) and KV (2) it reads (`cls`); how many kernels of its own it
    # runs (`kernel`: 0, 1, or 2 for an unfused 8/4-bit GEMM whose input a kernel of its own quantizes)
    wn0: np.ndarray
    wn1: np.ndarray
    wn2: np.ndarray
    actn0: np.ndarray
    actn1: np.ndarray
    actn2: np.ndarray
    kvn: np.ndarray
    cls0: np.ndarray
    cls1: np.ndarray
    cls2: np.ndarray
    kernel0: np.ndarray
    kernel1: np.ndarray
    kernel2: np.ndarray
    order: np.ndarray | None  # columns in summation order (matrix, vector, collectives by kind); None: as laid out
    precs: tuple             # precision indices present in `prec`
    mm_precs: tuple          # ... in `mm_prec`
    sparse: bool             # any 2:4 sparse matrix operator
    comm_elsewhere: bool = True  # link bytes on operators other than collectives


    def take(self, rows: np.ndarray, fields: tuple = _ROWS, work: "_Work | None" = None) -> "_OpStatic":
        """The tables of `rows` (indices into the stack's rows), one row each; only `fields` of the
        per-operator fields (the others None). The fields are gathered from `_packed` copies (one gather
        per dtype instead of one per field, into `work`'s arrays when given) and returned as views of them."""
        got = {}
        for packed, spec in self._packed(fields):
            g = packed[rows] if work is None else np.take(packed, rows, axis=0, out=work.new(packed.dtype, packed.shape[1]), mode="clip")
            for f, a, b in spec:
                got[f] = g[:, a:b]
        return _OpStatic(**{f: got.get(f) if f in _ROWS else getattr(self, f) for f in self.__dataclass_fields__})

    def _packed(self, fields: tuple) -> list[tuple[np.ndarray, list[tuple[str, int, int]]]]:
        """`fields` side by side, one (r, Σ widths) array per dtype, with each field's (name, first, end)
        column; built once per table and field set (a stacked table is taken from once per step_times block)."""
        kept = self.__dict__.setdefault("_packs", {})
        hit = kept.get(fields)
        if hit is None:
            groups: dict = {}
            for f in fields:
                v = getattr(self, f)
                if v is not None:
                    groups.setdefault(v.dtype, []).append((f, v))
            hit = []
            for dtype, items in groups.items():
                spec, at = [], 0
                for f, v in items:
                    spec.append((f, at, at + v.shape[1]))
                    at += v.shape[1]
                hit.append((np.ascontiguousarray(np.concatenate([v for _, v in items], axis=1)), spec))
            kept[fields] = hit
        return hit


# the per-operator fields `_busy_free`, `_resident_times` and `_energy_j` read
_BUSY_FIELDS = ("flops", "comm_bytes", "group", "mm_m", "mm_n", "mm_k", "mm_groups", "mm_prec", "mm_sparse", "mm_conv")
_ENERGY_FIELDS = ("flops", "prec", "comm_bytes", "count")
_RESIDENT_FIELDS = {fuse: ("noncoll", "count", "tokens", "count_sum", f"wn{fuse}", f"actn{fuse}", "kvn", f"cls{fuse}",
                           f"kernel{fuse}") + _ENERGY_FIELDS for fuse in (0, 1, 2)}
# the per-operator fields that exist once per fusion variant (`<name><variant>`); variant 2 falls back to 1 on
# statically scheduled chips (`_variant`), so it reads both variants' fields
_VARIANT_FIELDS = ("wn", "actn", "cls", "kernel")
_RESIDENT_FIELDS[2] += tuple(f"{f}1" for f in _VARIANT_FIELDS)


# Vector operators a fusing stack folds into the neighbouring GEMM or attention kernel: RMSNorm/LayerNorm
# into the next GEMM's prologue or the all-reduce, activations and bias/residual adds into GEMM epilogues,
# rotary embedding into attention (TensorRT-LLM fused kernels; FlashAttention; cuBLASLt epilogues).
FUSABLE_KINDS = frozenset({"norm", "act", "elementwise"})
# Smallest token chunk a stack splits a step into to overlap its collectives with compute: an A100
# GEMM at M = 128 already reaches 193 of 312 TFLOPS (LLMCompass matmul_A100.csv, llm_perf_models.md
# §3.3); smaller chunks lose more GEMM efficiency than they hide. Overlap needs >= 2 chunks.
COMM_OVERLAP_MIN_TOKENS = 128
# bytes per operand value of each compute precision (tile size the SRAM must feed a systolic array)
PRECISION_BYTES = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5}
# Where an unsupported compute precision runs: the fastest supported precision that holds its values
# exactly (fp4 e2m1 ⊂ fp8 e4m3; int4 ⊂ int8 and ⊂ fp8 e4m3 (integers up to 16 exact); int8 and fp8 fit
# only in 16-bit). Weights stay in their narrow storage format (bytes unchanged) and are dequantized on
# the way into the array, so the step runs at no worse than that precision's speed. A 16-bit float GEMM (the
# workloads name every one bf16) runs on the bf16 path, else on the fp16 one (Qualcomm Cloud AI 100: fp16 and
# int8 only); fp16 holds every fp8 e4m3 value (max 448, smallest 2^-9) and every int8 exactly, as bf16 does.
_FLOAT16 = ("bf16", "fp16")
COMPUTE_FALLBACK = {"fp4": ("fp4", "fp8") + _FLOAT16, "int4": ("int4", "int8", "fp8") + _FLOAT16,
                    "fp8": ("fp8",) + _FLOAT16, "int8": ("int8",) + _FLOAT16, "bf16": _FLOAT16, "fp16": _FLOAT16}
_PRECISIONS: list[str] = ["bf16"]  # precision names seen in operator tables; static tables hold their index


def _rowsum(x: np.ndarray, st: _OpStatic) -> np.ndarray:
    """Σ over the operators of each row, in `st`'s summation order, one after the other (a cumulative
    sum): a stacked table's padding columns add exact zeros, so a step sums to the same bits stacked or
    alone, whichever other steps share the call."""
    cols = range(x.shape[1]) if st.order is None else st.order
    acc = np.array(x[:, cols[0]], dtype=float)
    for j in cols[1:]:
        acc += x[:, j]
    return acc


def _width(cols: np.ndarray | slice) -> int:
    """Number of columns picked by `cols` (a slice of a stacked table or an index array)."""
    return cols.stop - cols.start if isinstance(cols, slice) else len(cols)


def _prec_index(names: np.ndarray) -> np.ndarray:
    for p in np.unique(names):
        if str(p) not in _PRECISIONS:
            _PRECISIONS.append(str(p))
    code = {p: i for i, p in enumerate(_PRECISIONS)}
    return np.array([code[str(p)] for p in names], np.int64)


def _static(ops) -> _OpStatic:
    cached = getattr(ops, "_perf_static", None)
    if cached is not None:
        return cached
    kinds = np.asarray(ops.kind).astype(str)
    k = len(kinds)
    is_coll = np.isin(kinds, list(COLLECTIVE_KINDS))
    is_vec = np.isin(kinds, list(VECTOR_KINDS))
    mm = np.flatnonzero(~(is_coll | is_vec))
    flops = np.asarray(ops.flops, float)
    m_, k_, n_ = (np.asarray(x, float) for x in (ops.m, ops.k, ops.n))
    mkn = m_ * k_ * n_
    groups = np.where(mkn > 0, flops / np.maximum(2 * mkn, 1.0), 1.0)
    sparse = np.asarray(getattr(ops, "sparse", np.zeros(k)), bool)
    names = np.asarray(ops.name).astype(str)
    w = np.asarray(ops.weight_bytes, float)
    is_gemm = kinds == "gemm"
    weight_gemm = is_gemm & (w > 0)
    prec = _prec_index(np.asarray(ops.compute_precision).astype(str))
    row = {
        "noncoll": ~is_coll, "flops": flops, "w": w,
        "act": np.asarray(ops.act_in_bytes, float) + np.asarray(ops.act_out_bytes, float),
        "kv": np.asarray(ops.kv_read_bytes, float) + np.asarray(ops.kv_write_bytes, float),
        "count": np.asarray(ops.count, float), "comm_bytes": np.asarray(ops.comm_bytes, float),
        "group": np.asarray(ops.group, float), "prec": prec,
        "mm_m": m_[mm], "mm_n": n_[mm], "mm_k": k_[mm], "mm_groups": groups[mm], "mm_prec": prec[mm],
        "mm_sparse": sparse[mm], "mm_conv": np.char.find(names[mm], "conv") >= 0,
        "launches": (w + np.asarray(ops.act_in_bytes, float)
                     + np.asarray(ops.act_out_bytes, float) + np.asarray(ops.kv_read_bytes, float)
                     + np.asarray(ops.kv_write_bytes, float)) > 0,
        "fusable": np.isin(kinds, list(FUSABLE_KINDS)) & (len(mm) > 0),
        "tokens": np.array([float((m_ * groups)[weight_gemm].max()) if weight_gemm.any() else 0.0]),
    }
    # an 8/4-bit weight GEMM (not a convolution) of a stack that does not fuse epilogues gets its input from
    # a 16-bit producer (norm, activation, attention output, all-reduce): a kernel of its own quantizes it
    # first, reading the 16-bit values and writing the narrow ones (FP8 W8A8 of TensorRT-LLM 0.5-0.12 and
    # eager PyTorch's scaled-mm path run a quantize kernel per FP8 GEMM input; fusing stacks write the
    # narrow values from the producer's epilogue). Extra activation bytes: input values x (2 + narrow bytes)
    act_in = np.asarray(ops.act_in_bytes, float)
    narrow_b = np.array([PRECISION_BYTES.get(str(p), 2.0) for p in np.asarray(ops.compute_precision).astype(str)])
    conv = np.char.find(names, "conv") >= 0
    quant = weight_gemm & (narrow_b < 2.0) & ~conv
    quant_bytes = np.where(quant, act_in / np.maximum(narrow_b, 1e-30) * (2.0 + narrow_b), 0.0)
    nc = row["noncoll"]
    row["kvn"] = row["kv"] * nc
    for v in (0, 1):
        fused = row["fusable"] & bool(v)
        row[f"wn{v}"] = np.where(fused, 0.0, w) * nc
        row[f"actn{v}"] = (np.where(fused, 0.0, row["act"]) + (0.0 if v else quant_bytes)) * nc
        row[f"cls{v}"] = (row[f"wn{v}"] > 0).astype(np.int64) + 2 * (row["kvn"] > 0)
        row[f"kernel{v}"] = (nc & row["launches"] & ~fused) * (1.0 + (0.0 if v else quant))
    # variant 2 (`Calibration.plugin_layers`): fused in a convolutional step, unfused otherwise
    v2 = 1 if conv[mm].any() else 0
    for f in _VARIANT_FIELDS:
        row[f"{f}2"] = row[f"{f}{v2}"]
    coll = {c: np.flatnonzero(kinds == c) for c in sorted(COLLECTIVE_KINDS) if (kinds == c).any()}
    order = np.concatenate([mm, np.flatnonzero(is_vec)] + list(coll.values())).astype(np.int64)
    row["count_sum"] = np.cumsum(row["count"][order])[-1:] if k else np.zeros(1)
    st = _OpStatic(k=k, mm=mm, vec=np.flatnonzero(is_vec), coll=coll, order=order,
                   **{f: v[None, :] for f, v in row.items()},
                   precs=tuple(sorted(set(prec.tolist()))), mm_precs=tuple(sorted(set(prec[mm].tolist()))),
                   sparse=bool(sparse[mm].any()), comm_elsewhere=bool((row["comm_bytes"][~is_coll] != 0).any()))
    try:
        object.__setattr__(ops, "_perf_static", st)
    except (AttributeError, TypeError):
        pass
    return st


# padding of a stacked table's empty columns: no FLOPs, bytes nor count; a group of one chip
_PAD = {"group": 1.0, "mm_groups": 1.0, "noncoll": True}


def _stack(tables: tuple) -> _OpStatic:
    """The operator tables `tables` as one static table with a row per table: every table's matrix
    operators in the first columns, then its vector operators, then a block per collective kind (each
    padded to the longest table's), so that one column class is one slice for every row."""
    sts = [_static(t) for t in tables]
    widths = {"mm": max(len(s.mm) for s in sts), "vec": max(len(s.vec) for s in sts)}
    kinds = sorted({c for s in sts for c in s.coll})
    for c in kinds:
        widths[c] = max(len(s.coll.get(c, ())) for s in sts)
    starts, at = {}, 0
    for key, width in widths.items():
        starts[key] = at
        at += width
    k, r = at, len(sts)
    mm_w = widths["mm"]
    out = {}
    for f in _ROWS:
        proto = getattr(sts[0], f)
        cols = 1 if f in ("tokens", "count_sum") else mm_w if f.startswith("mm_") else k
        out[f] = np.full((r, cols), _PAD.get(f, 0), dtype=proto.dtype)
    out["noncoll"][:, starts.get(kinds[0], k) if kinds else k:] = False
    for i, s in enumerate(sts):
        src = np.concatenate([s.mm, s.vec] + [s.coll.get(c, np.zeros(0, np.int64)) for c in kinds]).astype(np.int64)
        dst = np.concatenate([starts["mm"] + np.arange(len(s.mm)), starts["vec"] + np.arange(len(s.vec))]
                             + [starts[c] + np.arange(len(s.coll.get(c, ()))) for c in kinds]).astype(np.int64)
        for f in _ROWS:
            v = getattr(s, f)[0]
            if f in ("tokens", "count_sum"):
                out[f][i] = v
            elif f.startswith("mm_"):
                out[f][i, :len(v)] = v
            else:
                out[f][i, dst] = v[src]
    return _OpStatic(k=k, mm=slice(starts["mm"], starts["mm"] + mm_w),
                     vec=slice(starts["vec"], starts["vec"] + widths["vec"]),
                     coll={c: slice(starts[c], starts[c] + widths[c]) for c in kinds if widths[c]},
                     order=None, **out, precs=tuple(sorted(set(out["prec"].ravel().tolist()))),
                     mm_precs=tuple(sorted(set(out["mm_prec"].ravel().tolist()))),
                     sparse=any(s.sparse for s in sts), comm_elsewhere=any(s.comm_elsewhere for s in sts))


def compute_peak(hw: HwView, precision: str) -> tuple[np.ndarray, np.ndarray]:
    """(peak FLOP/s, runs-on-a-narrow-path) per design for GEMMs of compute `precision`: the first
    precision of COMPUTE_FALLBACK[precision] the design supports (none of them: its bf16 peak, 0)."""
    fast = _peak_compiled(hw, precision)
    if fast is not None:
        return fast
    # the fallbacks from the last to the first, each over the later ones: the first supported wins (one select each)
    peak = np.array(hw.peak_flops["bf16"], float)
    narrow = np.zeros(hw.n, bool)
    for q in reversed(COMPUTE_FALLBACK.get(precision, (precision, "bf16"))):
        pk = hw.peak_flops.get(q)
        if pk is None:
            continue
        use = pk > 0
        peak = np.where(use, pk, peak)
        narrow = (narrow | use) if q not in ("bf16", "fp16") else (narrow & ~use)
    return peak, narrow


_FALLBACKS: dict[tuple, tuple] = {}  # (precision, peak table's precisions) → (fallbacks present, last first; 16-bit)


def _peak_compiled(hw: HwView, precision: str) -> tuple[np.ndarray, np.ndarray] | None:
    """`compute_peak` in one compiled pass (`design_kernel.peak_kernel`) where the compiled kernels are on and the
    peaks are (n,) columns; else None."""
    dk = _dk_module()
    if dk is None:
        return None
    table = hw.peak_flops
    key = (precision, tuple(table))
    hit = _FALLBACKS.get(key)
    if hit is None:
        if len(_FALLBACKS) > 256:
            _FALLBACKS.clear()
        names = [q for q in reversed(COMPUTE_FALLBACK.get(precision, (precision, "bf16"))) if q in table]
        hit = _FALLBACKS[key] = (names, np.array([q in ("bf16", "fp16") for q in names], bool))
    n = hw.n
    try:
        pk = np.array([table[q] for q in hit[0]], float).reshape(len(hit[0]), -1)
    except ValueError:
        return None
    if pk.shape[1] != n:
        return None
    peak, narrow = np.empty(n), np.empty(n, bool)
    dk.peak_kernel(kernel_column(table["bf16"], n), pk, hit[1], peak, narrow)
    return peak, narrow


def run_energy(epf: dict[str, np.ndarray], peak: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """pJ per FLOP of an operator of each compute precision: that of the precision it runs on (the first
    of COMPUTE_FALLBACK the design supports, as `compute_peak`), so an fp8 GEMM on a chip without fp8
    costs a bf16 FLOP's energy as it takes a bf16 FLOP's time. The workloads name every 16-bit float GEMM
    bf16 (`dse.workloads.precision`: fp16 and bf16 models alike), and a chip with fp16 runs it on its
    fp16-wide multiplier at the same rate, so it pays an fp16 MAC there; a chip without fp16 (TPU v4 / v5e)
    pays the bf16 MAC's 8-bit multiplier (technology mac_energy).
    Columns of one shape and dtype float64 (what `HwView.from_arrays` passes) take one gather for every precision
    (`_run_energy_table`); other inputs the loop over the fallbacks (`_run_energy_loop`): the same values."""
    if not epf:
        return {}
    cols = list(epf.values()) + list(peak.values())
    shape = np.shape(cols[0])
    if len(shape) != 1 or not all(type(c) is np.ndarray and c.dtype == np.float64 and c.shape == shape
                                              for c in cols):
        return _run_energy_loop(epf, peak)
    e_keys, p_keys = tuple(epf), tuple(peak)
    e_row, s_row = _run_energy_table(e_keys, p_keys)
    if "bf16" in epf and "fp16" in epf and "fp16" in peak:
        epf = {**epf, "bf16": np.where(peak["fp16"] > 0, epf["fp16"], epf["bf16"])}
    n = shape[0]
    energy = np.array(list(epf.values()))  # (precision of epf, design)
    supported = np.ones((len(p_keys) + 1, n), bool)  # (precision of peak, design); the last row: the default's
    np.greater(np.array(list(peak.values())), 0.0, out=supported[:-1])
    tried, runs = supported[s_row], energy[e_row]  # (precision, fallback, design) each
    out = runs[:, -1]  # the default (the last column: supported everywhere)
    for w in range(e_row.shape[1] - 2, -1, -1):  # then each fallback over the later ones: the first supported wins
        out = np.where(tried[:, w], runs[:, w], out)
    return dict(zip(e_keys, out))


_RUN_ENERGY: dict[tuple, tuple] = {}


def _run_energy_table(e_keys: tuple[str, ...], p_keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per precision of `e_keys` (an energy table's), its fallbacks present in both tables (COMPUTE_FALLBACK, as
    `_run_energy_loop` tries them), then its default: (row in the energy table, row in the peak table; the default's
    row is an all-supported one past the peaks) of each, padded with the default; once per pair of key tuples."""
    key = (e_keys, p_keys)
    hit = _RUN_ENERGY.get(key)
    if hit is None:
        if len(_RUN_ENERGY) > 256:
            _RUN_ENERGY.clear()
        tries = [[q for q in COMPUTE_FALLBACK.get(p, (p, "bf16")) if q in e_keys and q in p_keys] for p in e_keys]
        width = max(map(len, tries)) + 1
        default = [e_keys.index("bf16") if "bf16" in e_keys else i for i in range(len(e_keys))]
        e_row = np.array([[e_keys.index(q) for q in t] + [d] * (width - len(t)) for t, d in zip(tries, default)],
                         np.int64).reshape(len(e_keys), width)
        s_row = np.array([[p_keys.index(q) for q in t] + [len(p_keys)] * (width - len(t)) for t in tries],
                         np.int64).reshape(len(e_keys), width)
        hit = _RUN_ENERGY[key] = (e_row, s_row)
    return hit


def _run_energy_loop(epf: dict[str, np.ndarray], peak: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`run_energy` precision by precision and fallback by fallback (any shapes that broadcast)."""
    if "bf16" in epf and "fp16" in epf and "fp16" in peak:
        epf = {**epf, "bf16": np.where(np.asarray(peak["fp16"]) > 0, epf["fp16"], epf["bf16"])}
    out = {}
    for p, e in epf.items():
        e_run = np.array(epf.get("bf16", e), dtype=float)
        done = np.zeros(e_run.shape, bool)
        for q in COMPUTE_FALLBACK.get(p, (p, "bf16")):
            if q in epf and q in peak:
                use = ~done & (peak[q] > 0)
                e_run = np.where(use, epf[q], e_run)
                done |= use
        out[p] = e_run
    return out


def _array_utilization(st: _OpStatic, hw: HwView, narrow: np.ndarray, sram_bps: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(utilisation, SRAM feed time in s), each (n, mm), of the MAC arrays on each matrix operator.

    SIMT cores (GPUs): the M·N outputs spread over all rows·cols lanes of every core (kernels tile M and
    N jointly; a batch-1 GEMV is not padded onto tensor-core rows and is bound by memory); no feed term.
    Systolic arrays: M streams through a stationary K×N operand tile, so an M below the row count is not
    padded; instead every operand of the K×N side must be loaded into the arrays from SRAM once, which
    takes (K·N·bytes) / the sustained SRAM rate `sram_bps` (see `sram_rate`): an SRAM-resident chip at batch 1 is limited by how fast SRAM
    feeds its arrays. M above the row count pads as in `gemm_utilization`.
    """
    simt = ~np.asarray(hw.dataflow, bool)
    util = np.empty(narrow.shape)
    feed = np.zeros(narrow.shape)
    split_all = wafer_split_min(hw, SPLIT_K_MIN)
    for style in (True, False):  # each design's style only
        i = np.flatnonzero(simt == style)
        if not len(i):
            continue
        m, n, k, g = (x if x.shape[0] == 1 else x[i] for x in (st.mm_m, st.mm_n, st.mm_k, st.mm_groups))
        rows, cols, cores = hw.rows[i, None], hw.cols[i, None], hw.cores[i, None]
        split = split_all if np.ndim(split_all) == 0 else split_all[i, None]
        if style:
            util[i] = gemm_utilization(np.ones_like(m), m * n, np.ones_like(rows), rows * cols, cores, g, k, split)
        else:
            util[i] = gemm_utilization(np.maximum(m, rows), n, rows, cols, cores, g, k, split)
            bpv = np.where(narrow[i], 1.0, 2.0)  # operand bytes of the precision the array runs at
            feed[i] = k * n * g * bpv / np.maximum(sram_bps[i, None], 1.0)
    return util, feed


def sram_rate(hw: HwView, cal: Calibration) -> np.ndarray:
    """Per design: sustained on-chip SRAM bandwidth (B/s). SRAM is the landing buffer of every off-chip
    byte on its way to the arrays (a cache sits in front of the memory; a scratchpad stages streamed
    tiles), so its ports pass at least the memory's sustained stream: a cache is never slower than the
    memory behind it, and moving a byte from off-chip to SRAM never makes a step slower."""
    stream = 1.0 if hw.mem_stream_eff is None else hw.mem_stream_eff
    return np.maximum(hw.sram_bw * cal.sram_eff_max, hw.mem_bw * stream * cal.mem_eff_max)


def op_times(ops, hw: HwView, cal: Calibration, weights_resident, kv_resident, resident_bytes=None) -> OpTimes:
    """Times of every operator of `ops` (an OpTable of one chip) on every design of `hw`.

    `weights_resident` / `kv_resident` (shape (n,), bool or a fraction in [0, 1]) say which share of the
    weights / KV cache lives in SRAM; the rest streams from off-chip memory every step (a partly resident
    tensor streams its remainder inside the same kernel, so the kernel's ramp-up/tail is paid
    scaled by the streamed share: time is continuous in the resident fraction). Activations stay on chip when an operator's
    activations fit in the SRAM left over by `resident_bytes` (shape (n,)), else they spill off-chip too.
    Step-level terms (the stack's per-step overhead, communication hidden under compute) are spread over
    the step's operators so that the step time Σ count·total includes each exactly once.
    """
    st = _static(ops)
    return _resident_times(st, hw, cal, _busy_free(st, hw, cal), weights_resident, kv_resident, resident_bytes)


_FLOAT = np.dtype(float)


class _Work:
    """Scratch arrays of one block of `step_times`' numpy path: `new()` hands out the next (n, k) float array
    (`new(dtype, cols)`: of that dtype, (n, cols)) of a per-thread pool kept between calls, so the pages of a block's ~40
    temporaries are not faulted in from the OS again on every block (which cost more than their arithmetic).
    Without a pool (`_Work(n, k, None)`) every array is fresh; arrays handed out stay valid until the next
    `_Work` of the thread."""

    def __init__(self, n: int, k: int, pool: "threading.local | None" = None):
        self.n, self.k, self.at = n, k, {}
        self.bufs = None
        if pool is not None:
            self.bufs = getattr(pool, "bufs", None)
            if self.bufs is None:
                self.bufs = pool.bufs = {}

    def new(self, dtype=float, cols: int | None = None) -> np.ndarray:
        cols = self.k if cols is None else cols
        if self.bufs is None:
            return np.empty((self.n, cols), dtype)
        dt = _FLOAT if dtype is float else np.dtype(dtype)
        size = self.n * cols
        at = self.at.get(dt, 0)
        buf = self.bufs.get(dt)
        if buf is None or len(buf) < at + size:
            # a larger block than any before: a bigger buffer (the arrays handed out so far keep the old one)
            buf = self.bufs[dt] = np.empty(max(2 * (at + size), WORK_ELEMENTS), dt)
            at = 0
        self.at[dt] = at + size
        return buf[at:at + size].reshape(self.n, cols)


@dataclass
class _Free:
    """The residency-independent part of operator times, (n, k) per design × operator: compute time,
    collective time and its bandwidth part; (n, 1): the per-kernel gap."""

    compute: np.ndarray
    comm: np.ndarray
    comm_bw: np.ndarray
    gap: np.ndarray

    def take(self, rows: np.ndarray, work: "_Work | None" = None) -> "_Free":
        """The rows `rows`; the (n, k) arrays into `work`'s when given."""
        if work is None:
            return _Free(self.compute[rows], self.comm[rows], self.comm_bw[rows], self.gap[rows])
        return _Free(*(np.take(a, rows, axis=0, out=work.new(), mode="clip") for a in (self.compute, self.comm, self.comm_bw)),
                     self.gap[rows])


def _busy_free(st: _OpStatic, hw: HwView, cal: Calibration) -> _Free:
    """Compute and collective times of `st`'s operators on `hw` (one table row per design, or one for all)."""
    n, k = hw.n, st.k
    compute = np.zeros((n, k))
    mm_w = st.mm_m.shape[1]
    if mm_w:
        peak = np.zeros((n, mm_w))
        narrow = np.zeros((n, mm_w), bool)
        for p in st.mm_precs:
            pk, nw = compute_peak(hw, _PRECISIONS[p])
            cols_p = st.mm_prec == p
            peak = np.where(cols_p, pk[:, None], peak)
            narrow = np.where(cols_p, nw[:, None], narrow)
        # 2:4 weight GEMMs list the FLOPs actually executed (half the dense ones): a chip with sparse
        # tensor cores runs them at its dense peak, a chip without must run the dense FLOPs (2x)
        if st.sparse:
            peak *= np.where(st.mm_sparse & ~hw.sparsity[:, None], 0.5, 1.0)
        util, feed = _array_utilization(st, hw, narrow, sram_rate(hw, cal))
        # narrow datatypes double the operand rate per FLOP the array must be fed: `lowp_eff`
        eff = np.where(st.mm_conv, cal.conv_eff, cal.compute_eff_max * np.where(narrow, cal.lowp_eff, 1.0))
        compute[:, st.mm] = np.maximum(st.flops[:, st.mm] / np.maximum(peak * util * eff, 1.0), feed)
    if _width(st.vec):
        # a chip without a vector unit runs elementwise work on one row of its MAC arrays, at its 16-bit float
        # rate (bf16, else fp16: `compute_peak`; a chip with fp16 only had 0 FLOP/s here)
        vec = np.where(hw.vector_flops > 0, hw.vector_flops, compute_peak(hw, "bf16")[0] / np.maximum(hw.rows, 1.0))
        compute[:, st.vec] = st.flops[:, st.vec] / np.maximum(vec[:, None] * cal.compute_eff_max, 1.0)
    comm = np.zeros((n, k))
    comm_bw = np.zeros((n, k))
    for kind, cols in st.coll.items():
        t_bw, t_lat = collective_time(kind, st.comm_bytes[:, cols], st.group[:, cols], hw, cal, split=True)
        comm[:, cols] = t_bw + t_lat
        comm_bw[:, cols] = t_bw
    dyn = ~np.asarray(hw.dataflow, bool)[:, None]
    gap = np.where(dyn, cal.kernel_gap_us * 1e-6, fill_time_s(hw)[:, None])
    return _Free(compute, comm, comm_bw, gap)


def _variant(st: _OpStatic, field: str, fuse: int, hw: HwView) -> np.ndarray:
    """Per-operator field `field` of fusion variant `fuse` (`Calibration.fusion_variant`). Plugin layers (2) are
    a GPU runtime's: a statically scheduled chip runs its compiled step fused (variant 1), so variant 2 picks
    per design, (n, k)."""
    if fuse != 2:
        return getattr(st, f"{field}{fuse}")
    dyn = ~np.asarray(hw.dataflow, bool)[:, None]
    return np.where(dyn, getattr(st, f"{field}2"), getattr(st, f"{field}1"))


def _resident_times(st: _OpStatic, hw: HwView, cal: Calibration, free: _Free, weights_resident, kv_resident,
                    resident_bytes=None, work: "_Work | None" = None) -> OpTimes:
    """`op_times` from the residency-independent part `free` (see `op_times` for the arguments); its (n, k)
    arrays come from `work` (`step_times`' pool; fresh arrays when None)."""
    n = hw.n
    new = (work or _Work(n, st.k)).new
    t = new()  # scratch of short-lived products
    compute, comm, comm_bw = free.compute, free.comm, free.comm_bw
    wres = np.clip(np.asarray(weights_resident, float), 0.0, 1.0)[:, None]
    kres = np.clip(np.asarray(kv_resident, float), 0.0, 1.0)[:, None]
    has_mem = (hw.mem_bw > 0)[:, None]
    # a fused epilogue's activations never leave the kernel, and its few parameters (norm scales) ride
    # along with the host kernel's operands (`_static`: weights, KV and activations of each operator as
    # the stack runs it, zero on collectives, which move no memory bytes)
    fuse = cal.fusion_variant
    w, kv, act = _variant(st, "wn", fuse, hw), st.kvn, _variant(st, "actn", fuse, hw)
    resident = np.zeros(n) if resident_bytes is None else np.asarray(resident_bytes, float)
    # activations stay on chip as far as they fit in the SRAM left over (all of them on a chip without
    # memory); only the excess round-trips through memory, so time is continuous in `sram_mb`
    free_sram = np.where(has_mem[:, 0], np.maximum(hw.sram_bytes - resident, 0.0), np.inf)[:, None]
    nc = st.noncoll
    act_off = np.subtract(act, free_sram, out=new())
    np.maximum(act_off, 0.0, out=act_off)
    off = np.multiply(1.0 - wres, w, out=new())
    off += np.multiply(1.0 - kres, kv, out=t)
    off += act_off
    off *= has_mem
    # share of the operator's transfer still streamed: 1 when any of its tensors streams whole (f in
    # {0, 1} gives the all-or-nothing model exactly), → 0 as a partly resident tensor becomes resident.
    # Per operator: 0, 1 − wres, 1 − kres or the larger of the two (which tensors it has, `cls`)
    sw, sk = 1.0 - wres, 1.0 - kres
    shares = np.concatenate([np.zeros_like(sw), sw, sk, np.maximum(sw, sk)], axis=1)
    cls = _variant(st, "cls", fuse, hw)
    if cls.shape[0] == 1:
        streamed = np.take(shares, cls[0], axis=1, out=new(), mode="clip")
    else:  # each row's own classes: flat indices into `shares`
        at = np.add(cls, (np.arange(n) * shares.shape[1])[:, None], out=new(np.int64))
        streamed = np.take(shares.reshape(-1), at, out=new(), mode="clip")
    np.maximum(streamed, np.divide(act_off, np.maximum(act, 1e-300, out=t), out=t), out=streamed)
    stream = 1.0 if hw.mem_stream_eff is None else hw.mem_stream_eff[:, None]
    # a streaming kernel on a dynamically scheduled chip (GPU) runs at the sustained rate after a fixed
    # ramp-up and tail (a time, the same on a slow or a fast memory: CTAs launching, first requests in
    # flight, last wave draining), paid by the streamed share so that time stays continuous in residency.
    # A statically scheduled chip issues the next operator's DMA before the current one ends: no ramp.
    memory = np.divide(off, np.maximum(hw.mem_bw[:, None] * stream * cal.mem_eff_max, 1.0), out=new())
    memory += np.multiply((cal.mem_ramp_us * 1e-6 * ~np.asarray(hw.dataflow, bool))[:, None], streamed, out=t)
    memory *= np.greater(off, 0, out=new(bool))

    # SRAM port traffic: what lives on chip plus every streamed byte, which lands in SRAM (cache fill or
    # double-buffered staging) on its way to the arrays. Moving a byte on chip keeps this sum and shrinks
    # the memory term, so more SRAM (or SRAM bandwidth) never makes an operator slower.
    on = np.multiply(wres, w, out=new())
    on += np.multiply(kres, kv, out=t)
    on += np.subtract(act, act_off, out=t)
    through = np.add(on, off, out=new())
    sram = np.divide(through, np.maximum(sram_rate(hw, cal)[:, None], 1.0), out=new())
    if hw.d2d_share is not None and (hw.d2d_share > 0).any():
        # a chiplet split moves the SRAM traffic that crosses a die edge over the die-to-die PHYs
        np.multiply(hw.d2d_share[:, None], through, out=t)
        np.maximum(sram, np.divide(t, np.maximum(hw.d2d_bw[:, None], 1.0), out=t), out=sram)

    # per-kernel cost of an operator that stays a kernel of its own (a fused epilogue, or an operator that
    # moves no bytes of its own such as a conv's ReLU, costs its FLOPs only):
    # - dynamically scheduled chip (GPU): the device-side boundary `kernel_gap_us`; a stack launching
    #   kernels one by one from the host issues one kernel per `launch_us` into an asynchronous queue:
    #   the GPU runs ahead of the host, so a long kernel builds a backlog that the short kernels after
    #   it drain without waiting. The step therefore takes max(GPU time, host issue time) (queue model
    #   of a repeated layer), and only the host's excess over the GPU's time is exposed; it is spread
    #   over the step's kernels in proportion to their counts.
    # - statically scheduled chip: array fill/drain (fill_time_s), no launches
    kernel = _variant(st, "kernel", fuse, hw)
    # a matrix kernel near the knee overlaps loads and math imperfectly: its time is the p-norm of the two
    # roofs (Calibration.knee_p; continuous and increasing in both, so more bandwidth or FLOPs never slows
    # it). `compute` and `memory` keep the roofs themselves (the bound label is the larger one).
    roofs = np.maximum(compute, memory, out=new())
    c, mem = compute[:, st.mm], memory[:, st.mm]
    mm_w = c.shape[1]
    if mm_w:
        hi = np.maximum(roofs[:, st.mm], 1e-300, out=new(float, mm_w))
        x, y = np.divide(c, hi, out=new(float, mm_w)), np.divide(mem, hi, out=new(float, mm_w))
        x **= cal.knee_p
        y **= cal.knee_p
        x += y
        x **= 1.0 / cal.knee_p
        x *= hi
        roofs[:, st.mm] = x
    busy = np.maximum(roofs, sram, out=roofs)
    # a wafer-scale chip's operators on their regions of the on-wafer mesh (`wafer_mesh`): at least the region's time
    # (on the wafer-scale rows' operators with a region only: the others' arithmetic is untouched)
    mesh = _mesh_terms(st, hw, compute, sram, kernel, act, w, kv)
    if mesh is not None:
        np.maximum(busy, mesh[0], out=busy, where=mesh[1])
    dyn = ~np.asarray(hw.dataflow, bool)[:, None]
    overhead = np.multiply(free.gap, kernel, out=new())
    top = np.maximum(busy, comm, out=new())
    if cal.launch_us > 0:
        cnt = st.count
        launches = _rowsum(np.multiply(kernel, cnt, out=t), st)
        gpu = _rowsum(np.multiply(np.add(top, overhead, out=t), cnt, out=t), st)
        host = np.where(dyn[:, 0], cal.launch_us * 1e-6 * launches, 0.0)
        excess = np.maximum(host - gpu, 0.0) / np.maximum(launches, 1.0)
        overhead += np.multiply(excess[:, None], kernel, out=t)
    overlap = st.tokens >= 2 * COMM_OVERLAP_MIN_TOKENS  # (rows, 1)
    if cal.comm_overlap > 0 and st.coll and overlap.any():
        # hide up to comm_overlap of every collective's bandwidth time under the step's compute
        cnt = st.count
        want = cal.comm_overlap * _rowsum(np.multiply(comm_bw, cnt, out=t), st)
        np.add(busy, overhead, out=t)
        t *= cnt
        t *= nc
        room = _rowsum(t, st)
        frac = np.where(want > 0, np.minimum(want, room) / np.maximum(want, 1e-300), 0.0)[:, None]
        hidden = np.multiply(cal.comm_overlap, comm_bw, out=new())
        hidden *= frac
        hidden = np.subtract(comm, hidden, out=hidden)
        np.copyto(hidden, comm, where=~overlap)
        comm = hidden
        np.maximum(busy, comm, out=top)
    total_count = np.maximum(st.count_sum, 1.0)
    step_share = cal.step_overhead_us * 1e-6 / total_count
    overhead += step_share
    total = np.add(top, overhead, out=new())
    if mesh is None:
        return OpTimes(compute, memory, sram, comm, overhead, total, off, on, step_share)
    # the roofline's components of a wafer-scale operator are its region's (2^k of the whole wafer's time) and its mesh
    scale = np.exp2(mesh[3])
    return OpTimes(compute * scale, memory, sram * scale, comm, overhead, total, off, on, step_share, mesh[2])


def _mesh_terms(st: _OpStatic, hw: HwView, compute, sram, kernel, act, w, kv):
    """(region time (n, k), where it applies (n, k) bool: the wafer-scale rows' operators with a traversal, mesh part
    (n, k), region exponent (n, k)) of `wafer_mesh` on the wafer-scale rows of `hw` (zeros elsewhere), or None when no
    row is wafer-scale. The traversals of each operator: its kernels × MESH_TRAVERSALS_MATRIX (matrix operators) or
    _VECTOR (the others; none on collectives)."""
    if hw.mesh_tiles is None:
        return None
    tiles, hop, fab = wafer_mesh_constants(hw)
    rows = np.flatnonzero(tiles > 0)
    if not len(rows):
        return None
    n, k = compute.shape
    kappa = np.full(k, MESH_TRAVERSALS_VECTOR)
    kappa[st.mm] = MESH_TRAVERSALS_MATRIX
    for cols in st.coll.values():
        kappa[cols] = 0.0

    def pick(x):
        x = np.asarray(x, float)
        return x if x.shape[0] == 1 else x[rows]
    local = np.maximum(compute[rows], sram[rows])
    trav = pick(kernel) * kappa
    region, part, kstar = wafer_mesh(local, trav, pick(w) + pick(kv), pick(act), tiles[rows], hop[rows], fab[rows],
                                     hw.sram_bytes[rows])
    out = [np.zeros((n, k)), np.zeros((n, k), bool), np.zeros((n, k)), np.zeros((n, k))]
    out[0][rows], out[1][rows], out[2][rows], out[3][rows] = region, trav > 0, part, kstar
    return out


def op_energy_j(ops, hw: HwView, times: OpTimes) -> np.ndarray:
    """Dynamic energy (J) of each design × operator: FLOPs, SRAM bytes, off-chip bits, link bits."""
    return _energy_j(_static(ops), hw, times.offchip_bytes, times.sram_bytes)


def _energy_j(st: _OpStatic, hw: HwView, offchip_bytes: np.ndarray, sram_bytes: np.ndarray,
              work: "_Work | None" = None) -> np.ndarray:
    n, k = hw.n, st.k
    new = (work or _Work(n, k)).new
    # each operator its precision's energy (0 where none); one precision: its energy broadcast
    e_flop = 0.0
    if len(st.precs) > 1:
        e_flop = new()
        e_flop.fill(0.0)
    for p in st.precs:
        e = hw.energy_pj_per_flop.get(_PRECISIONS[p], hw.energy_pj_per_flop.get("bf16", np.zeros(n)))
        e = np.asarray(e, float)[:, None] if np.ndim(e) else e
        if len(st.precs) == 1:
            e_flop = e
        else:
            np.copyto(e_flop, e, where=np.equal(st.prec, p, out=new(bool)))
    zero = np.zeros(n)
    e_sram = (hw.sram_pj_per_byte if hw.sram_pj_per_byte is not None else zero)[:, None]
    e_mem = (hw.mem_pj_per_bit if hw.mem_pj_per_bit is not None else zero)[:, None]
    e_link = (hw.link_pj_per_bit if hw.link_pj_per_bit is not None else zero)[:, None]
    # an off-chip byte is written into and read out of on-chip SRAM staging on its way to the arrays:
    # pj = flops·e_flop + (sram + 2·offchip)·e_sram + offchip·8·e_mem + comm·8·e_link, term by term in place
    pj = np.multiply(st.flops, e_flop, out=new())
    part = np.multiply(offchip_bytes, 2.0, out=new())
    part += sram_bytes
    part *= e_sram
    pj += part
    np.multiply(offchip_bytes, 8, out=part)
    part *= e_mem
    pj += part
    if st.comm_elsewhere:
        np.multiply(st.comm_bytes, 8, out=part)
        part *= e_link
        pj += part
    else:
        for cols in st.coll.values():  # link bits: collectives only (the others add exact zeros)
            pj[:, cols] += (st.comm_bytes[:, cols] * 8) * e_link
    pj *= 1e-12
    return pj


# elements (pairs × operator columns) per block of `step_times`: bounds its temporaries (~2 MB each)
STEP_BLOCK_ELEMENTS = 1 << 18
# elements (instances × operator columns) per block of `step_times`' residency pass: its ~40 temporaries
# (`_Work`, 256 KB each) are kept per thread and stay in the L2 cache
WORK_ELEMENTS = 1 << 15
_WORK = threading.local()
# a step timed on at least this many designs is timed on its own (its table broadcast, nothing gathered);
# the steps of fewer designs are timed together from their stacked tables (one pass instead of one each)
STEP_OWN_PAIRS = 512
_STACKS: dict[tuple, tuple] = {}


class _Alone:
    """Each table of a step list stacked alone (`_stack((t,))`), built the first time a step is timed on its own
    (on at least STEP_OWN_PAIRS designs: most steps of a small call never are)."""

    def __init__(self, tables: tuple):
        self.tables, self.built = tables, {}

    def __getitem__(self, s: int) -> _OpStatic:
        hit = self.built.get(s)
        if hit is None:
            hit = self.built[s] = _stack((self.tables[s],))
        return hit


def _stacks(tables) -> tuple[_OpStatic, _Alone]:
    """(all tables stacked, each table stacked alone), cached on the tables' identities (first on the identity of
    the tuple itself: the mapping passes the same tuple of a plan table's steps on every call)."""
    hit = _STACKS.get(id(tables))
    if hit is not None and hit[0] is tables:
        return hit[1], hit[2]
    key = tuple(id(t) for t in tables)
    hit = _STACKS.get(key)
    if hit is None:
        if len(_STACKS) > 64:
            _STACKS.clear()
        tables = tuple(tables)
        hit = _STACKS[key] = (tables, _stack(tables), _Alone(tables))  # keeps the ids alive
    if isinstance(tables, tuple):
        _STACKS[id(tables)] = (tables,) + hit[1:]  # (the entry keeps the tuple alive, so its id is not reused)
    return hit[1], hit[2]


def stacked_tables(tables) -> _OpStatic:
    """The operator tables of a step list stacked one row per step (`_stack`, cached as `step_times` caches it):
    row s is `tables[s]`."""
    return _stacks(tables)[0]


# what `step_times` reads of a HwView (the rest is not gathered per instance)
_STEP_HW_FIELDS = ("vector_flops", "rows", "cols", "cores", "mem_bw", "sram_bw", "sram_bytes", "link_bw",
                   "link_latency_s", "link_rdma", "topology", "dataflow", "sparsity", "mem_stream_eff", "clock_hz",
                   "sram_pj_per_byte", "mem_pj_per_bit", "link_pj_per_bit", "d2d_bw", "d2d_share", "mesh_tiles",
                   "mesh_hop_cycles", "mesh_link_bytes")


# ... and what `_resident_times` and `_energy_j` read of it
_RESIDENT_HW_FIELDS = ("mem_bw", "sram_bytes", "mem_stream_eff", "sram_bw", "d2d_share", "d2d_bw", "dataflow",
                       "energy_pj_per_flop", "sram_pj_per_byte", "mem_pj_per_bit", "link_pj_per_bit", "clock_hz",
                       "mesh_tiles", "mesh_hop_cycles", "mesh_link_bytes")


def _slim(hw: HwView, stack: _OpStatic) -> HwView:
    """`hw` with only what timing `stack`'s operator tables reads (no copies): cheaper to gather per instance."""
    precs = {"bf16"} | {_PRECISIONS[p] for p in stack.precs}
    peaks = set(_FLOAT16) | {q for p in stack.mm_precs for q in COMPUTE_FALLBACK.get(_PRECISIONS[p], (_PRECISIONS[p],))}
    keep = {f: getattr(hw, f) for f in _STEP_HW_FIELDS}
    return HwView(peak_flops={k: v for k, v in hw.peak_flops.items() if k in peaks},
                  energy_pj_per_flop={k: v for k, v in hw.energy_pj_per_flop.items() if k in precs},
                  mem_bytes=None, num_chips=None, **keep)


def step_times(tables, table_of, design_of, hw: HwView, cal: Calibration, weights_resident, kv_resident,
               resident_bytes, energy_of=None) -> tuple[np.ndarray, np.ndarray]:
    """(time s, dynamic energy J) per chip of each instance i: operator table `tables[table_of[i]]` (one
    step) on design `design_of[i]` of `hw` with the given resident shares and bytes: Σ count × `op_times`
    and Σ count × `op_energy_j` (summed in `_rowsum` order). The residency-independent part is computed once
    per (design, step) however many residencies share it; steps on few designs are timed together from
    their stacked tables. Energy only where `energy_of[i]` (all when None; NaN elsewhere)."""
    stack, alone = _stacks(tables)
    kernel = compiled_kernel(len(table_of) * stack.k)
    if kernel is not None:
        return _step_times_compiled(kernel, stack, table_of, design_of, hw, cal, weights_resident, kv_resident,
                                    resident_bytes, energy_of)
    m, n = len(table_of), hw.n
    hw = _slim(hw, stack)
    t_out, e_out = np.empty(m), np.full(m, np.nan)
    if not m:
        return t_out, e_out
    pair = np.asarray(table_of, np.int64) * n + np.asarray(design_of, np.int64)
    order = np.argsort(pair, kind="stable")
    sp = pair[order]
    new = np.concatenate([[True], sp[1:] != sp[:-1]])
    first = np.append(np.flatnonzero(new), m)   # first row (in `order`) of each distinct pair, then m
    run = np.cumsum(new) - 1                     # distinct pair of each row (in `order`)
    upair = sp[first[:-1]]
    ustep, udesign = upair // n, upair % n
    wres, kres, res = (np.broadcast_to(np.asarray(x, float), (m,))[order] for x in
                       (weights_resident, kv_resident, resident_bytes))
    want_e = np.ones(m, bool) if energy_of is None else np.asarray(energy_of, bool)[order]
    # segments of distinct pairs: (first pair, end pair, table stacked alone or None for the whole stack)
    bounds = np.searchsorted(ustep, np.arange(len(tables) + 1))
    segs, a = [], None
    for s_, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        if hi - lo >= STEP_OWN_PAIRS:
            step = max(1, STEP_BLOCK_ELEMENTS // max(alone[s_].k, 1))
            segs += [(b, min(b + step, hi), alone[s_]) for b in range(lo, hi, step)]
        elif hi > lo:
            if a is None or (hi - a) * stack.k > STEP_BLOCK_ELEMENTS or segs[-1][2] is not None:
                segs.append((lo, hi, None))
                a = lo
            else:
                segs[-1] = (a, hi, None)
    for a, b, own in segs:
        st_u = own if own is not None else stack.take(ustep[a:b], _BUSY_FIELDS)
        hw_u = hw.take(udesign[a:b])
        free = _busy_free(st_u, hw_u, cal)
        k = stack.k if own is None else own.k
        # the segment's instances in blocks of at most WORK_ELEMENTS elements, each block's arrays in the pool
        step = max(1, WORK_ELEMENTS // max(k, 1))
        for lo in range(first[a], first[b], step):
            hi = min(lo + step, first[b])
            work = _Work(hi - lo, k, _WORK)
            inv = run[lo:hi] - a
            st_r = own if own is not None else stack.take(ustep[a:b][inv], _RESIDENT_FIELDS[cal.fusion_variant], work)
            hw_r = hw_u.take(inv, _RESIDENT_HW_FIELDS)
            times = _resident_times(st_r, hw_r, cal, free.take(inv, work), wres[lo:hi], kres[lo:hi], res[lo:hi], work)
            t_out[order[lo:hi]] = _rowsum(np.multiply(times.total, st_r.count, out=work.new()), st_r)
            sel = np.flatnonzero(want_e[lo:hi])
            if len(sel) == hi - lo:
                e = _energy_j(st_r, hw_r, times.offchip_bytes, times.sram_bytes, work)
                e_out[order[lo:hi]] = _rowsum(np.multiply(e, st_r.count, out=e), st_r)
            elif len(sel):
                st_e = own if own is not None else st_r.take(sel, _ENERGY_FIELDS)
                e = _energy_j(st_e, hw_r.take(sel), times.offchip_bytes[sel], times.sram_bytes[sel])
                e_out[order[lo + sel]] = _rowsum(e * st_e.count, st_e)
    return t_out, e_out


# ---- the compiled path of `step_times` (dse.model.step_kernel; the path is chosen in dse.model.kernel) --------

def compiled_tables(sk, stack: _OpStatic, hw: HwView, cal: Calibration, design_cal: Calibration | None = None) -> tuple:
    """The compiled kernels' inputs for timing rows of `stack` on the designs of `hw`: (operator fields, matrix
    fields, per-row info, column class, per-design constants, peak, narrow path, pJ per FLOP, calibration
    scalars, per-design row shift). A design times row `s` as row `s + shift[d]` (the fused variant's rows of
    a statically scheduled design under plugin layers, stacked after the others). `design_cal`: a calibration
    whose per-design constants are `cal`'s (`Calibration.for_phase` changes a per-step cost only, which the
    calibration scalars hold): its cached constants are taken (`step_kernel.design_table` keeps them per
    calibration object); None: `cal`'s."""
    assert _width(stack.mm) == 0 or stack.mm.start == 0
    fuse = cal.fusion_variant
    ops, mm, rows, kind = sk.op_table(stack, fuse)
    shift = np.zeros(hw.n, np.int64)
    if fuse == 2 and np.asarray(hw.dataflow, bool).any():
        # plugin layers are a GPU runtime's (`_variant`): a statically scheduled design times its step from the
        # fused variant's rows, stacked after the plugin variant's
        ops1, _, _, _ = sk.op_table(stack, 1)
        r = ops.shape[1]
        ops = np.ascontiguousarray(np.concatenate([ops, ops1], axis=1))
        mm = np.ascontiguousarray(np.concatenate([mm, mm], axis=1))
        rows = np.ascontiguousarray(np.concatenate([rows, rows], axis=0))
        shift = r * np.asarray(hw.dataflow, bool).astype(np.int64)
    hwd, peak, narrow, efl = sk.design_table(hw, cal if design_cal is None else design_cal, stack, _PRECISIONS,
                                             compute_peak, sram_rate, fill_time_s, _collective_class)
    calv = sk.cal_table(cal, stack, 2.0 * COMM_OVERLAP_MIN_TOKENS)
    return ops, mm, rows, kind, hwd, peak, narrow, efl, calv, shift


def _step_times_compiled(sk, stack: _OpStatic, table_of, design_of, hw: HwView, cal: Calibration,
                         weights_resident, kv_resident, resident_bytes, energy_of) -> tuple[np.ndarray, np.ndarray]:
    """`step_times` by the compiled kernel: per-design constants in numpy, then one loop over the instances."""
    m = len(table_of)
    t_out, e_out = np.empty(m), np.full(m, np.nan)
    if not m:
        return t_out, e_out
    ops, mm, rows, kind, hwd, peak, narrow, efl, calv, shift = compiled_tables(sk, stack, hw, cal)
    design = np.array(design_of, np.int64)
    row_of = np.array(table_of, np.int64) + shift[design]
    # fresh writable C arrays of one dtype each: what the kernel was compiled for (numba types a read-only
    # or strided array differently and would compile again)
    def f(x):
        x = np.asarray(x, float)
        return np.array(x, order="C") if x.shape == (m,) else np.array(np.broadcast_to(x, (m,)), float)
    want = np.ones(m, bool) if energy_of is None else np.array(energy_of, bool)
    sk.step_kernel(row_of, design, f(weights_resident),
                   f(kv_resident), f(resident_bytes), want, ops, mm, rows, kind, hwd, peak, narrow, efl, calv,
                   float(SPLIT_K_MIN), t_out, e_out)
    return t_out, e_out
