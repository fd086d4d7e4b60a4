"""Scenario → steps: the design-independent operator tables a plan runs, cached per shape.

The tables depend only on the scenario and the plan's (tp, ep, micro-batch), never on the design,
so they are built once and evaluated on every design at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dse.model.memo import by_identities
from dse.evaluate.plans import PP_CHOICES, Plan, cnn_plans, llm_ladders, scenario_batch
from dse.workloads.cnn import build_cnn_step, pipeline_depth
from dse.workloads.step import Step
from dse.workloads.transformer import build_llm_step, gemm_out_bytes, mean_decode_kv_len


class Builders:
    """Design-independent operator tables, cached per (scenario shape, tp, batch): the mapping's inputs."""

    @staticmethod
    @lru_cache(maxsize=4096)
    def llm(shape, phase: str, batch: int, seq_len: int, kv_len: int, tp: int, prec, ep: int = 1) -> Step:
        return build_llm_step(shape, phase, batch=batch, seq_len=seq_len, kv_len=kv_len, tp=tp, ep=ep, prec=prec)

    @staticmethod
    @lru_cache(maxsize=1024)
    def cnn(shape, batch: int, prec) -> Step:
        return build_cnn_step(shape, batch=batch, tp=1, prec=prec)

    @staticmethod
    def tp_ok(shape, tp: int) -> bool:
        return tp <= shape.heads

    @staticmethod
    def mean_kv(prompt: int, out_len: int) -> int:
        return int(round(mean_decode_kv_len(prompt, out_len)))

    @staticmethod
    def kv_bytes(shape, batch: int, context: int, tp: int, prec) -> float:
        """KV cache of `batch` sequences of `context` tokens over all layers, on one chip of the tp group
        (the shape owns the formula: MLA latents, sliding windows)."""
        return shape.kv_cache_bytes(batch, context, tp, prec.kv_bytes)

    @staticmethod
    def hidden(shape) -> int:
        return int(shape.hidden)

    @staticmethod
    def hop_bytes(prec) -> float:
        """Bytes per hidden value between pipeline stages (the 16-bit residual stream, transformer.gemm_out_bytes)."""
        return gemm_out_bytes(prec.act_bytes)


# Tokens per prefill chunk: TensorRT-LLM's default `max_num_tokens` (8192) bounds the tokens one
# engine step processes, so a large batch's prompts are prefilled a few requests at a time.
PREFILL_CHUNK_TOKENS = 8192


@dataclass(frozen=True)
class LlmSteps:
    """The steps one LLM plan runs on a chip of its replica: the TTFT prefill (one prompt), a decode
    step at the micro-batch, and a prefill chunk of `chunk_prompts` prompts (the TTFT step when 1)."""

    prefill: Step
    decode: Step
    chunk: Step
    chunk_prompts: int

    @property
    def act_bytes(self) -> float:
        """Peak activation buffer over the three steps (reserved next to resident weights)."""
        return max(self.decode.act_bytes_per_chip, self.prefill.act_bytes_per_chip, self.chunk.act_bytes_per_chip)


def llm_steps(scenario, shape, prec, tp: int, ep: int, micro_batch: int) -> LlmSteps:
    """The steps of a plan with this (tp, ep, micro-batch); shared by the mapping and the breakdown."""
    prompt, out_len = int(scenario.prompt_len), int(scenario.output_len)
    pre = Builders.llm(shape, "prefill", 1, prompt, prompt, tp, prec, ep)
    dec = Builders.llm(shape, "decode", micro_batch, 1, Builders.mean_kv(prompt, out_len), tp, prec, ep)
    # the batch's prompts are prefilled in chunks of at most PREFILL_CHUNK_TOKENS tokens
    pb = max(1, min(micro_batch, PREFILL_CHUNK_TOKENS // max(prompt, 1)))
    chunk = pre if pb == 1 else Builders.llm(shape, "prefill", pb, prompt, prompt, tp, prec, ep)
    return LlmSteps(pre, dec, chunk, pb)


def stage_weight_bytes(step: Step, pp: int) -> float:
    """Weights on one chip of the heaviest of `pp` pipeline stages (it also holds the embedding or head)."""
    if pp == 1:
        return float(step.weight_bytes_per_chip)
    layers_max = -(-step.layers // pp)
    return layers_max * step.layer_weight_bytes + max(step.embed_weight_bytes, step.head_weight_bytes)


def llm_footprint(scenario, shape, prec, steps: LlmSteps, plan) -> tuple[float, float, float]:
    """(weights, KV cache, activations) in bytes on one chip of the heaviest pipeline stage of `plan`:
    the KV of the whole batch for the full context, over that stage's layers, split by tp and ep."""
    dec = steps.decode
    w = stage_weight_bytes(dec, plan.pp)
    context = int(scenario.prompt_len) + int(scenario.output_len)
    kv = Builders.kv_bytes(shape, plan.batch, context, plan.tp, prec) * (-(-dec.layers // plan.pp)) \
        / dec.layers / plan.ep
    return w, kv, steps.act_bytes


def cnn_footprint(step: Step) -> tuple[float, float, float]:
    """(weights, KV cache = 0, activations) in bytes per chip of a CNN batch."""
    return step.weight_bytes_per_chip, 0.0, step.act_bytes_per_chip


# ---- plan tables: every candidate plan of a scenario as arrays, built once per scenario -------------

@dataclass(frozen=True, eq=False)
class LlmPlanTable:
    """Every candidate plan of an LLM scenario as arrays over plans, in the order the best plan is chosen
    in (ladder, rung by growing micro-batch, pipeline depth), with the distinct steps they run (`steps`;
    `dec`, `pre`, `chunk` index them), per-chip footprints and pipeline hop sizes (`hop_bytes`; `hop_dec`,
    `hop_pre`, `hop_chunk` index them). Design-independent: built once per scenario and chip counts."""

    plans: tuple[Plan, ...]
    steps: tuple[Step, ...]
    tp: np.ndarray
    pp: np.ndarray
    ep: np.ndarray
    micro_batch: np.ndarray
    micro_batches: np.ndarray
    batch: np.ndarray
    grp: np.ndarray           # tp * ep: chips of one pipeline stage
    replica: np.ndarray       # tp * ep * pp
    rung: np.ndarray          # rung index per plan (rungs numbered over all ladders)
    first_rung: np.ndarray    # bool: the plan is on a micro-batch-1 rung (capacity reasons come from these)
    rung_start: np.ndarray    # per rung: index of the first rung of its ladder
    rung_prune: np.ndarray    # per rung: its ladder prunes (`Ladder.prune`)
    dec: np.ndarray
    pre: np.ndarray
    chunk: np.ndarray
    n_chunks: np.ndarray      # prefill chunks of one replica's batch
    w: np.ndarray
    kv: np.ndarray
    act: np.ndarray
    hop_bytes: np.ndarray
    hop_dec: np.ndarray
    hop_pre: np.ndarray
    hop_chunk: np.ndarray
    depth_any: np.ndarray     # bool: every design that has the chips tries the plan's depth (else `depth_tried`)
    # batch ranges: `nxt` is the next plan of the same (ladder, pp) column (-1: none), the upper end of
    # the chord from this plan; `over` marks a plan whose batch exceeds the max (a chord's end, never run)
    nxt: np.ndarray
    over: np.ndarray
    # footprint classes: plans whose step of a role has the same (step, weights, KV, activations) share a
    # design's resident shares, hence its time under them; `cls_step` is each class's step
    dec_cls: np.ndarray
    pre_cls: np.ndarray
    chunk_cls: np.ndarray
    cls_step: np.ndarray


@lru_cache(maxsize=256)
def _llm_plan_table(shape, prec, chip_counts: tuple, force_tp, force_pp, scenario: "_Key",
                    force_ep=None) -> LlmPlanTable:
    prompt = int(scenario.prompt_len)
    steps: dict[int, tuple[int, Step]] = {}
    hops: dict[int, int] = {}
    hidden, act_b = Builders.hidden(shape), Builders.hop_bytes(prec)

    def step_id(step: Step) -> int:
        return steps.setdefault(id(step), (len(steps), step))[0]

    def hop_id(tokens: int) -> int:
        return hops.setdefault(tokens, len(hops))

    cols: dict[str, list] = {k: [] for k in ("dec", "pre", "chunk", "n_chunks", "w", "kv", "act", "rung",
                                             "hop_dec", "hop_pre", "hop_chunk")}
    plans, rung_start, rung_prune = [], [], []
    fixed, max_b = scenario_batch(scenario)
    nxt: list[int] = []
    for ladder in llm_ladders(scenario, shape, np.array(chip_counts), force_tp, force_pp, force_ep):
        first = len(rung_start)
        last: dict[int, int] = {}  # per pipeline depth: the column's latest plan
        for rung in ladder.rungs:
            if not rung.plans and ladder.prune:
                break  # no design can pass an empty rung of a pruning ladder
            r = len(rung_start)
            rung_start.append(first)
            rung_prune.append(ladder.prune)
            st = llm_steps(scenario, shape, prec, rung.tp, rung.ep, rung.micro_batch)
            ids = (step_id(st.decode), step_id(st.prefill), step_id(st.chunk))
            hop_ids = (hop_id(rung.micro_batch), hop_id(prompt), hop_id(st.chunk_prompts * prompt))
            for plan in rung.plans:
                w, kv, act = llm_footprint(scenario, shape, prec, st, plan)
                if fixed is None and plan.pp in last:
                    nxt[last[plan.pp]] = len(plans)
                last[plan.pp] = len(plans)
                nxt.append(-1)
                plans.append(plan)
                for k, v in zip(("dec", "pre", "chunk", "hop_dec", "hop_pre", "hop_chunk", "w", "kv", "act", "rung"),
                                (*ids, *hop_ids, w, kv, act, r)):
                    cols[k].append(v)
                cols["n_chunks"].append(plan.micro_batches * -(-plan.micro_batch // st.chunk_prompts))
    classes: dict[tuple, int] = {}
    for role in ("dec", "pre", "chunk"):
        cols[f"{role}_cls"] = [classes.setdefault((sid, w, kv, act), len(classes))
                               for sid, w, kv, act in zip(cols[role], cols["w"], cols["kv"], cols["act"])]
    ints = {f: np.array([getattr(p, f) for p in plans], np.int64)
            for f in ("tp", "pp", "ep", "micro_batch", "micro_batches")}
    hop_bytes = np.array([t * hidden * act_b for t in hops], float)  # as tokens × hidden × bytes, in that order
    return LlmPlanTable(
        plans=tuple(plans), steps=tuple(s for _, s in sorted(steps.values(), key=lambda x: x[0])), **ints,
        batch=ints["micro_batch"] * ints["micro_batches"], grp=ints["tp"] * ints["ep"],
        replica=ints["tp"] * ints["ep"] * ints["pp"], first_rung=ints["micro_batch"] == 1,
        rung_start=np.array(rung_start, np.int64), rung_prune=np.array(rung_prune, bool),
        depth_any=np.array([force_pp is not None or p.pp in PP_CHOICES for p in plans], bool),
        hop_bytes=hop_bytes, cls_step=np.array([key[0] for key in classes], np.int64),
        nxt=np.array(nxt, np.int64),
        over=np.array([fixed is None and p.batch > max_b for p in plans], bool),
        **{k: np.array(v, float if k in ("w", "kv", "act") else np.int64) for k, v in cols.items()})


class _Key:
    """A scenario keyed by what the LLM plan table reads of it (lengths, batch policy): the cache key."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.key = (int(scenario.prompt_len), int(scenario.output_len), scenario_batch(scenario))

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Key) and self.key == other.key

    def __getattr__(self, name):
        return getattr(self.scenario, name)


# A table built for more chip counts than a call has serves it unchanged: a design tries only the plans
# its own chips allow (`depth_tried`), so the others' whole-system depths never reach it. Tables are
# therefore built for the union of the counts seen per scenario, up to this many counts (then per call).
TABLE_COUNTS_MAX = 64
_TABLE_COUNTS: dict[tuple, list[frozenset]] = {}


def llm_plan_table(scenario, shape, prec, chip_counts, force_tp: int | None = None,
                   force_pp: int | None = None, force_ep: int | None = None) -> LlmPlanTable:
    """The `LlmPlanTable` of a scenario on systems of `chip_counts` chips (cached; possibly a table
    of more chip counts, which gives every design the same plans)."""
    # the scenario's cache key, its list of counts seen and its tables by counts, once per (frozen) scenario, shape
    # and precision objects and forcing: no per-call hashing of the shape (every layer a model)
    key, forced = by_identities(_PLAN_TABLE_KEYS, (scenario, shape, prec), lambda sc, sh, pr: (_Key(sc), {}))
    hit = forced.get((force_tp, force_pp, force_ep))
    if hit is None:
        hit = forced[force_tp, force_pp, force_ep] = (
            _TABLE_COUNTS.setdefault((shape, prec, force_tp, force_pp, key, force_ep), []), {})
    seen, tables = hit
    c = np.asarray(chip_counts).ravel()
    if c.dtype.kind in "iu":
        counts = frozenset(c.tolist())  # (Python ints)
    else:
        c = np.sort(c)  # distinct counts by a sort (numpy 2's np.unique hashes first: slower)
        counts = frozenset(int(x) for x in c[np.concatenate(([True], c[1:] != c[:-1]))]) if c.size else frozenset()
    cover = min((s for s in seen if counts <= s), key=len, default=None)
    if cover is None:
        union = counts.union(*seen)
        cover = union if len(union) <= TABLE_COUNTS_MAX else counts
        seen.append(cover)
        del seen[:-8]
    table = tables.get(cover)
    if table is None:
        if len(tables) > TABLE_COUNTS_MAX:
            tables.clear()
        table = tables[cover] = _llm_plan_table(shape, prec, tuple(sorted(cover)), force_tp, force_pp, key, force_ep)
    return table


_PLAN_TABLE_KEYS: dict[tuple[int, ...], tuple] = {}  # ids of (scenario, shape, precision) → (them, (_Key, by forcing))


@dataclass(frozen=True, eq=False)
class CnnPlanTable:
    """Every candidate plan of a CNN scenario by growing batch, with its step and per-chip footprint."""

    plans: tuple[Plan, ...]
    steps: tuple[Step, ...]
    batch: np.ndarray
    w: np.ndarray
    kv: np.ndarray
    act: np.ndarray
    # one image (the period of a layer-pipelined chip, chip.layer_pipeline) and its footprint, and the
    # pipeline's depth in periods (dse.workloads.cnn.pipeline_depth)
    one: Step | None = None
    one_foot: tuple[float, float, float] = (0.0, 0.0, 0.0)
    depth: float = 0.0


def cnn_plan_table(scenario, shape, prec) -> CnnPlanTable:
    """The `CnnPlanTable` of a scenario (cached on its shape, precision and batches: one hash of the shape
    per call rather than one per batch in `Builders.cnn`'s cache)."""
    return _cnn_plan_table(shape, prec, tuple(cnn_plans(scenario)))


@lru_cache(maxsize=256)
def _cnn_plan_table(shape, prec, plans: tuple[Plan, ...]) -> CnnPlanTable:
    steps = tuple(Builders.cnn(shape, p.batch, prec) for p in plans)
    foot = np.array([cnn_footprint(s) for s in steps], float).reshape(len(steps), 3)
    one = Builders.cnn(shape, 1, prec)
    return CnnPlanTable(plans, steps, np.array([p.batch for p in plans], np.int64), *foot.T, one=one,
                        one_foot=cnn_footprint(one), depth=pipeline_depth(shape))
