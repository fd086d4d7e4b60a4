"""Plan evaluation and selection: the best plan per design × scenario under capacity and SLOs.

Plans come from `dse.evaluate.plans` (design-independent), their operator tables from
`dse.evaluate.steps`; here each plan is evaluated on every design that can hold it at once
(vectorized: step times per residency, energy, footprint, SLO checks) and the best per design is
kept by the scenario's goal. Pipeline parallelism changes only what fits on a chip, the
point-to-point hops and how many micro-batches are in flight, so it is applied arithmetically.

LLM serving model (static batching, one replica = tp × ep × pp chips, dp replicas; ep = expert
parallel for MoE models: experts spread over ep chips, attention data parallel over them):
- decode: mb ≤ pp micro-batches of `b` sequences each are in flight (batch B = mb·b; mb < pp leaves
  pipeline bubbles, e.g. batch 1 split over stages only for capacity); TPOT = all layers at
  micro-batch b + (pp-1) hops; a replica produces B tokens per TPOT.
- prefill: TTFT = one request's prompt through all stages; the static batch's B prompts are
  prefilled in chunks of ≤ PREFILL_CHUNK_TOKENS tokens (weights read once per chunk) that flow
  through the pp stages back to back: (chunks + pp − 1) × (chunk time / pp + hop).
- replica throughput = B·out / (prefill time + out·TPOT); system throughput = dp × replica.
- capacity per chip: the heaviest stage's weights, and the KV of B sequences × its layers / tp within the KV room
  the software stack's runtime gives its cache (`Calibration.kv_room_bytes`, as the serving engine).
- batch ranges: plans are knots (`plans.llm_ladders`); the largest batch a design may run between its last
  good knot and the next (max, capacity, SLOs) is timed on the chord between them (`_chords`).
CNN: data parallel over all chips; latency = one batch through the network.

Two paths choose an LLM block's plans, to the same bits: numpy over all (design, plan) pairs at once (`_choose`),
and, when the compiled kernels are on (`dse.model.kernel`), `step_kernel.map_llm_kernel` walking the designs
(`_choose_compiled`); tests/test_mapping_kernel_equiv.py compares them. A CNN block likewise: numpy over (designs ×
batches) arrays (`_cnn_choose`) or `cnn_kernel.map_cnn_kernel` walking the designs (`_cnn_choose_compiled`);
tests/test_cnn_kernel_equiv.py compares them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
import threading

import numpy as np

from dse.model.memo import by_identities, by_identity
from dse.evaluate.metrics import SCENARIO
from dse.evaluate.plans import PP_CHOICES, Plan, depth_tried, scenario_batch
from dse.evaluate.steps import Builders, CnnPlanTable, LlmPlanTable, cnn_plan_table, llm_plan_table
from dse.model.arrays import kernel_column
from dse.model.calibration import Calibration
from dse.model.kernel import compiled_kernel, kernel_module
from dse.model.perf import (SPLIT_K_MIN, HwView, collective_time, compiled_tables, op_energy_j, op_times,
                            stacked_tables, step_times)
from dse.units import MEMORY_GB_BYTES
from dse.workloads.modelfile import load_model_shape

@dataclass
class StepEval:
    """A step evaluated on designs: time (s) and dynamic energy (J) per chip, for one residency."""

    time_s: np.ndarray
    energy_j: np.ndarray


@dataclass
class MappingResult:
    """Best plan per design for one scenario; arrays of shape (n,). `metrics` are registry metrics
    (`dse.evaluate.metrics`), `plans` the chosen plan's fields (tp, pp, ep, micro_batch,
    micro_batches, dp; 0 where infeasible)."""

    feasible: np.ndarray
    reason: np.ndarray
    metrics: dict[str, np.ndarray] = field(default_factory=dict)
    plans: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def replica_chips(self) -> np.ndarray:
        """Chips of one replica of each design's plan (tp · pp · ep, as `Plan.replica_chips`; 0 where infeasible)."""
        return np.asarray(self.plans["tp"] * self.plans["pp"] * self.plans["ep"], np.int64)

    def plan(self, i: int) -> Plan | None:
        """The plan scored for design `i`, or None when it has none."""
        if not self.feasible[i]:
            return None
        return Plan(**{k: int(v[i]) for k, v in self.plans.items()})


def residency(w, kv, act, sram_bytes, mem_bytes, cache=None, kv_room=None):
    """Where the per-chip working set lives: (weights_resident, kv_resident, fits, resident_bytes).

    The resident shares are fractions in [0, 1]: the SRAM left after the activation buffers holds
    f = (sram − act) / w of the weights, then the KV cache in what remains; the rest streams from
    off-chip memory every step, so step time is continuous in `sram_mb`. What fits at all is decided
    all or nothing: off-chip memory must hold whatever is not wholly resident, and a chip with no
    off-chip memory must hold everything in SRAM. A hardware-managed cache (`cache`) hits on the same
    share: plain LRU would evict a cyclic stream larger than itself, but the stack pins that share
    (CUDA L2 access-policy window with hitRatio = set-aside / window, Ampere and later), so `cache`
    changes nothing here (kept for callers). `kv_room`: see `fits_in`.
    """
    wres, kres = _whole(w, kv, act, sram_bytes)
    fits = fits_in(w, kv, act, sram_bytes, mem_bytes, (wres, kres), kv_room)
    room = np.asarray(sram_bytes, float) - act
    fw = np.where(wres, 1.0, np.clip(room / np.maximum(w, 1e-30), 0.0, 1.0))
    fk = np.where(kres, 1.0, np.where(wres, np.clip((room - w) / np.maximum(kv, 1e-30), 0.0, 1.0), 0.0))
    resident = fw * w + fk * kv
    return fw, fk, fits, resident


def _whole(w, kv, act, sram_bytes):
    """(weights wholly resident, weights and KV wholly resident) in SRAM beside the activation buffers."""
    wres = w + act <= sram_bytes
    return wres, wres & (w + kv + act <= sram_bytes)


def fits_in(w, kv, act, sram_bytes, mem_bytes, whole=None, kv_room=None):
    """`residency`'s `fits` alone: off-chip memory holds whatever is not wholly resident, or, without
    memory, SRAM holds everything (`whole`: `_whole`'s masks when the caller has them).

    `kv_room(memory_bytes, weight_bytes)` (the software stack's `Calibration.kv_room_bytes`): the bytes its
    runtime gives the KV cache on a memory holding those weights (TensorRT-LLM 0.9 of the memory free after
    the weights, vLLM 0.9 of the whole memory less the weights); an off-chip KV cache must fit in it, as the
    serving engine admits requests (dse.evaluate.serving). None: all the memory the weights leave."""
    wres, kres = whole if whole is not None else _whole(w, kv, act, sram_bytes)
    w_off, kv_off = np.where(wres, 0.0, w), np.where(kres, 0.0, kv)
    if kv_room is None:
        off_ok = w_off + kv_off <= mem_bytes
    else:
        off_ok = (w_off <= mem_bytes) & (kv_off <= kv_room(mem_bytes, w_off))
    return np.where(mem_bytes > 0, off_ok, w + kv + act <= sram_bytes)


def _lerp(a, b, th):
    """The point `th` of the way from `a` to `b` (a chord between two knots)."""
    return a + th * (b - a)


def _largest_ok(a: np.ndarray, z: np.ndarray, ok) -> np.ndarray:
    """Per element, the largest integer x in [a, z) with `ok(x)`, given ok(a), not ok(z) and `ok` monotone
    (true up to a point): one bisection over all elements at once."""
    while True:
        span = z - a > 1
        if not span.any():
            return a
        mid = (a + z) // 2
        good = ok(mid)
        a = np.where(span & good, mid, a)
        z = np.where(span & ~good, mid, z)


def residency_combo(fw: np.ndarray, fk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(combo, partial): the all-or-nothing residency `ComboCache` keys on (0 streamed, 1 weights,
    2 weights and KV resident) and where a resident share is fractional (timed per plan instead)."""
    combo = (fw >= 1.0).astype(int) + (fk >= 1.0).astype(int)
    partial = ((fw > 0) & (fw < 1)) | ((fk > 0) & (fk < 1))
    return combo, partial


def timed_residency(kind: str, wres: np.ndarray, kres: np.ndarray, resident: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights_resident, kv_resident, resident_bytes) a plan's steps are timed with, from `residency`.
    LLM steps are timed per residency combination with nothing else counted resident (`ComboCache`:
    activation buffers were reserved next to resident weights); CNN steps hold no KV cache and count
    their resident weights."""
    if kind == "cnn":
        return wres, np.ones(len(wres), bool), resident
    return wres, kres, np.zeros(len(wres))


def _eval(step_ops, hw: HwView, cal: Calibration, wres, kres, resident) -> StepEval:
    t = op_times(step_ops, hw, cal, wres, kres, resident)
    count = np.asarray(step_ops.count, dtype=float)[None, :]
    e = op_energy_j(step_ops, hw, t)
    return StepEval((t.total * count).sum(axis=1), (e * count).sum(axis=1))


_KEY_COLS = ("kind", "flops", "weight_bytes", "act_in_bytes", "act_out_bytes", "kv_read_bytes",
             "kv_write_bytes", "m", "k", "n", "compute_precision", "comm_bytes", "group", "sparse")


def compress_ops(ops):
    """The same step with identical operators merged (their counts summed): repeated blocks such as
    ResNet bottlenecks are timed once. Step time and energy are unchanged; names are not kept."""
    cached = getattr(ops, "_compressed", None)
    if cached is not None:
        return cached
    names = np.asarray(ops.name).astype(str)
    conv = np.char.find(names, "conv") >= 0
    # one key per operator: its values of _KEY_COLS and whether it is a convolution (columns read whole, not
    # element by element)
    keys = list(zip(*(np.asarray(getattr(ops, c)).tolist() for c in _KEY_COLS), conv.tolist()))
    first: dict = {}
    inverse = np.empty(len(keys), int)
    rows_: list[int] = []  # the first operator of each distinct key
    for i, key in enumerate(keys):
        j = first.setdefault(key, len(first))
        if j == len(rows_):
            rows_.append(i)
        inverse[i] = j
    if len(first) == len(keys):
        out = ops
    else:
        rows = np.array(rows_)
        counts = np.bincount(inverse, weights=np.asarray(ops.count, float))
        out = ops.select(rows).replace(count=counts)
    try:
        object.__setattr__(ops, "_compressed", out)
    except (AttributeError, TypeError):
        pass
    return out


class ComboCache:
    """Step time and energy per design under each residency (0 streamed, 1 weights resident,
    2 weights and KV resident), computed once per design and residency on the designs that need it.

    Residency alone decides an operator's time: when weights are resident the activation buffers
    were reserved next to them, so how much else is resident does not matter.
    """

    def __init__(self, ops, hw: HwView, cal: Calibration):
        self.ops, self.hw, self.cal = compress_ops(ops), hw, cal
        self.time = np.full((3, hw.n), np.nan)
        self.energy = np.full((3, hw.n), np.nan)

    def prefetch(self, combo: np.ndarray, mask: np.ndarray) -> None:
        """Compute every (design, residency) in `mask` not computed yet, one vectorized call per residency."""
        for c in (0, 1, 2):
            need = mask & (combo == c)
            need &= np.isnan(self.time[c])
            if need.any():
                idx = np.flatnonzero(need)
                k = len(idx)
                r = _eval(self.ops, self.hw.take(idx), self.cal, np.full(k, c >= 1), np.full(k, c == 2), np.zeros(k))
                self.time[c, idx] = r.time_s
                self.energy[c, idx] = r.energy_j

    def get(self, combo: np.ndarray, idx: np.ndarray) -> StepEval:
        t = self.time[combo[idx], idx]
        if np.isnan(t).any():
            self.prefetch_idx(combo[idx], idx)
            t = self.time[combo[idx], idx]
        return StepEval(t, self.energy[combo[idx], idx])

    def prefetch_idx(self, combo_sel: np.ndarray, idx: np.ndarray) -> None:
        mask = np.zeros(self.hw.n, bool)
        full = np.zeros(self.hw.n, int)
        mask[idx] = True
        full[idx] = combo_sel
        self.prefetch(full, mask)


def _fmt_gb(x: float, binary: bool = False) -> str:
    """Bytes for a message: decimal GB / MB, or (`binary`, beside an off-chip memory capacity, whose GB are
    2^30 B: dse.units.MEMORY_GB_BYTES) GiB / MiB, so both sides of a comparison read in the same unit."""
    if binary:
        gib = MEMORY_GB_BYTES
        return f"{x / gib:.3g} GiB" if x >= gib / 8 else f"{x / (gib / 1024):.3g} MiB"
    return f"{x / 1e9:.3g} GB" if x >= 1e8 else f"{x / 1e6:.3g} MB"


class _Texts(dict):
    """`fmt(*key)` once per distinct key within one block's reasons (designs share capacities and plans)."""

    def __init__(self, fmt):
        super().__init__()
        self.fmt = fmt

    def __missing__(self, key):
        v = self[key] = self.fmt(*key)
        return v


_TEXTS: dict[tuple[int, ...], tuple] = {}  # id(plan table) → (it, its reasons' texts by kind)
_CAPACITY_TEXTS = _Texts(_fmt_gb)  # (bytes, True) → `_fmt_gb`'s text, kept across calls (`_capacity_texts`)


def _capacity_texts() -> _Texts:
    """`_fmt_gb`'s text per off-chip memory capacity (> 0, binary units), kept across calls: a study's designs repeat
    their capacities (stacks × GB per stack); bounded."""
    if len(_CAPACITY_TEXTS) > 4096:
        _CAPACITY_TEXTS.clear()
    return _CAPACITY_TEXTS


def _texts(t, kind: str, fmt) -> _Texts:
    """`_Texts(fmt)` kept across calls per plan table `t` (the tables are cached and immutable: their plans' texts
    are the same on every call) and `kind`."""
    per = by_identity(_TEXTS, t, lambda _: {})
    got = per.get(kind)
    if got is None:
        got = per[kind] = _Texts(fmt)
    return got

# ---- step times of many (design, step, residency) instances --------------------------------------

_COMPRESSED: dict[tuple[int, ...], tuple] = {}  # id(steps) → (steps, their compressed operator tables)


def _compressed(steps) -> tuple:
    """`compress_ops` of each step's operators, once per steps tuple (the same tuple on every call of a plan table)."""
    return by_identity(_COMPRESSED, steps, lambda st: tuple(compress_ops(s.ops) for s in st))


def time_instances(steps, step_of, design_of, hw: HwView, cal: Calibration, wres, kres, resident,
                   energy_steps=None) -> StepEval:
    """Step time (s) and dynamic energy (J) per chip of each instance i: design `design_of[i]` running
    `steps[step_of[i]]` with weights / KV resident shares `wres[i]`, `kres[i]` and `resident[i]` bytes
    resident. One vectorized pass over all steps (`step_times`); energy only for the steps in `energy_steps`
    (all when None; NaN elsewhere)."""
    t, e = step_times(_compressed(steps), step_of, design_of, hw, cal, wres, kres, resident,
                      None if energy_steps is None else np.asarray(energy_steps, bool)[np.asarray(step_of, np.int64)])
    return StepEval(t, e)




_NUMERIC = tuple(k for k, metric in SCENARIO.items() if metric.numeric)  # the registry's numeric scenario metrics


def _numeric_metrics(n: int) -> dict[str, np.ndarray]:
    """A zero column per numeric per-scenario metric of the registry: what a mapping fills (rows of one block)."""
    return dict(zip(_NUMERIC, np.zeros((len(_NUMERIC), n))))


# where a plan's weights live (MappingResult.metrics["weights"]), indexed by `_weights_code`
_WEIGHTS = np.array(["", "sram-resident", "weights-streamed"], dtype=object)


def _weights_code(feasible: np.ndarray, share: np.ndarray) -> np.ndarray:
    """Per design the index into `_WEIGHTS`: "" without a plan, else sram-resident where the chosen plan's
    resident share is whole, weights-streamed otherwise (one gather of the three strings, no string per design)."""
    return np.where(feasible, np.where(share >= 1.0, 1, 2), 0)


def _slo(scenario, name: str):
    return getattr(scenario, name, None) or getattr(getattr(scenario, "slo", None), name, None)


_PLAN_FIELDS = ("tp", "pp", "ep", "micro_batch", "micro_batches", "dp")
# pairs below which the remaining rung levels of a block are timed in one stage (a stage's fixed cost
# outweighs the pairs of designs that would have failed an earlier level)
STAGE_MIN_PAIRS = 2048
# designs per vectorized block: bounds the (design, plan) pair arrays (~20 MB each at 150 pairs per design)
BLOCK_DESIGNS = 16384


def _first_max_by(seg: np.ndarray, score: np.ndarray, n: int) -> np.ndarray:
    """Per segment 0..n-1 (`seg` ascending, items in scan order): index of the first item of maximal
    score above -inf, or -1 — what a sequential `score > best` scan keeps (NaN never wins)."""
    best = np.full(n, -1, np.int64)
    idx = np.flatnonzero(score > -np.inf)
    if not len(idx):
        return best
    sg, v = seg[idx], score[idx]
    starts = np.flatnonzero(np.concatenate([[True], sg[1:] != sg[:-1]]))
    top = np.repeat(np.maximum.reduceat(v, starts), np.diff(np.append(starts, len(idx))))
    hit = idx[v == top]
    hs = seg[hit]
    first = np.concatenate([[True], hs[1:] != hs[:-1]])
    best[hs[first]] = hit[first]
    return best


def _blocked(fn, hw: HwView, *args) -> MappingResult:
    """`fn(hw_block, *args, rows)` over blocks of at most BLOCK_DESIGNS designs, results concatenated."""
    n = hw.n
    if n <= BLOCK_DESIGNS:
        return fn(hw, *args, slice(0, n))
    parts = [fn(hw.take(slice(a, a + BLOCK_DESIGNS)), *args, slice(a, a + BLOCK_DESIGNS))
             for a in range(0, n, BLOCK_DESIGNS)]
    return MappingResult(np.concatenate([p.feasible for p in parts]), np.concatenate([p.reason for p in parts]),
                         {k: np.concatenate([p.metrics[k] for p in parts]) for k in parts[0].metrics},
                         {k: np.concatenate([p.plans[k] for p in parts]) for k in parts[0].plans})


# ---- LLM: every plan on every design as (design, plan) pair arrays -----------------------------

# keys up to which a thread keeps its step memo's slot array between blocks (4 B per key: 16,384 designs of
# ~85 steps fit); a fresh array's pages are zeroed by the OS on first touch, which cost as much as timing them
MEMO_POOL_KEYS = 1 << 22
_MEMO_POOL = threading.local()


class _StepMemo:
    """Step time and energy of the (step, residency, design) instances of a block already timed: a later
    stage of the mapping reuses them (the TTFT prefill and the prefill chunks are shared by the rungs of a
    ladder). A dense int32 array over the keys `(step * n + design) * 3 + residency` holds each timed key's
    slot + 1 (0: not timed) in compact value arrays; it is a view of a per-thread pool kept between blocks
    (`release` clears the keys it set), so its pages are not faulted in again on every call."""

    def __init__(self, size: int):
        pool = getattr(_MEMO_POOL, "slot", None)
        _MEMO_POOL.slot = None  # checked out: a memo made meanwhile gets its own array
        if pool is None or len(pool) < size:
            pool = np.zeros(size, np.int32)
        self._pool = pool
        self.slot = pool[:size]
        self.keys: list[np.ndarray] = []
        self.time_s = self.energy_j = np.zeros(0)

    def release(self) -> None:
        """Clear the keys set and hand the array back to this thread's pool (the memo is not used afterwards)."""
        for k in self.keys:
            self.slot[k] = 0
        if len(self._pool) <= MEMO_POOL_KEYS:
            _MEMO_POOL.slot = self._pool

    def known(self, keys: np.ndarray) -> np.ndarray:
        """Which of `keys` are timed already."""
        return self.slot[keys] != 0

    def add(self, keys: np.ndarray, time_s: np.ndarray, energy_j: np.ndarray) -> None:
        """Remember new (not yet known, distinct) `keys`."""
        start = len(self.time_s)
        self.slot[keys] = np.arange(start + 1, start + len(keys) + 1, dtype=np.int32)
        self.keys.append(keys)
        self.time_s = np.concatenate([self.time_s, time_s])
        self.energy_j = np.concatenate([self.energy_j, energy_j])

    def get(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(time, energy) of known `keys`."""
        at = self.slot[keys] - 1
        return self.time_s[at], self.energy_j[at]


def _distinct(keys: np.ndarray) -> np.ndarray:
    """The distinct values of integer `keys`, ascending, by a sort (numpy 2's np.unique takes a hash table first:
    ~40x slower on 300k keys)."""
    keys = np.sort(keys)
    return keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys


def _llm_step_times(t: LlmPlanTable, hw: HwView, cal: Calibration, pi, pj, partial, combo, fw, fk,
                    memo: _StepMemo | None = None) -> list[np.ndarray]:
    """(decode time, decode energy, TTFT prefill time, chunk time, chunk energy) of each (design `pi`,
    plan `pj`) pair.
    A step under an all-or-nothing residency is timed once per design and residency however many plans
    share it (once per block with a `memo`); under a fractional share once per design and footprint class
    (`LlmPlanTable.cls_step`)."""
    n, S = hw.n, len(t.steps)
    own = memo is None
    memo = _StepMemo(S * 3 * n) if own else memo
    whole = ~partial
    wi, wj, wc = pi[whole], pj[whole], combo[whole]
    role_keys = [(role[wj] * n + wi) * 3 + wc for role in (t.dec, t.pre, t.chunk)]
    inst = np.concatenate(role_keys)
    inst = _distinct(inst[~memo.known(inst)])  # the instances not timed yet, in key order
    i_step, i_c, i_d = inst // (3 * n), inst % 3, (inst // 3) % n  # a step's residencies on a design in a row
    qi, qj, qfw, qfk = pi[partial], pj[partial], fw[partial], fk[partial]
    k = len(qi)
    keys = np.concatenate([t.dec_cls[qj], t.pre_cls[qj], t.chunk_cls[qj]]) * n + np.tile(qi, 3)
    ukeys, first, inv = np.unique(keys, return_index=True, return_inverse=True)
    src = first % max(k, 1)
    is_dec = np.zeros(S, bool)  # steps whose energy is needed: decode and prefill chunks
    is_dec[t.dec] = True
    is_dec[t.chunk] = True
    r = time_instances(t.steps, np.concatenate([i_step, t.cls_step[ukeys // n]]), np.concatenate([i_d, ukeys % n]),
                       hw, cal, np.concatenate([i_c >= 1, qfw[src]]), np.concatenate([i_c == 2, qfk[src]]),
                       np.zeros(len(inst) + len(ukeys)), is_dec)
    memo.add(inst, r.time_s[:len(inst)], r.energy_j[:len(inst)])
    (dec_t, dec_e), (pre_t, _), (chunk_t, chunk_e) = (memo.get(key) for key in role_keys)
    if own:
        memo.release()
    part = len(inst) + np.ravel(inv)
    out = []
    # seg: which third of the partial keys (decode, prefill, chunk classes) the role's step is
    for seg, known, res in ((0, dec_t, r.time_s), (0, dec_e, r.energy_j), (1, pre_t, r.time_s),
                            (2, chunk_t, r.time_s), (2, chunk_e, r.energy_j)):
        v = np.empty(len(pi))
        v[whole] = known
        v[partial] = res[part[seg * k:(seg + 1) * k]]
        out.append(v)
    return out


def map_llm(scenario, shape, prec, hw: HwView, cal: Calibration, builders=Builders,
            force_tp: int | None = None, force_pp: int | None = None,
            force_ep: int | None = None) -> MappingResult:
    """Best plan (tp, pp, ep, dp, micro-batches) for an LLM serving scenario on every design of `hw`
    (or a forced tp / pp / ep): every candidate plan (`llm_plan_table`) is evaluated on every design that can
    hold it at once, and the best per design is kept in plan order, as a rung-by-rung scan would.
    `builders` is kept for callers; the steps come from `dse.evaluate.steps`."""
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips_avail = np.minimum(hw.num_chips, max_chips)
    table = llm_plan_table(scenario, shape, prec, chips_avail, force_tp, force_pp, force_ep)
    # designs grouped by chips available (a design's result does not depend on its call-mates): each
    # group's candidate plans are one (designs x plans) block (the compiled path takes them one by one)
    if compiled_kernel() is not None:
        return _blocked(_map_llm_block, hw, scenario, table, cal, chips_avail)
    order = np.argsort(chips_avail, kind="stable")
    if (order == np.arange(len(order))).all():
        return _blocked(_map_llm_block, hw, scenario, table, cal, chips_avail)
    res = _blocked(_map_llm_block, hw.take(order), scenario, table, cal, chips_avail[order])
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    return MappingResult(res.feasible[back], res.reason[back], {k: v[back] for k, v in res.metrics.items()},
                         {k: v[back] for k, v in res.plans.items()})


@lru_cache(maxsize=4096)
def _group_plans(t: LlmPlanTable, chips: int) -> tuple[np.ndarray, ...]:
    """(plans, w + act, w + kv + act, kv, act, w) of the plans a design of `chips` chips tries:
    the tp·ep·pp chips the plan needs and a pipeline depth the design tries (its own whole-system depth,
    not another design's of the call), in plan order."""
    ok = (chips >= t.replica) & (t.depth_any | depth_tried(t.pp, t.grp, chips))
    j = np.flatnonzero(ok)
    w, kv, act = t.w[j], t.kv[j], t.act[j]
    return j, (w + act)[None, :], (w + kv + act)[None, :], kv[None, :], act, w


def _candidates(t: LlmPlanTable, hw: HwView, chips: np.ndarray, cal: Calibration):
    """(design, plan) pairs whose plan the design tries and that fit (`residency` with the stack's KV room), design-major in plan
    order, with their resident shares (fw, fk); and per design the largest micro-batch-1 plan it tries
    that does not fit (-1: none), for the reason. `chips` must be sorted."""
    n = hw.n
    edges = np.flatnonzero(np.diff(chips)) + 1
    starts, ends = np.concatenate([[0], edges]), np.concatenate([edges, [n]])
    pis, pjs, wrs, krs, largest = [], [], [], [], np.full(n, -1, np.int64)
    for a, b in zip(starts, ends):
        j, wa, wka, kv, act, w_j = _group_plans(t, int(chips[a]))
        if not len(j):
            continue
        sram, mem = hw.sram_bytes[a:b, None], hw.mem_bytes[a:b, None]
        # `residency`'s fits with the stack's KV room, from the group's sums (`_whole`'s masks)
        wres = wa <= sram
        kres = wres & (wka <= sram)
        fits = fits_in(w_j[None, :], kv, act[None, :], sram, mem, (wres, kres), cal.kv_room_bytes)
        r, c = np.nonzero(fits)
        pis.append(r + a)
        pjs.append(j[c])
        wrs.append(wres[r, c])
        krs.append(kres[r, c])
        note = ~fits & t.first_rung[j][None, :]
        hit = note.any(axis=1)
        if hit.any():  # the plan needing most chips (the last such in plan order)
            key = np.where(note[hit], t.replica[j] * len(t.plans) + j, -1)
            largest[a + np.flatnonzero(hit)] = j[np.argmax(key, axis=1)]
    cat = (lambda x, d: np.concatenate(x) if x else np.zeros(0, d))
    pi, pj, wres, kres = cat(pis, np.int64), cat(pjs, np.int64), cat(wrs, bool), cat(krs, bool)
    # the resident shares of `residency`, on the candidates only
    w, kv, act = t.w[pj], t.kv[pj], t.act[pj]
    room = hw.sram_bytes[pi] - act
    fw = np.where(wres, 1.0, np.clip(room / np.maximum(w, 1e-30), 0.0, 1.0))
    fk = np.where(kres, 1.0, np.where(wres, np.clip((room - w) / np.maximum(kv, 1e-30), 0.0, 1.0), 0.0))
    return pi, pj, fw, fk, largest


def _pair_times(t: LlmPlanTable, hw: HwView, cal: Calibration, i, j, partial, combo, fw, fk, memo, hop, chips,
                static, out_len: int):
    """(TPOT, batch prefill, TTFT, replicas, J per batch cycle of a replica) of (design `i`, plan `j`) pairs:
    the time function of static-batched pipeline serving (module docstring)."""
    d_t, d_e, p_t, ch_t, ch_e = _llm_step_times(t, hw, cal, i, j, partial, combo, fw, fk, memo)
    pp = t.pp[j]
    tp_ = d_t + (pp - 1) * hop[i, t.hop_dec[j]]
    dp_ = chips[i] // t.replica[j]
    # the batch's prefill chunks flow through the pp stages back to back
    pre_ = (t.n_chunks[j] + pp - 1) * (ch_t / pp + (pp > 1) * hop[i, t.hop_chunk[j]])
    # static batching: a request's first token comes once its whole batch is prefilled (the same prefill
    # the throughput pays for); at batch 1 this is one prompt through all stages on an idle system
    tt_ = np.maximum(p_t + (pp - 1) * hop[i, t.hop_pre[j]], pre_)
    # J over one batch cycle: the prefill chunks and out_len decode steps of the replica's grp·pp chips, and
    # their static power over the whole cycle
    cycle = pre_ + out_len * tp_
    joules = t.grp[j] * (t.n_chunks[j] * ch_e + out_len * t.micro_batches[j] * d_e + pp * static[i] * cycle)
    return tp_, pre_, tt_, dp_, joules


@dataclass
class _Choice:
    """Each design's chosen plan of an LLM block, arrays of shape (n,): its plan's index in the table (-1: none),
    replicas, micro-batch and micro-batches (a chord's may lie between knots), TPOT, TTFT and batch prefill (s),
    J per batch cycle of a replica, resident share (fw + fk) and throughput; for the reasons of the others the
    closest SLO miss (its plan, -1: none; TPOT and TTFT s) and the largest micro-batch-1 plan that does not
    fit (-1: none). Values are read only where a plan (or a miss) is."""

    plan: np.ndarray
    dp: np.ndarray
    micro_batch: np.ndarray
    micro_batches: np.ndarray
    tpot: np.ndarray
    ttft: np.ndarray
    pre: np.ndarray
    joules: np.ndarray
    share: np.ndarray
    throughput: np.ndarray
    close_plan: np.ndarray
    close_tpot: np.ndarray
    close_ttft: np.ndarray
    largest: np.ndarray
    # the compiled choice's blocks (`step_kernel.map_llm_kernel`'s outputs, whose columns the fields above are):
    # `_llm_result` takes its numbers from them in one pass (`design_kernel.llm_result_kernel`)
    blocks: tuple[np.ndarray, np.ndarray] | None = None


def _map_llm_block(hw: HwView, scenario, t: LlmPlanTable, cal: Calibration, chips_all, rows) -> MappingResult:
    n = hw.n
    chips = chips_all[rows]
    hop = collective_time("sendrecv", t.hop_bytes, np.full(len(t.hop_bytes), 2.0), hw, cal)
    static = hw.static_w if hw.static_w is not None else np.zeros(n)
    out_len, slo_tpot, slo_ttft = _llm_constants(scenario)
    sk = compiled_kernel()
    if sk is not None and len(t.steps):  # (a table of no plans: the numpy path's empty choice)
        ch = _choose_compiled(sk, t, hw, cal, chips, hop, static, scenario, out_len, slo_tpot, slo_ttft)
    else:
        ch = _choose(t, hw, cal, chips, hop, static, scenario, out_len, slo_tpot, slo_ttft)
    return _llm_result(t, hw, chips, ch, out_len, slo_tpot, slo_ttft)


_SCENARIO_CONSTANTS: dict[tuple[int, ...], tuple] = {}  # id(scenario) → (it, `_llm_constants`)


def _llm_constants(scenario) -> tuple[int, float | None, float | None]:
    """(output tokens, TPOT SLO ms, TTFT SLO ms) of an LLM scenario, once per (frozen) scenario object."""
    return by_identity(_SCENARIO_CONSTANTS, scenario,
                       lambda sc: (int(sc.output_len), _slo(sc, "tpot_ms"), _slo(sc, "ttft_ms")))


_KERNEL_SCALARS: dict[tuple[int, ...], tuple] = {}  # ids of (scenario, calibration, plan table) → (them, scalars)


def _kernel_scalars(scenario, cal: Calibration, t: LlmPlanTable) -> np.ndarray:
    """The scenario's scalars `step_kernel.map_llm_kernel` reads (output tokens, SLOs, max batch, goal, the stack's
    KV room, whether a table has chords), once per (frozen) scenario, calibration and (cached) plan table."""
    def make(scenario, cal, t):
        out_len, slo_tpot, slo_ttft = _llm_constants(scenario)
        goal = getattr(scenario, "goal", "throughput")
        return np.array([out_len, slo_tpot or 0.0, slo_ttft or 0.0, scenario_batch(scenario)[1], goal == "throughput",
                         cal.kv_memory_of == "total", cal.kv_memory_fraction, bool((t.nxt >= 0).any())], float)
    return by_identities(_KERNEL_SCALARS, (scenario, cal, t), make)


def _choose_compiled(sk, t: LlmPlanTable, hw: HwView, cal: Calibration, chips, hop, static, scenario, out_len: int,
                     slo_tpot, slo_ttft) -> _Choice:
    """`_choose` by the compiled kernel (`step_kernel.map_llm_kernel`): one loop over the designs, each plan's
    steps timed by the same per-instance arithmetic as `perf.step_times`' compiled path."""
    n = hw.n
    if 3 * len(t.steps) + len(t.cls_step) >= 1 << sk.MEMO_KEY_BITS:
        raise ValueError(f"an LLM plan table of {len(t.steps)} steps and {len(t.cls_step)} footprint classes has more "
                         f"memo columns than the compiled kernel packs (2^{sk.MEMO_KEY_BITS}); DSE_KERNEL=numpy "
                         "evaluates it")
    pl, pf, rungs, is_dec = _plan_arrays(t)
    stack = stacked_tables(_compressed(t.steps))
    ops, mm, rows, kind, hwd, peak, narrow, efl, calv, shift = compiled_tables(sk, stack, hw, cal)
    sc = _kernel_scalars(scenario, cal, t)
    o_int = np.zeros((n, len(sk.OUT_INT)), np.int64)
    o_float = np.zeros((n, len(sk.OUT_FLOAT)))
    f = (lambda x, d=np.float64: kernel_column(x, n, d))  # C arrays of the compiled type (the kernel reads them)
    sk.map_llm_kernel(pl, pf, rungs, f(chips, np.int64), f(hw.sram_bytes), f(hw.mem_bytes), f(static),
                      np.array(hop, float, order="C"), shift, is_dec, len(t.steps), len(t.cls_step), sc,
                      ops, mm, rows, kind, hwd, peak, narrow, efl, calv, float(SPLIT_K_MIN), o_int, o_float)
    i, x = dict(zip(sk.OUT_INT, o_int.T)), dict(zip(sk.OUT_FLOAT, o_float.T))
    return _Choice(i["plan"], i["dp"], i["micro_batch"], i["micro_batches"], x["tpot"], x["ttft"], x["pre"],
                   x["joules"], x["share"], x["throughput"], i["close_plan"], x["close_tpot"], x["close_ttft"],
                   i["largest"], (o_int, o_float))


_PLAN_ARRAYS: dict[tuple[int, ...], tuple] = {}


def _plan_arrays(t: LlmPlanTable) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(per-plan integer fields (`step_kernel.PLAN_INT`), per-plan footprint (w, kv, act), per rung its fields
    (`step_kernel.RUNG_INT`), per step whether its energy is read (decode steps and prefill chunks)) of a plan
    table, as the compiled mapping reads them; once per table."""
    def make(t):
        from dse.model.step_kernel import PLAN_INT
        R = len(t.rung_start)
        fields = {"mb": t.micro_batch, "mbs": t.micro_batches, "tried": t.depth_any | np.isin(t.pp, PP_CHOICES),
                  "first_rung": t.first_rung}
        pl = np.ascontiguousarray(np.stack([np.asarray(fields.get(k, getattr(t, k, None)), np.int64)
                                            for k in PLAN_INT]))
        pf = np.ascontiguousarray(np.stack([t.w, t.kv, t.act]).astype(float))
        r = np.arange(R)
        rungs = np.ascontiguousarray(np.stack([np.searchsorted(t.rung, r, "left"), np.searchsorted(t.rung, r, "right"),
                                               t.rung_start, t.rung_prune, r - t.rung_start]).astype(np.int64))
        is_dec = np.zeros(len(t.steps), bool)
        is_dec[t.dec] = True
        is_dec[t.chunk] = True
        return pl, pf, rungs, is_dec
    return by_identity(_PLAN_ARRAYS, t, make)


def _choose(t: LlmPlanTable, hw: HwView, cal: Calibration, chips, hop, static, scenario, out_len: int, slo_tpot,
            slo_ttft) -> _Choice:
    """Each design's best plan (`_Choice`), every (design, plan) pair of the block at once in numpy: staged by
    rung level, the chords beyond the last good knots, the first of best score per design."""
    n = hw.n
    pi, pj, fw, fk, largest = _candidates(t, hw, chips, cal)  # candidates: the plan is tried and fits
    combo, partial = residency_combo(fw, fk)
    R = len(t.rung_start)
    rung = t.rung[pj]
    tpot, ttft, prefill_s, joules = (np.full(len(pi), np.nan) for _ in range(4))
    dp = np.zeros(len(pi), np.int64)
    timed = np.zeros(len(pi), bool)
    slo_ok = np.zeros(len(pi), bool)
    # stages by rung level (position in its ladder, growing micro-batch): a design that fails a rung of a
    # pruning ladder never reaches its later ones, so each level is timed only on the designs that passed
    # every earlier rung; once a level has few pairs, the remaining levels are one stage
    level = (t.rung - t.rung_start[t.rung])[pj]  # per plan, then per pair (one gather over the pairs)
    levels = int(level.max()) + 1 if len(level) else 0
    passed = np.zeros((n, R), bool)
    memo = _StepMemo(len(t.steps) * 3 * n)
    rest = np.flatnonzero(level >= 1)  # pairs of later levels whose design passed every level so far
    # flat index into `passed` of each later-level pair's first rung (level 0 of its ladder), and whether
    # its ladder prunes
    rest_base = (pi[rest] * R + rung[rest] - level[rest]) - 1
    rest_prune = t.rung_prune[rung[rest]]
    flat = passed.reshape(-1)
    at = 0

    def slo_met(tp_, tt_):
        ok_ = np.ones(len(tp_), bool)
        if slo_tpot:
            ok_ &= tp_ * 1e3 <= slo_tpot
        if slo_ttft:
            ok_ &= tt_ * 1e3 <= slo_ttft
        return ok_

    while at < levels:
        if at == 0:
            sel, nxt = np.flatnonzero(level == 0), 1
        else:
            keep = flat[rest_base + at] | ~rest_prune
            rest, rest_base, rest_prune = rest[keep], rest_base[keep], rest_prune[keep]
            sel, nxt = rest[level[rest] == at], at + 1
            if len(sel) < STAGE_MIN_PAIRS:
                sel, nxt = rest, levels
            else:
                later = level[rest] > at
                rest, rest_base, rest_prune = rest[later], rest_base[later], rest_prune[later]
        at = nxt
        if not len(sel):
            continue
        i, j = pi[sel], pj[sel]
        tp_, pre_, tt_, dp_, jl = _pair_times(t, hw, cal, i, j, partial[sel], combo[sel], fw[sel], fk[sel], memo,
                                              hop, chips, static, out_len)
        ok_ = slo_met(tp_, tt_) & ~t.over[j]  # a plan beyond the max is only a chord's end
        tpot[sel], ttft[sel], dp[sel], prefill_s[sel], joules[sel], slo_ok[sel], timed[sel] = \
            tp_, tt_, dp_, pre_, jl, ok_, True
        passed[i[ok_], rung[sel][ok_]] = True
    # pruning ladders: a design with no plan that fits and meets the SLOs on a rung skips the later rungs
    # of its ladder (time and footprint never shrink with the micro-batch)
    passed = np.zeros((n, R), bool)
    passed[pi[slo_ok], rung[slo_ok]] = True
    fails = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(~passed, axis=1)], axis=1)
    alive = ((fails[:, :R] - fails[:, t.rung_start]) == 0) | ~t.rung_prune[None, :]
    offered = timed & alive[pi, rung]
    good = offered & slo_ok
    # candidates: the good plans, then the chords (`_chords`) beyond each design's last good plan of a column
    c = _chords(t, hw, cal, scenario, pi, pj, good, timed, tpot, ttft, prefill_s, joules, dp, fw, fk, memo, hop,
                chips, static, out_len, slo_met)
    memo.release()
    ci = np.concatenate([pi[good], c["i"]])
    order = np.argsort(ci, kind="stable")
    ci = ci[order]
    cj = np.concatenate([pj[good], c["j"]])[order]
    cat = (lambda a, k: np.concatenate([a[good], c[k]])[order])
    c_tpot, c_ttft, c_pre, c_j, c_dp = (cat(a, k) for a, k in ((tpot, "tpot"), (ttft, "ttft"), (prefill_s, "pre"),
                                                              (joules, "joules"), (dp, "dp")))
    c_share = cat(fw + fk, "share")
    c_b = np.concatenate([t.micro_batch[pj[good]], c["micro_batch"]])[order]
    c_mb = np.concatenate([t.micro_batches[pj[good]], c["micro_batches"]])[order]
    c_batch = c_b * c_mb
    c_thr = c_dp * (c_batch * out_len / (c_pre + out_len * c_tpot))
    goal = getattr(scenario, "goal", "throughput")
    score = c_thr if goal == "throughput" else -c_tpot + 1e-12 * c_thr
    best = _first_max_by(ci, np.where(~np.isnan(score), score, -np.inf), n)
    closest = np.full(n, -1, np.int64)
    if not (best >= 0).all():
        near = np.flatnonzero(offered & ~slo_ok & ~t.over[pj] & ~(best >= 0)[pi])  # the SLO gap of these pairs only
        gap = np.maximum(tpot[near] / (slo_tpot * 1e-3) if slo_tpot else 0.0,
                         ttft[near] / (slo_ttft * 1e-3) if slo_ttft else 0.0)
        miss_score = np.full(len(pi), -np.inf)
        miss_score[near] = np.where(gap < np.inf, -gap, -np.inf)
        closest = _first_max_by(pi, miss_score, n)

    def at(a, idx, fill=0):  # a[idx] where idx >= 0, else `fill`
        return np.where(idx >= 0, a[np.maximum(idx, 0)], fill) if len(a) else np.full(n, fill, a.dtype)
    return _Choice(at(cj, best, -1), at(c_dp, best), at(c_b, best), at(c_mb, best), at(c_tpot, best, 0.0),
                   at(c_ttft, best, 0.0), at(c_pre, best, 0.0), at(c_j, best, 0.0), at(c_share, best, 0.0),
                   at(c_thr, best, 0.0), at(pj, closest, -1), at(tpot, closest, 0.0), at(ttft, closest, 0.0), largest)


def _llm_result(t: LlmPlanTable, hw: HwView, chips, ch: _Choice, out_len: int, slo_tpot, slo_ttft) -> MappingResult:
    """The metrics, plans and reasons of an LLM block from each design's choice."""
    n = hw.n
    feasible = ch.plan >= 0
    tab = None if ch.blocks is None else _plan_ints(t)
    if tab is not None:  # the compiled choice: its numbers in one pass (the same operations as below)
        sk, dk = kernel_module("step_kernel"), kernel_module("design_kernel")
        OUT_FLOAT, OUT_INT = sk.OUT_FLOAT, sk.OUT_INT
        block = np.zeros((len(_NUMERIC), n))
        m = dict(zip(_NUMERIC, block))
        plan_block = np.zeros((len(_PLAN_FIELDS), n), np.int64)
        plans = dict(zip(_PLAN_FIELDS, plan_block))
        code = np.empty(n, np.int64)
        ci, cf = _result_columns(OUT_INT, OUT_FLOAT)
        dk.llm_result_kernel(ch.blocks[0], ch.blocks[1], ci, cf, tab, int(out_len), _RESULT_ROWS, block, plan_block,
                             code)
        bound = _WEIGHTS[code]
    else:
        g = feasible.nonzero()[0]
        jb = ch.plan[g]
        c_batch = ch.micro_batch[g] * ch.micro_batches[g]
        tpot_g = ch.tpot[g]
        m = _numeric_metrics(n)
        m["ttft_ms"][g] = ch.ttft[g] * 1e3
        m["tpot_ms"][g] = tpot_g * 1e3
        m["tokens_per_s"][g] = ch.throughput[g]
        m["tokens_per_s_per_user"][g] = 1.0 / tpot_g
        m["energy_j_per_unit"][g] = ch.joules[g] / (c_batch * out_len)
        m["prefill_share"][g] = ch.pre[g] / (ch.pre[g] + out_len * tpot_g)
        m["chips_used"][g] = ch.dp[g] * t.replica[jb]
        m["tp"][g], m["pp"][g], m["dp"][g], m["batch"][g] = t.tp[jb], t.pp[jb], ch.dp[g], c_batch
        m["ep"][g] = t.ep[jb]
        plans = {f: np.zeros(n, np.int64) for f in _PLAN_FIELDS}
        plans["tp"][g], plans["pp"][g], plans["ep"][g] = t.tp[jb], t.pp[jb], t.ep[jb]
        plans["micro_batch"][g], plans["micro_batches"][g], plans["dp"][g] = ch.micro_batch[g], ch.micro_batches[g], \
            ch.dp[g]
        bound = _WEIGHTS[_weights_code(feasible, ch.share)]
    # why a design has no plan: the closest SLO miss, else the largest plan (micro-batch 1) that does not fit
    reason = SCENARIO["reason"].empty(n)
    if np.count_nonzero(feasible) != n:
        bad = (~feasible).nonzero()[0]
        reasons = _llm_reasons if len(bad) >= REASONS_GROUPED else _llm_reasons_each
        reason[bad] = reasons(t, hw, chips, ch, bad, slo_tpot, slo_ttft)
    if tab is None:
        m["throughput"] = m["tokens_per_s"].copy()
        m["latency_ms"] = m["ttft_ms"] + m["tpot_ms"] * out_len
        m["latency_ms"][~feasible] = 0.0
    m["weights"] = bound
    return MappingResult(feasible, reason, m, plans)


_NO_MAPPING = "no feasible mapping (model does not fit on the available chips)"
# designs without a plan from which an LLM block's reasons are formatted by their distinct parts (`_llm_reasons`:
# a few array passes per call, ~0.2 ms, outweighed by its ~1.5 us less per design past ~150 designs), below it one
# by one (`_llm_reasons_each`): the same texts
REASONS_GROUPED = 256


def _slo_plan_texts(t: LlmPlanTable) -> _Texts:
    """A plan's text in an SLO miss's reason, once per plan table (`_texts`)."""
    return _texts(t, "slo", lambda p: f"at best (tp={int(t.tp[p])}, pp={int(t.pp[p])}, batch {int(t.batch[p])})")


def _fit_plan_texts(t: LlmPlanTable) -> _Texts:
    """(the text before the capacity, the text after it up to the chips) of a plan that does not fit, in binary or
    decimal units, once per plan table (`_texts`)."""
    def fit_plan(p, binary):
        ep_ = int(t.ep[p])
        ep_text = f", ep={ep_}" if ep_ > 1 else ""
        return (f"weights {_fmt_gb(t.w[p], binary)} + KV {_fmt_gb(t.kv[p], binary)} per chip > ",
                f" (tp={int(t.tp[p])}, pp={int(t.pp[p])}{ep_text} on {int(t.replica[p])} of ")
    return _texts(t, "fit", fit_plan)


def _llm_reasons_each(t: LlmPlanTable, hw: HwView, chips, ch: _Choice, bad: np.ndarray, slo_tpot, slo_ttft
                      ) -> np.ndarray:
    """`_llm_reasons`' texts, formatted design by design (few designs: no array passes)."""
    closest, largest = ch.close_plan[bad].tolist(), ch.largest[bad].tolist()
    tpot_lim = f" (limit {slo_tpot:g})" if slo_tpot else ""
    ttft_lim = f" (limit {slo_ttft:g})" if slo_ttft else ""
    mem_b, sram_b = hw.mem_bytes[bad].tolist(), hw.sram_bytes[bad].tolist()
    close_tpot, close_ttft, n_chips = ch.close_tpot[bad].tolist(), ch.close_ttft[bad].tolist(), chips[bad].tolist()
    # the parts shared by designs, formatted once per plan, unit or capacity
    slo_plan, plan_text = _slo_plan_texts(t), _fit_plan_texts(t)
    sram_text, mem_text = {}, _capacity_texts()
    out = []
    for k, p in enumerate(closest):
        if p >= 0:
            out.append(f"SLO missed: TPOT {close_tpot[k] * 1e3:.3g} ms{tpot_lim}, "
                       f"TTFT {close_ttft[k] * 1e3:.3g} ms{ttft_lim} {slo_plan[p,]}")
        elif largest[k] >= 0:
            mem = mem_b[k]
            if mem > 0:
                where, text, cap = "memory", plan_text[largest[k], True], mem_text[mem, True]
            else:  # (an SRAM capacity's text once per call: inline, ~1 µs a design less than `_Texts`' __missing__)
                x = sram_b[k]
                cap = sram_text.get(x)
                if cap is None:
                    cap = sram_text[x] = _fmt_gb(x)
                where, text = "SRAM", plan_text[largest[k], False]
            out.append(f"{text[0]}{where} {cap}{text[1]}{int(n_chips[k])} chips)")
        else:
            out.append(_NO_MAPPING)
    return np.array(out, dtype=object)


def _by_value(x: np.ndarray, text) -> np.ndarray:
    """`text(v)` of each element v of `x` (as Python scalars), an object array: formatted once per distinct value (a
    float's bits: -0.0 and 0.0, or two NaNs, apart)."""
    bits = x.dtype.kind == "f"
    u, inv = np.unique(x.astype(np.float64).view(np.int64) if bits else x, return_inverse=True)
    vals = (u.view(np.float64) if bits else u).tolist()
    return np.array([text(v) for v in vals] + [""], dtype=object)[:-1][inv.reshape(-1)]


def _llm_reasons(t: LlmPlanTable, hw: HwView, chips, ch: _Choice, bad: np.ndarray, slo_tpot, slo_ttft) -> np.ndarray:
    """The reasons of the designs `bad` (no plan), an object array: the closest SLO miss (its TPOT and TTFT, and its
    plan's text), else the largest plan (micro-batch 1) that does not fit (its weights and KV per chip against the
    design's memory, else SRAM, capacity on its chips), else none fits. The parts designs share (a plan's text, a
    capacity's, a chip count's) are formatted once per distinct value and joined to the rest as object arrays
    (a concatenation per element in numpy's loop): 0.6-0.75x of `_llm_reasons_each`'s time at ~1,000 designs."""
    closest, largest = ch.close_plan[bad], ch.largest[bad]
    out = np.empty(len(bad), object)
    out.fill(_NO_MAPPING)
    miss = closest >= 0
    i = np.flatnonzero(miss)
    if i.size:  # SLO missed: TPOT <ms>[ (limit ..)], TTFT <ms>[ (limit ..)] <plan>
        tpot_lim = f" (limit {slo_tpot:g})" if slo_tpot else ""
        ttft_lim = f" (limit {slo_ttft:g})" if slo_ttft else ""
        slo_plan = _slo_plan_texts(t)
        r = bad[i]
        plan = _by_value(closest[i], lambda p: slo_plan[p,])
        # (`%` of Python floats: f"{x:.3g}"'s text, in half its time)
        text = "SLO missed: TPOT %.3g ms" + tpot_lim.replace("%", "%%") + ", TTFT %.3g ms" + ttft_lim.replace(
            "%", "%%") + " %s"
        out[i] = [text % v for v in zip((ch.close_tpot[r] * 1e3).tolist(), (ch.close_ttft[r] * 1e3).tolist(),
                                        plan.tolist())]
    i = np.flatnonzero(~miss & (largest >= 0))
    if i.size:  # <weights + KV of the plan> <memory|SRAM> <capacity> (tp=, pp=[, ep=] on <replica> of <chips> chips)
        plan_text = _fit_plan_texts(t)
        r = bad[i]
        mem = hw.mem_bytes[r]
        on_mem = mem > 0
        p = largest[i]
        # the text before the capacity (plan, where) and after it (plan, chips), once per distinct (plan, where) and
        # (plan, chips): each as an index of a (plan, flag) or (plan, chips) pair
        n_chips = chips[r]
        head = _by_value(p * 2 + on_mem, lambda x: plan_text[x >> 1, bool(x & 1)][0] +
                         ("memory " if x & 1 else "SRAM "))
        tail = np.empty(len(i), object)
        for q in np.unique(p).tolist():
            at = np.flatnonzero(p == q)
            tail[at] = _by_value(n_chips[at], lambda c, q=q: f"{plan_text[q, True][1]}{int(c)} chips)")
        cap = np.empty(len(i), object)
        k = np.flatnonzero(on_mem)
        if k.size:  # (an off-chip capacity's text kept across calls: `_capacity_texts`)
            mem_text = _capacity_texts()
            cap[k] = _by_value(mem[k], lambda x: mem_text[x, True])
        k = np.flatnonzero(~on_mem)
        if k.size:
            cap[k] = _by_value(hw.sram_bytes[r[k]], _fmt_gb)
        out[i] = head + cap + tail
    return out


# the metrics `design_kernel.llm_result_kernel` writes, rows of `_numeric_metrics`' block, in its order
_RESULT_ROWS = np.array([_NUMERIC.index(k) for k in (
    "ttft_ms", "tpot_ms", "tokens_per_s", "tokens_per_s_per_user", "energy_j_per_unit", "prefill_share", "chips_used",
    "tp", "pp", "dp", "batch", "ep", "throughput", "latency_ms")], np.int64)
_RESULT_COLUMNS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _result_columns(out_int: tuple[str, ...], out_float: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The columns of `map_llm_kernel`'s outputs that `llm_result_kernel` reads (plan, dp, micro-batch,
    micro-batches; TPOT, TTFT, prefill, joules, share, throughput), once per pair of column names."""
    hit = _RESULT_COLUMNS.get((out_int, out_float))
    if hit is None:
        hit = _RESULT_COLUMNS[out_int, out_float] = (
            np.array([out_int.index(k) for k in ("plan", "dp", "micro_batch", "micro_batches")], np.int64),
            np.array([out_float.index(k) for k in ("tpot", "ttft", "pre", "joules", "share", "throughput")], np.int64))
    return hit


_PLAN_INTS: dict[tuple[int, ...], tuple] = {}  # id(plan table) → (it, its tp, pp, ep, replica rows or None)


def _plan_ints(t: LlmPlanTable) -> np.ndarray | None:
    """A plan table's tp, pp, ep and replica chips as rows of one int64 array (once per table), or None where one is
    not int64 (`_llm_result` then writes them in numpy, as their dtypes cast)."""
    def make(t):
        cols = (t.tp, t.pp, t.ep, t.replica)
        if not all(isinstance(c, np.ndarray) and c.dtype == np.int64 and c.ndim == 1 for c in cols):
            return None
        return np.ascontiguousarray(np.stack(cols))
    return by_identity(_PLAN_INTS, t, make)


def _chords(t: LlmPlanTable, hw: HwView, cal: Calibration, scenario, pi, pj, good, timed, tpot, ttft, prefill_s,
            joules, dp, fw, fk, memo, hop, chips, static, out_len: int, slo_met) -> dict[str, np.ndarray]:
    """The largest batch each design may run beyond its last good plan of each column of a batch range.

    A column's plans are knots (`plans.llm_ladders`); between a good knot and the next one (which does not fit,
    misses an SLO or exceeds the max) the batch grows one step at a time (one more micro-batch in flight
    while b = 1, else one more sequence per micro-batch) and every per-batch-cycle quantity (TPOT, prefill,
    TTFT, energy, KV and activation footprint) is the chord between the two knots: KV, FLOPs and bytes grow
    linearly with the batch, and a chord never undercuts a convex time. The largest step meeting the max,
    capacity and SLOs (bisection over all pairs at once) is the candidate; throughput B / (affine) is
    monotone along a chord, so the best batch of [1, limit] is a knot or the limit: more memory or a larger
    max never lowers it, and it moves continuously with them."""
    empty = {k: np.zeros(0) for k in ("tpot", "ttft", "pre", "joules", "share")}
    empty.update({k: np.zeros(0, np.int64) for k in ("i", "j", "dp", "micro_batch", "micro_batches")})
    if not len(pi) or not (t.nxt >= 0).any():
        return empty
    P = len(t.plans)
    q = np.flatnonzero(good & (t.nxt[pj] >= 0))
    hi = t.nxt[pj[q]]
    keys = pi * P + pj  # ascending: pairs are design-major in plan order
    want = pi[q] * P + hi
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    found = keys[pos] == want
    q = q[~(found & good[pos])]  # chords start at a column's last good plan
    if not len(q):
        return empty
    i, lo = pi[q], pj[q]
    hi = t.nxt[lo]
    want = i * P + hi
    pos = np.minimum(np.searchsorted(keys, want), len(keys) - 1)
    known = (keys[pos] == want) & timed[pos]
    # the upper knot where it was not timed (it does not fit): time it now, with its own resident shares
    h_tpot, h_ttft, h_pre, h_j = (np.where(known, a[pos], np.nan) for a in (tpot, ttft, prefill_s, joules))
    h_share = np.where(known, (fw + fk)[pos], np.nan)
    u = np.flatnonzero(~known)
    if len(u):
        ui, uj = i[u], hi[u]
        w_, kv_, act_ = t.w[uj], t.kv[uj], t.act[uj]
        ufw, ufk, _, _ = residency(w_, kv_, act_, hw.sram_bytes[ui], hw.mem_bytes[ui], kv_room=cal.kv_room_bytes)
        ucombo, upartial = residency_combo(ufw, ufk)
        tp_, pre_, tt_, _, jl = _pair_times(t, hw, cal, ui, uj, upartial, ucombo, ufw, ufk, memo, hop, chips,
                                            static, out_len)
        h_tpot[u], h_ttft[u], h_pre[u], h_j[u], h_share[u] = tp_, tt_, pre_, jl, ufw + ufk
    # the step variable x: micro-batches in flight when both knots have b = 1, else the micro-batch
    by_mb = t.micro_batch[hi] == t.micro_batch[lo]
    x_lo = np.where(by_mb, t.micro_batches[lo], t.micro_batch[lo])
    x_hi = np.where(by_mb, t.micro_batches[hi], t.micro_batch[hi])
    other = np.where(by_mb, t.micro_batch[lo], t.micro_batches[lo])
    max_b = scenario_batch(scenario)[1]
    sram, mem = hw.sram_bytes[i], hw.mem_bytes[i]
    w = t.w[lo]

    def frac(x):
        return (x - x_lo) / (x_hi - x_lo)

    def ok(x):
        th = frac(x)
        fits = fits_in(w, _lerp(t.kv[lo], t.kv[hi], th), _lerp(t.act[lo], t.act[hi], th), sram, mem,
                       kv_room=cal.kv_room_bytes)
        return (x * other <= max_b) & fits & slo_met(_lerp(tpot[q], h_tpot, th), _lerp(ttft[q], h_ttft, th))

    a = _largest_ok(x_lo, x_hi, ok)  # ok(x_lo), not ok(x_hi)
    keep = a > x_lo
    th = frac(a)[keep]
    k = q[keep]
    lo_k = lo[keep]
    return {"i": i[keep], "j": lo_k, "dp": dp[k],
            "tpot": _lerp(tpot[k], h_tpot[keep], th), "ttft": _lerp(ttft[k], h_ttft[keep], th),
            "pre": _lerp(prefill_s[k], h_pre[keep], th), "joules": _lerp(joules[k], h_j[keep], th),
            "share": _lerp((fw + fk)[k], h_share[keep], th),
            "micro_batch": np.where(by_mb[keep], t.micro_batch[lo_k], a[keep]),
            "micro_batches": np.where(by_mb[keep], a[keep], t.micro_batches[lo_k])}


# ---- CNN: every batch on every design as (designs × batches) arrays -----------------------------

def map_cnn(scenario, shape, prec, hw: HwView, cal: Calibration, builders=Builders) -> MappingResult:
    """Best batch for a CNN / vision scenario: data parallel over the chips, latency SLO per batch. Each
    batch is one forward pass: it pays the stack's per-inference launch, not an LLM engine step
    (`Calibration.for_phase`)."""
    return _blocked(_map_cnn_block, hw, scenario, _cnn_table(scenario, shape, prec), _inference(cal), cal)


_CNN_TABLES: dict[tuple[int, ...], tuple] = {}  # ids of (scenario, shape, precision) → (them, their CnnPlanTable)


def _cnn_table(scenario, shape, prec) -> CnnPlanTable:
    """`cnn_plan_table` once per (frozen) scenario, shape and precision objects: its cache hashes the shape, whose
    every layer is a model (~80 µs for ResNet-50, more than the rest of a small block's CNN mapping)."""
    return by_identities(_CNN_TABLES, (scenario, shape, prec), cnn_plan_table)


_INFERENCE: dict[tuple[int, ...], tuple] = {}  # id(calibration) → (it, its `for_phase("inference")`)
_NO_STEP_OVERHEAD: dict[tuple[int, ...], tuple] = {}  # id(calibration) → (it, it without its per-step cost)


def _inference(cal: Calibration) -> Calibration:
    """`cal.for_phase("inference")`, once per (frozen) calibration object: a model copy per call costs more
    than mapping a small block."""
    return by_identity(_INFERENCE, cal, lambda c: c.for_phase("inference"))


def _no_step_overhead(cal: Calibration) -> Calibration:
    """`cal` without its per-step cost (a layer pipeline's period), once per (frozen) calibration object."""
    return by_identity(_NO_STEP_OVERHEAD, cal, lambda c: c.model_copy(update={"step_overhead_us": 0.0}))


@dataclass
class _CnnChoice:
    """Each design's chosen batch of a CNN block, arrays of shape (n,): whether it has one, the batch (a chord's may
    lie between knots; 0 without one), its latency (s), dynamic energy (J) and resident weight share; for the reason
    of the others the first batch it stopped at (-1: none), whether that batch fits and its latency (s). Values
    are read only where a batch (or a stop) is."""

    feasible: np.ndarray
    batch: np.ndarray
    lat: np.ndarray
    energy: np.ndarray
    share: np.ndarray
    stop: np.ndarray
    stop_fits: np.ndarray
    stop_lat: np.ndarray
    # the compiled choice's outputs (`cnn_kernel.map_cnn_kernel`'s o_int, o_float), which `_cnn_result` reads whole
    raw: tuple[np.ndarray, np.ndarray] | None = None


def _map_cnn_block(hw: HwView, scenario, t: CnnPlanTable, cal: Calibration, base: Calibration, rows) -> MappingResult:
    """The CNN mapping of a block with `cal`, the inference phase's calibration `for_phase` derived from `base`."""
    max_chips = int(getattr(scenario, "max_chips", None) or 1 << 30)
    chips = np.minimum(hw.num_chips, max_chips)
    slo = _slo(scenario, "latency_ms")
    if compiled_kernel() is not None and len(t.steps):
        ch = _cnn_choose_compiled(hw, scenario, t, cal, chips, slo, base)
    else:
        ch = _cnn_choose(hw, scenario, t, cal, chips, slo)
    return _cnn_result(hw, t, chips, slo, ch)


def _cnn_pipelined(hw: HwView, t: CnnPlanTable, cal: Calibration):
    """(designs, latency and energy per batch (designs × batches), resident weight share) of the layer-pipelined
    designs of a block (chip.layer_pipeline), or None: each layer on its own region, one image per region at a
    time, so the period T is one image's work on the chip (its operators at batch 1, regions sized to their layers)
    and b images take T·(b + depth) (dse.workloads.cnn.pipeline_depth), plus one launch."""
    pipe = np.zeros(hw.n, bool) if hw.layer_pipeline is None else np.asarray(hw.layer_pipeline, bool)
    if not pipe.any() or t.one is None:
        return None
    pi = np.flatnonzero(pipe)
    w1, kv1, a1 = t.one_foot
    cache1 = None if hw.sram_cache is None else hw.sram_cache[pi]
    wr1, kr1, _, res1 = residency(w1, kv1, a1, hw.sram_bytes[pi], hw.mem_bytes[pi], cache1)
    wr1, kr1, res1 = timed_residency("cnn", wr1, kr1, res1)
    r = time_instances(_one_steps(t), np.zeros(len(pi), np.int64), pi, hw, _no_step_overhead(cal), wr1, kr1, res1)
    lat = r.time_s[:, None] * (t.batch[None, :] + t.depth) + cal.step_overhead_us * 1e-6
    return pi, lat, r.energy_j[:, None] * t.batch[None, :], np.asarray(wr1, float)


def _cnn_choose(hw: HwView, scenario, t: CnnPlanTable, cal: Calibration, chips, slo) -> _CnnChoice:
    """Each design's best batch (`_CnnChoice`), every (design, batch) of the block as (designs × batches) arrays."""
    n, B = hw.n, len(t.plans)
    goal = getattr(scenario, "goal", "throughput")
    cache = None if hw.sram_cache is None else hw.sram_cache[:, None]
    wres, kres, fits, resident = residency(t.w, t.kv, t.act, hw.sram_bytes[:, None], hw.mem_bytes[:, None], cache)
    wres, kres, resident = timed_residency("cnn", wres, kres, resident)
    # latency and footprint never shrink with batch: a design that misses the SLO or capacity at batch b
    # is not tried at larger batches. Batches are timed in stages of growing batch, each on the designs
    # that passed every smaller one (once a batch has few such designs, all larger batches in one stage)
    reach = np.cumprod(fits, axis=1).astype(bool)
    lat = np.ones((n, B))
    e_j = np.zeros((n, B))
    tm = np.zeros((n, B), bool)  # timed
    going = np.ones(n, bool)  # passed every batch so far
    piped = _cnn_pipelined(hw, t, cal)
    if piped is not None:
        pi, lat[pi], e_j[pi], wr1 = piped
        wres[pi] = wr1[:, None]  # where its weights live: the pipeline's, at every batch
        tm[pi] = True
        going[pi] = False  # timed: the stages below time the other designs
    at = 0
    while at < B:
        now = reach[:, at] & going
        if now.sum() >= STAGE_MIN_PAIRS or at == B - 1:
            ri = np.flatnonzero(now)
            rb = np.full(len(ri), at)
            nxt = at + 1
        else:
            ri, rb = np.nonzero(reach[:, at:] & going[:, None])
            rb = rb + at
            nxt = B
        r = time_instances(t.steps, rb, ri, hw, cal, wres[ri, rb], np.ones(len(ri)), resident[ri, rb])
        lat[ri, rb], e_j[ri, rb] = r.time_s, r.energy_j
        tm[ri, rb] = True
        if nxt < B:
            going &= fits[:, at] & ((lat[:, at] * 1e3 <= slo) if slo else True)
        at = nxt
    thr = chips[:, None] * t.batch / lat
    ok = reach & ((lat * 1e3 <= slo) if slo else True)
    passed = fits & ok
    alive = np.concatenate([np.ones((n, 1), bool), np.cumprod(passed, axis=1)[:, :-1].astype(bool)], axis=1)
    max_b = scenario_batch(scenario)[1]
    over = t.batch > max_b  # a range's last knot beyond the max: a chord's end only
    cand = alive & ok & ~over[None, :]
    score = thr if goal == "throughput" else -lat
    sc = np.where(cand, score, -np.inf)
    sc = np.where(np.isnan(sc), -np.inf, sc)
    j = np.argmax(sc, axis=1)
    feasible = sc[np.arange(n), j] > -np.inf
    batch = t.batch[j].astype(np.int64)
    lat_b, e_b, share_b = lat[np.arange(n), j], e_j[np.arange(n), j], wres[np.arange(n), j]
    # the chord beyond each design's last good batch (as `_chords` for LLMs): a batch between two knots has
    # the latency, energy and activations of the chord between them; the largest meeting the max, capacity
    # and the SLO is a candidate (throughput B / (affine) is monotone along it)
    last = B - 1 - np.argmax(cand[:, ::-1], axis=1)
    ci = np.flatnonzero(feasible & (last + 1 < B))
    if len(ci) and B > 1:
        lo, hi = last[ci], last[ci] + 1
        u = ~tm[ci, hi]
        if u.any():
            r = time_instances(t.steps, hi[u], ci[u], hw, cal, wres[ci[u], hi[u]], np.ones(int(u.sum())),
                               resident[ci[u], hi[u]])
            lat[ci[u], hi[u]], e_j[ci[u], hi[u]] = r.time_s, r.energy_j
        x_lo, x_hi = t.batch[lo].astype(np.int64), t.batch[hi].astype(np.int64)
        l_lo, l_hi, en_lo, en_hi = lat[ci, lo], lat[ci, hi], e_j[ci, lo], e_j[ci, hi]
        sram, mem = hw.sram_bytes[ci], hw.mem_bytes[ci]

        def frac(x):
            return (x - x_lo) / (x_hi - x_lo)

        def okx(x):
            th = frac(x)
            fit = fits_in(t.w[lo], 0.0, _lerp(t.act[lo], t.act[hi], th), sram, mem)
            lx = _lerp(l_lo, l_hi, th)
            return (x <= max_b) & fit & ((lx * 1e3 <= slo) if slo else True)

        a = _largest_ok(x_lo, x_hi, okx)  # okx(x_lo), not okx(x_hi)
        th = frac(a)
        lx = _lerp(l_lo, l_hi, th)
        thr_x = chips[ci] * a / lx
        score_x = thr_x if goal == "throughput" else -lx
        win = (a > x_lo) & (score_x > sc[ci, j[ci]])
        w_ = ci[win]
        batch[w_], lat_b[w_] = a[win], lx[win]
        e_b[w_] = _lerp(en_lo, en_hi, th)[win]
        share_b[w_] = _lerp(wres[ci, lo], wres[ci, hi], th)[win]
    stop = alive & ~passed
    first = np.argmax(stop, axis=1)
    at_first = (np.arange(n), first)
    return _CnnChoice(feasible, batch, lat_b, e_b, share_b, np.where(stop[at_first], first, -1), fits[at_first],
                      lat[at_first])


_ONE_STEPS: dict[tuple[int, ...], tuple] = {}  # id(CNN plan table) → (it, the tuple of its one-image step)
_ONE_CAL: dict[tuple[int, ...], tuple] = {}  # ids of (calibration scalars, calibration) → (them, `_without_step_cost`)


def _one_steps(t: CnnPlanTable) -> tuple:
    """`(t.one,)`, the same tuple on every call of a (cached) table: the step caches keyed on its identity
    (`_compressed`, `perf.stacked_tables`) hit."""
    return by_identity(_ONE_STEPS, t, lambda t: (t.one,))


def _without_step_cost(sk, calv: np.ndarray, cal: Calibration) -> np.ndarray:
    """A copy of the calibration scalars `calv` (`step_kernel.cal_table`'s of `cal`) without the per-step cost
    (`_no_step_overhead`): the one-image step's."""
    out = calv.copy()
    out[sk._CAL.index("step_overhead_s")] = _no_step_overhead(cal).step_overhead_us * 1e-6
    return out


def _cnn_choose_compiled(hw: HwView, scenario, t: CnnPlanTable, cal: Calibration, chips, slo,
                         base: Calibration | None = None) -> _CnnChoice:
    """`_cnn_choose` by the compiled kernel (`cnn_kernel.map_cnn_kernel`): one loop over the designs, each batch's
    step (and a layer-pipelined design's one-image step) timed by the same per-instance arithmetic as
    `perf.step_times`' compiled path. `base`: the calibration `cal` was derived from by `for_phase` (the same
    per-design constants: the phase changes a per-step cost only), whose constants the LLM scenarios' mappings of
    the same designs have computed already (`compiled_tables`' `design_cal`)."""
    ck = kernel_module("cnn_kernel")
    sk = compiled_kernel()
    n = hw.n
    tables = compiled_tables(sk, stacked_tables(_compressed(t.steps)), hw, cal, base)
    pipe = np.zeros(n, bool) if hw.layer_pipeline is None or t.one is None else np.array(hw.layer_pipeline, bool)
    # the one-image step runs without the per-step cost (`_no_step_overhead`), which only the calibration scalars
    # hold: the per-design constants are the batch steps' (shared through `compiled_tables`' cache)
    one = list(compiled_tables(sk, stacked_tables(_compressed(_one_steps(t))), hw, cal, base) if pipe.any()
               else tables)
    one[8] = by_identities(_ONE_CAL, (one[8], cal), lambda calv, cal: _without_step_cost(sk, calv, cal))
    sc = by_identities(_KERNEL_SCALARS, (scenario, cal, t), lambda scenario, cal, t: np.array(
        [slo or 0.0, scenario_batch(scenario)[1], getattr(scenario, "goal", "throughput") == "throughput",
         cal.step_overhead_us * 1e-6, t.depth], float))  # the scenario's scalars, once per scenario, stack and table
    o_int = np.zeros((n, len(ck.OUT_INT)), np.int64)
    o_float = np.zeros((n, len(ck.OUT_FLOAT)))
    f = (lambda x, d=np.float64: kernel_column(x, n, d))  # C arrays of the compiled type (the kernel reads them)
    c = (lambda x, d=float: np.ascontiguousarray(x, d))
    batch, w, kv, act, one_foot = _cnn_plan_arrays(t)
    ck.map_cnn_kernel(batch, w, kv, act, f(hw.sram_bytes), f(hw.mem_bytes), f(chips),
                      sc, *tables[:9], c(tables[9], np.int64), pipe, one_foot, *one[:9],
                      c(one[9], np.int64), float(SPLIT_K_MIN), o_int, o_float)
    i, x = dict(zip(ck.OUT_INT, o_int.T)), dict(zip(ck.OUT_FLOAT, o_float.T))
    return _CnnChoice(i["feasible"] != 0, i["batch"], x["lat"], x["energy"], x["share"], i["stop"],
                      i["stop_fits"] != 0, x["stop_lat"], (o_int, o_float))


_CNN_PLAN_ARRAYS: dict[tuple[int, ...], tuple] = {}  # id(CNN plan table) → (it, its arrays as the kernel takes them)


def _cnn_plan_arrays(t: CnnPlanTable) -> tuple[np.ndarray, ...]:
    """(batch (int64), w, kv, act, one_foot) of a (cached, immutable) CNN plan table as C arrays of `map_cnn_kernel`'s
    types, once per table."""
    return by_identity(_CNN_PLAN_ARRAYS, t, lambda t: (np.ascontiguousarray(t.batch, np.int64),
                                                       *(np.ascontiguousarray(a, float) for a in (t.w, t.kv, t.act)),
                                                       np.array(t.one_foot, float)))


def _cnn_result(hw: HwView, t: CnnPlanTable, chips, slo, ch: _CnnChoice) -> MappingResult:
    """The metrics, plans and reasons of a CNN block from each design's choice."""
    n = hw.n
    feasible, batch, lat_b = ch.feasible, ch.batch, ch.lat
    static_w = hw.static_w if hw.static_w is not None else np.zeros(n)
    if ch.raw is not None and chips.dtype == np.int64 and static_w.dtype == np.float64 and static_w.flags.carray:
        # the compiled choice: its numbers in one pass (`cnn_kernel.cnn_result_kernel`, the operations below)
        block = np.zeros((len(_NUMERIC), n))
        m = dict(zip(_NUMERIC, block))
        plan_block = np.zeros((len(_PLAN_FIELDS), n), np.int64)
        plans = dict(zip(_PLAN_FIELDS, plan_block))
        code = np.empty(n, np.int64)
        ck = kernel_module("cnn_kernel")
        ck.cnn_result_kernel(ch.raw[0], ch.raw[1], chips, static_w, _cnn_result_rows(ck), block, plan_block, code)
        weights = _WEIGHTS[code]
    else:
        static = static_w[:, None]
        g = feasible.nonzero()[0]
        m = _numeric_metrics(n)
        plans = {k: np.zeros(n, np.int64) for k in _PLAN_FIELDS}
        m["latency_ms"][g] = lat_b[g] * 1e3
        m["images_per_s"][g] = chips[g] * batch[g] / lat_b[g]
        m["energy_j_per_unit"][g] = (ch.energy[g] + static[g, 0] * lat_b[g]) / batch[g]
        m["chips_used"][g] = chips[g]
        m["batch"][g] = batch[g]
        for f in _PLAN_FIELDS:
            plans[f][g] = chips[g] if f == "dp" else batch[g] if f == "micro_batch" else 1
        weights = _WEIGHTS[_weights_code(feasible, ch.share)]
        m["throughput"] = m["images_per_s"].copy()
        m["tp"], m["pp"] = np.where(feasible, 1.0, 0.0), np.where(feasible, 1.0, 0.0)
        m["dp"] = m["chips_used"].copy()
        m["ep"] = np.where(feasible, 1.0, 0.0)
    # why a design has none: the first batch it stopped at (capacity, else the latency SLO)
    reason = SCENARIO["reason"].empty(n)
    bad = (~feasible).nonzero()[0]
    if len(bad):
        stops, fit_b = ch.stop[bad].tolist(), ch.stop_fits[bad].tolist()
        lat_f, sram_b = ch.stop_lat[bad].tolist(), hw.sram_bytes[bad].tolist()
        on_chip = _Texts(_fmt_gb)  # a capacity's text, once per distinct capacity
        cap_text = _texts(t, "fit", lambda b: (f"weights {_fmt_gb(t.w[b])} + activations {_fmt_gb(t.act[b])} > on-chip ",
                                               f" (batch {int(t.batch[b])})"))
        out = []
        for k, b in enumerate(stops):
            if b < 0:
                out.append("no feasible batch")
            elif not fit_b[k]:
                text = cap_text[b,]
                out.append(f"{text[0]}{on_chip[sram_b[k],]}{text[1]}")
            else:
                out.append(f"latency {lat_f[k] * 1e3:.3g} ms > SLO {slo:g} ms even at batch {int(t.batch[b])}")
        reason[bad] = np.array(out, dtype=object)
    m["weights"] = weights
    return MappingResult(feasible, reason, m, plans)


_CNN_RESULT_ROWS: dict[tuple[int, ...], tuple] = {}  # id(cnn_kernel) → (it, the rows its result kernel writes)


def _cnn_result_rows(ck) -> np.ndarray:
    """The rows of a mapping's metric block (`_NUMERIC`) that `cnn_kernel.cnn_result_kernel` writes, in its order
    (`cnn_kernel.RESULT_METRICS`), once."""
    return by_identity(_CNN_RESULT_ROWS, ck, lambda ck: np.array([_NUMERIC.index(k) for k in ck.RESULT_METRICS],
                                                                 np.int64))


def evaluate_scenario(scenario, hw: HwView, cal: Calibration, force_tp: int | None = None,
                      force_pp: int | None = None) -> MappingResult:
    """Best plan of one scenario on every design of `hw` (optionally with tp / pp forced)."""
    shape = load_model_shape(scenario.model)
    prec = scenario.precision_spec() if hasattr(scenario, "precision_spec") else scenario.precision
    if scenario.kind == "cnn":
        return map_cnn(scenario, shape, prec, hw, cal)
    return map_llm(scenario, shape, prec, hw, cal, force_tp=force_tp, force_pp=force_pp)
