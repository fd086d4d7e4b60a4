"""Operator times on a roofline with a memory hierarchy, vectorized over designs (DESIGN.md §5).

Every function takes a `HwView` (arrays of shape (n,), one entry per design) and an operator table
(arrays of shape (k,), one entry per operator) and returns arrays of shape (n, k) or (n,).
Per operator: t = max(compute, off-chip memory, SRAM) + fixed overhead; collectives use an
alpha-beta model on the chip-to-chip links with a latency floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dse.model.calibration import Calibration
from dse.model.knobs import TOPOLOGY_CODE

VECTOR_KINDS = frozenset({"softmax", "norm", "act", "elementwise", "embed", "pool"})
COLLECTIVE_KINDS = frozenset({"allreduce", "allgather", "alltoall", "sendrecv"})
BOUNDS = ("compute", "memory", "sram", "interconnect", "overhead")


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
    energy_pj_per_flop: dict[str, np.ndarray] = field(default_factory=dict)
    sram_pj_per_byte: np.ndarray | None = None
    mem_pj_per_bit: np.ndarray | None = None
    link_pj_per_bit: np.ndarray | None = None
    static_w: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.rows.shape[0])

    def take(self, idx: np.ndarray) -> "HwView":
        """The sub-view of designs `idx` (bool mask or indices)."""
        def sub(v):
            if isinstance(v, dict):
                return {k: a[idx] for k, a in v.items()}
            return None if v is None else v[idx]

        return HwView(**{f: sub(getattr(self, f)) for f in self.__dataclass_fields__})

    @classmethod
    def from_arrays(cls, arr) -> "HwView":
        """Build from a `dse.model.arrays.DesignArrays` (the struct of arrays of many designs)."""
        n = arr.n
        ones = np.ones(n)

        def get(name, default=0.0):
            v = getattr(arr, name, None)
            return np.broadcast_to(np.asarray(default, dtype=float), (n,)).copy() if v is None else np.asarray(v)

        # every precision of the technology's precision_speedup table (0 where the chip lacks it)
        peak = {p: np.asarray(v, dtype=float) * 1e12 for p, v in arr.peak_tflops.items()}
        epf = getattr(arr, "energy_pj_per_flop", None) or {}
        dataflow = ~np.asarray(arr.is_simt, bool)  # GPUs (simt) launch kernels; systolic chips are scheduled
        link_bw = get("link_gbps") * 1e9 * get("links")
        return cls(
            peak_flops=peak,
            vector_flops=get("vector_flops_per_cycle") * get("clock_ghz") * 1e9,
            rows=get("array_rows").astype(float),
            cols=get("array_cols").astype(float),
            cores=get("cores").astype(float),
            mem_bw=get("mem_bw_tbps") * 1e12,
            mem_bytes=get("mem_gb") * 1e9,
            sram_bw=get("sram_tbps") * 1e12,
            sram_bytes=get("sram_mb") * 1e6,
            link_bw=link_bw,
            link_latency_s=get("link_latency_us") * 1e-6,
            topology=get("topology", TOPOLOGY_CODE["switch"]).astype(int),
            num_chips=get("num_chips", 1).astype(int),
            dataflow=dataflow,
            sparsity=get("sparsity_2to4", 0).astype(bool),
            energy_pj_per_flop={p: np.asarray(v, dtype=float) * ones for p, v in epf.items()},
            sram_pj_per_byte=get("sram_pj_per_byte"),
            mem_pj_per_bit=get("mem_pj_per_bit"),
            link_pj_per_bit=get("link_pj_per_bit"),
            static_w=get("static_w"),
        )


def _col(x) -> np.ndarray:
    return np.asarray(x, dtype=float)[None, :]


def _ceil_div(a, b):
    return np.ceil(a / np.maximum(b, 1.0))


SPLIT_K_MIN = 256  # assumption: a split-K slice keeps at least 256 of K per core (partial sums reduced on chip)


def gemm_utilization(m, n, rows, cols, cores, n_gemms=1.0, k=None):
    """Fraction of the MAC arrays doing useful work for GEMMs with output M×N on `cores` arrays of rows×cols.

    Output-stationary view: M is padded onto array rows, N onto columns (a batch-1 GEMV uses 1/rows of
    each array); the tiles are then spread over the cores in waves, and the last wave may be partial.
    When there are fewer tiles than cores, K is split over the idle cores (split-K) in slices of at
    least SPLIT_K_MIN. Arguments broadcast: designs along axis 0, operators along axis 1.
    """
    m = np.maximum(m, 1.0)
    n = np.maximum(n, 1.0)
    tm = _ceil_div(m, rows)
    tn = _ceil_div(n, cols)
    pad = (m / (tm * rows)) * (n / (tn * cols))
    tiles = tm * tn * np.maximum(n_gemms, 1.0)
    if k is not None:
        split = np.maximum(np.minimum(np.floor(cores / tiles), np.floor(np.asarray(k, float) / SPLIT_K_MIN)), 1.0)
        tiles = tiles * split
    waves = _ceil_div(tiles, cores)
    return pad * tiles / (waves * cores)


def collective_time(kind: str, nbytes, group, hw: HwView, cal: Calibration):
    """Seconds for one collective of `nbytes` per chip over `group` chips (alpha-beta model + floor).

    ring: bidirectional ring, 2(g-1) latency steps; torus2d: two ring phases over sqrt(g) chips;
    switch: a single hop through the switch per step, log2(g) steps (halving-doubling).
    """
    g = np.maximum(np.asarray(group, dtype=float), 1.0)
    s = np.asarray(nbytes, dtype=float)
    bw = np.maximum(hw.link_bw[:, None] * cal.link_eff, 1.0)
    lat = hw.link_latency_s[:, None]
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
    torus_steps = ring_steps / np.maximum(np.sqrt(g), 1.0) * 2
    steps = np.where(topo == TOPOLOGY_CODE["ring"], ring_steps,
                     np.where(topo == TOPOLOGY_CODE["torus2d"], torus_steps, tree_steps))
    t = vol / bw + steps * lat + cal.collective_floor_us * 1e-6
    return np.where(g > 1, t, 0.0)


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

    def bound(self) -> np.ndarray:
        """Index into BOUNDS of the largest component per design × operator."""
        stack = np.stack([self.compute, self.memory, self.sram, self.comm, self.overhead])
        return np.argmax(stack, axis=0)


@dataclass
class _OpStatic:
    """Design-independent columns of an operator table, prepared once per table."""

    k: int
    mm: np.ndarray        # column indices of matrix operators
    vec: np.ndarray       # vector-unit operators
    coll: dict            # collective kind -> column indices
    noncoll: np.ndarray   # bool mask (k,)
    flops: np.ndarray
    w: np.ndarray
    act: np.ndarray
    kv: np.ndarray
    mm_m: np.ndarray
    mm_n: np.ndarray
    mm_k: np.ndarray
    mm_groups: np.ndarray
    mm_prec: np.ndarray
    mm_sparse: np.ndarray
    mm_conv: np.ndarray
    launches: np.ndarray  # bool (k,): the operator is a kernel of its own (moves bytes)


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
    st = _OpStatic(
        k=k, mm=mm, vec=np.flatnonzero(is_vec),
        coll={c: np.flatnonzero(kinds == c) for c in COLLECTIVE_KINDS if (kinds == c).any()},
        noncoll=~is_coll, flops=flops, w=np.asarray(ops.weight_bytes, float),
        act=np.asarray(ops.act_in_bytes, float) + np.asarray(ops.act_out_bytes, float),
        kv=np.asarray(ops.kv_read_bytes, float) + np.asarray(ops.kv_write_bytes, float),
        mm_m=m_[mm], mm_n=n_[mm], mm_k=k_[mm], mm_groups=groups[mm],
        mm_prec=np.asarray(ops.compute_precision).astype(str)[mm], mm_sparse=sparse[mm],
        mm_conv=np.char.find(names[mm], "conv") >= 0,
        launches=(np.asarray(ops.weight_bytes, float) + np.asarray(ops.act_in_bytes, float)
                  + np.asarray(ops.act_out_bytes, float) + np.asarray(ops.kv_read_bytes, float)
                  + np.asarray(ops.kv_write_bytes, float)) > 0,
    )
    try:
        object.__setattr__(ops, "_perf_static", st)
    except (AttributeError, TypeError):
        pass
    return st


def op_times(ops, hw: HwView, cal: Calibration, weights_resident, kv_resident, resident_bytes=None) -> OpTimes:
    """Times of every operator of `ops` (an OpTable of one chip) on every design of `hw`.

    `weights_resident` / `kv_resident` (bool, shape (n,)) say whether weights / KV cache live in SRAM;
    otherwise they stream from off-chip memory every step. Activations stay on chip when an operator's
    activations fit in the SRAM left over by `resident_bytes` (shape (n,)), else they spill off-chip too.
    """
    st = _static(ops)
    n, k = hw.n, st.k
    compute = np.zeros((n, k))
    if len(st.mm):
        # compute roof per operator precision; an unsupported precision falls back to bf16 (dequantize)
        bf16 = hw.peak_flops["bf16"]
        peak = np.empty((n, len(st.mm)))
        for p in np.unique(st.mm_prec):
            pk = hw.peak_flops.get(str(p), bf16)
            peak[:, st.mm_prec == p] = np.where(pk > 0, pk, bf16)[:, None]
        # 2:4 weight GEMMs list the FLOPs actually executed (half the dense ones): a chip with sparse
        # tensor cores runs them at its dense peak, a chip without must run the dense FLOPs (2x)
        if st.mm_sparse.any():
            peak *= np.where(st.mm_sparse[None, :] & ~hw.sparsity[:, None], 0.5, 1.0)
        util = gemm_utilization(st.mm_m[None, :], st.mm_n[None, :], hw.rows[:, None], hw.cols[:, None],
                                hw.cores[:, None], st.mm_groups[None, :], st.mm_k[None, :])
        # narrow datatypes double the operand rate per FLOP the array must be fed: `lowp_eff`
        lowp = ~np.isin(st.mm_prec, ("bf16", "fp16"))
        eff = np.where(st.mm_conv, cal.conv_eff, cal.compute_eff_max * np.where(lowp, cal.lowp_eff, 1.0))[None, :]
        compute[:, st.mm] = st.flops[st.mm][None, :] / np.maximum(peak * util * eff, 1.0)
    if len(st.vec):
        # a chip without a vector unit runs elementwise work on one row of its MAC arrays
        vec = np.where(hw.vector_flops > 0, hw.vector_flops, hw.peak_flops["bf16"] / np.maximum(hw.rows, 1.0))
        compute[:, st.vec] = st.flops[st.vec][None, :] / np.maximum(vec[:, None] * cal.compute_eff_max, 1.0)

    wres = np.asarray(weights_resident, bool)[:, None]
    kres = np.asarray(kv_resident, bool)[:, None]
    has_mem = (hw.mem_bw > 0)[:, None]
    w, kv, act = st.w[None, :], st.kv[None, :], st.act[None, :]
    resident = np.zeros(n) if resident_bytes is None else np.asarray(resident_bytes, float)
    free_sram = np.maximum(hw.sram_bytes - resident, 0.0)[:, None]
    act_on_chip = (act <= free_sram) | ~has_mem
    nc = st.noncoll[None, :]
    off = (np.where(wres, 0.0, w) + np.where(kres, 0.0, kv) + np.where(act_on_chip, 0.0, act)) * (has_mem & nc)
    half = cal.mem_bytes_half_mb * 1e6
    # achievable bandwidth grows with transfer size: eff = max · B / (B + B_half)
    memory = (off + half) / np.maximum(hw.mem_bw[:, None] * cal.mem_eff_max, 1.0) * (off > 0)

    # SRAM port traffic of what lives on chip; streamed weights/KV flow through double-buffered
    # staging at the off-chip rate, which the memory term already bounds
    on = (np.where(wres, w, 0.0) + np.where(kres, kv, 0.0) + np.where(act_on_chip, act, 0.0)) * nc
    sram = on / np.maximum(hw.sram_bw[:, None] * cal.sram_eff_max, 1.0)

    comm = np.zeros((n, k))
    for kind, cols in st.coll.items():
        comm[:, cols] = collective_time(kind, np.asarray(ops.comm_bytes, float)[cols],
                                        np.asarray(ops.group, float)[cols], hw, cal)
    # an operator that moves no bytes of its own is fused into its producer (e.g. a ReLU epilogue):
    # it costs its FLOPs but no kernel launch
    per_op = np.where(hw.dataflow, cal.dataflow_overhead_us, cal.op_overhead_us)[:, None] * 1e-6
    overhead = per_op * (nc & st.launches[None, :])
    total = np.maximum(np.maximum(compute, memory), np.maximum(sram, comm)) + overhead
    return OpTimes(compute, memory, sram, comm, overhead, total, off, on)


def op_energy_j(ops, hw: HwView, times: OpTimes) -> np.ndarray:
    """Dynamic energy (J) of each design × operator: FLOPs, SRAM bytes, off-chip bits, link bits."""
    n, k = hw.n, len(ops.flops)
    flops = _col(ops.flops)
    prec = np.asarray(ops.compute_precision)
    e_flop = np.zeros((n, k))
    for p in np.unique(prec):
        e = hw.energy_pj_per_flop.get(str(p), hw.energy_pj_per_flop.get("bf16", np.zeros(n)))
        e_flop[:, prec == p] = np.asarray(e, float)[:, None] if np.ndim(e) else e
    zero = np.zeros(n)
    e_sram = (hw.sram_pj_per_byte if hw.sram_pj_per_byte is not None else zero)[:, None]
    e_mem = (hw.mem_pj_per_bit if hw.mem_pj_per_bit is not None else zero)[:, None]
    e_link = (hw.link_pj_per_bit if hw.link_pj_per_bit is not None else zero)[:, None]
    comm_bits = _col(ops.comm_bytes) * 8
    pj = flops * e_flop + times.sram_bytes * e_sram + times.offchip_bytes * 8 * e_mem + comm_bits * e_link
    return pj * 1e-12
