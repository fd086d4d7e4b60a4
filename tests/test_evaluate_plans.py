"""Plans: enumeration, the chosen plan of the mapping, and the breakdown showing exactly that plan."""

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.evaluate import evaluate_scenario, operator_breakdown
from dse.evaluate.plans import (Plan, batch_candidates, cnn_plans, knot_ladder, llm_ladders,
                                micro_batch_candidates, powers_of_two)
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.perf import HwView, collective_time
from dse.model.technology import default_technology
from dse.workloads.scenarios import Scenario, adhoc_scenario, load_scenario
from dse.workloads.modelfile import load_model_shape

TECH = default_technology()
CAL = load_calibration("tuned")


def _hw(design) -> HwView:
    return HwView.from_arrays(DesignArrays.from_designs([design], TECH))


def test_plan_fields():
    p = Plan(tp=2, pp=4, ep=2, micro_batch=8, micro_batches=3, dp=5)
    assert p.batch == 24 and p.replica_chips == 16
    assert p.label() == "tp2 pp4 ep2 dp5 batch 24"
    assert Plan().label() == "tp1 pp1 dp0 batch 1"


def test_fixed_batch_plans_all_serve_that_batch():
    sc = adhoc_scenario(model="Llama-3-8B", batch=12, prompt_len=512, output_len=128)
    shape = load_model_shape("Llama-3-8B")
    ladders = llm_ladders(sc, shape, np.array([8, 64]))
    plans = [p for lad in ladders for r in lad.rungs for p in r.plans]
    assert plans and all(p.batch == 12 and p.micro_batches <= p.pp for p in plans)
    assert not any(lad.prune for lad in ladders)  # a fixed batch keeps its footprint: no pruning
    assert micro_batch_candidates(sc) == [1, 2, 4, 12]  # divisors among powers of two, plus the batch


def test_batch_range_plans_respect_max_and_layers():
    sc = load_scenario("datacenter_llm")
    shape = load_model_shape(sc.model)
    ladders = llm_ladders(sc, shape, np.array([576]))
    plans = [p for lad in ladders for r in lad.rungs for p in r.plans]
    top = sc.batch.max
    assert all(1 <= p.micro_batches <= p.pp for p in plans)
    # a column (tp, ep, pp) runs up to the first plan reaching the max; only that one may exceed it (a
    # chord's upper knot), and the plans below it are one sequence, a full pipeline of single sequences,
    # then full pipelines of doubling micro-batches
    for lad in ladders:
        for pp in {p.pp for r in lad.rungs for p in r.plans}:
            col = [(p.micro_batch, p.micro_batches) for r in lad.rungs for p in r.plans if p.pp == pp]
            want = [(1, 1)] + ([(1, pp)] if pp > 1 and top > 1 else [])
            while want[-1][0] * want[-1][1] < top:
                want.append((want[-1][0] * 2, pp))
            assert col == want, (lad.tp, lad.ep, pp, col)
            assert sum(b * mb > top for b, mb in col) <= 1
    assert all(p.pp <= shape.layers and p.tp <= shape.heads and p.replica_chips <= 576 for p in plans)
    # "every chip in one pipeline": 576 chips at tp 8 give pp 72 when the model has that many layers
    if shape.layers >= 72:
        assert any(p.tp == 8 and p.pp == 72 for p in plans)
    for lad in ladders:  # rungs grow the micro-batch; every plan of a rung shares its tables
        bs = [r.micro_batch for r in lad.rungs]
        assert bs == sorted(bs)
        assert all(p.micro_batch == r.micro_batch and p.tp == lad.tp for r in lad.rungs for p in r.plans)
    assert llm_ladders(sc, shape, np.array([576]), force_tp=4, force_pp=2)[0].rungs[0].plans[0].pp == 2


def _with_max_batch(sc, max_batch: int) -> Scenario:
    """`sc` with the batch policy {max: max_batch} and the throughput goal."""
    data = sc.model_dump()
    data.update(batch={"max": max_batch}, goal="throughput")
    return Scenario.model_validate(data)


def test_batch_ladder_has_no_ceiling():
    # every power of two up to the top, plus a top that is not one (hand-listed); the old ladder stopped
    # at 1,024, so {max: 4096} ran at <= 1,024 while {max: 4095} tried 4,095 (a cliff)
    assert powers_of_two(1) == [1] and powers_of_two(5) == [1, 2, 4] and powers_of_two(8) == [1, 2, 4, 8]
    base = adhoc_scenario(model="Llama-3-8B", batch=1)
    p2 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
    # a range's knots: powers of two up to the first >= the max (a max between knots is a chord)
    assert knot_ladder(1) == [1] and knot_ladder(3) == [1, 2, 4] and knot_ladder(4) == [1, 2, 4]
    assert micro_batch_candidates(_with_max_batch(base, 4096)) == p2 + [4096]
    assert micro_batch_candidates(_with_max_batch(base, 4095)) == p2 + [4096]
    assert micro_batch_candidates(_with_max_batch(base, 3000)) == p2 + [4096]
    assert micro_batch_candidates(_with_max_batch(base, 1)) == [1]
    # a fixed batch: the powers of two dividing it, plus the batch itself (its one-micro-batch plan)
    assert micro_batch_candidates(adhoc_scenario(model="Llama-3-8B", batch=4096)) == p2 + [4096]
    assert micro_batch_candidates(adhoc_scenario(model="Llama-3-8B", batch=3072)) == p2[:11] + [3072]
    vision = adhoc_scenario(model="ResNet-50", batch=1)
    assert batch_candidates(_with_max_batch(vision, 2048)) == p2
    assert batch_candidates(_with_max_batch(vision, 3000)) == p2 + [4096]
    # a range reaches its max on one pipeline stage: plans of batch 4,096 at pp 1 exist
    sc = _with_max_batch(adhoc_scenario(model="Llama-3-8B", batch=1), 4096)
    plans = [p for lad in llm_ladders(sc, load_model_shape("Llama-3-8B"), np.array([1]))
             for r in lad.rungs for p in r.plans]
    assert max(p.batch for p in plans) == 4096 and all(p.pp == 1 for p in plans)


def test_fixed_batch_4096_is_feasible_when_memory_allows():
    # Llama-3-8B FP8 on one B200 (192 GB) at a fixed batch of 4,096 with 128 + 128 tokens: weights 8 GB +
    # KV 4,096 x 256 tokens x 64 KiB (32 layers x 8 KV heads x 128 x 2 (K, V) x 1 byte) = 69 GB fits on one
    # chip (pp 1, one micro-batch of 4,096). The old ladder (micro-batches <= 1,024) needed pp >= 4: infeasible.
    sc = adhoc_scenario(model="Llama-3-8B", batch=4096, prompt_len=128, output_len=128, weight_bits=8,
                        act_bits=8, kv_bits=8, max_chips=1)
    res = evaluate_scenario(sc, _hw(load_catalog_design("B200")), CAL)
    assert res.feasible[0]
    plan = res.plan(0)
    assert (plan.batch, plan.pp, plan.micro_batch, plan.micro_batches) == (4096, 1, 4096, 1)
    # and it serves more tokens per second than a batch of 1,024 on the same chip
    at_1024 = evaluate_scenario(adhoc_scenario(model="Llama-3-8B", batch=1024, prompt_len=128, output_len=128,
                                               weight_bits=8, act_bits=8, kv_bits=8, max_chips=1),
                                _hw(load_catalog_design("B200")), CAL)
    assert res.metrics["throughput"][0] > at_1024.metrics["throughput"][0]


@pytest.mark.parametrize("model,prompt,output", [("Llama-3-8B", 1024, 1024), ("Llama-3-70B", 512, 128),
                                                 ("Mixtral-8x7B", 1000, 1000)])
def test_raising_max_batch_never_lowers_best_throughput(model, prompt, output):
    """Doubling the allowed batch lets each design go further along the same knots and chords, so the best plan
    never gets worse, on every catalog design (FP8); maxima between knots are covered by the random-design
    test below."""
    from dse.catalog import list_catalog

    designs = [load_catalog_design(n) for n in list_catalog()]
    hw = HwView.from_arrays(DesignArrays.from_designs(designs, TECH))
    base = adhoc_scenario(model=model, prompt_len=prompt, output_len=output, weight_bits=8, act_bits=8, kv_bits=8)
    prev = None
    for top in (64, 128, 256, 512, 1024, 2048, 4096):
        res = evaluate_scenario(_with_max_batch(base, top), hw, CAL)
        thr = np.where(res.feasible, res.metrics["throughput"], 0.0)
        if prev is not None:
            assert np.all(thr >= prev * (1 - 1e-9)), (top, thr / np.maximum(prev, 1e-300))
        prev = thr
    assert np.any(res.metrics["batch"][res.feasible] > 1024)  # the uncapped ladder is used somewhere


def test_cnn_plans_by_growing_batch():
    sc = adhoc_scenario(model="ResNet-50", batch=16)
    assert [p.batch for p in cnn_plans(sc)] == [16]


def test_chosen_plan_matches_the_metrics():
    designs = [load_catalog_design(n) for n in ("H100-SXM", "Groq-LPU", "TPU-v5e")]
    hw = HwView.from_arrays(DesignArrays.from_designs(designs, TECH))
    for name in ("datacenter_llm", "local_llm", "vision_cnn"):
        res = evaluate_scenario(load_scenario(name), hw, CAL)
        for i in range(len(designs)):
            p = res.plan(i)
            if p is None:
                assert not res.feasible[i]
                continue
            for k in ("tp", "pp", "dp", "ep", "batch"):
                assert getattr(p, k) == res.metrics[k][i], (name, k)
            assert res.metrics["chips_used"][i] == p.dp * p.replica_chips


def test_breakdown_decode_step_is_the_scored_plans_micro_batch():
    # Groq-LPU serving Llama-3-8B at a fixed batch of 12: the mapping runs 6 micro-batches of 2 over
    # 8 pipeline stages; the old breakdown re-derived the micro-batch as batch // pp = 1
    groq = load_catalog_design("Groq-LPU")
    sc = adhoc_scenario(model="Llama-3-8B", batch=12, prompt_len=512, output_len=128)
    hw = _hw(groq)
    res = evaluate_scenario(sc, hw, CAL)
    plan = res.plan(0)
    assert plan is not None and plan.micro_batch != max(plan.batch // plan.pp, 1)
    info = operator_breakdown(groq, sc, phase="decode")
    assert (info["micro_batch"], info["batch"], info["pp"]) == (plan.micro_batch, 12, plan.pp)
    # TPOT = the decode step at the micro-batch + (pp - 1) stage hops of its activations
    shape = load_model_shape("Llama-3-8B")
    hop = collective_time("sendrecv", np.array([plan.micro_batch * shape.hidden * 2.0]), np.array([2.0]),
                          hw, CAL)[0, 0]
    decode_ms = res.metrics["tpot_ms"][0] - (plan.pp - 1) * hop * 1e3
    assert info["phase_time_ms"]["decode"] == pytest.approx(decode_ms, rel=1e-9)


# ---- the best batch is filled to what a design holds: chords between knots ----------------------------

def _random_hw(n: int, seed: int) -> HwView:
    """`n` random designs of search_spaces/full.yaml (the cliff hunter's sampler)."""
    import importlib.util
    from pathlib import Path

    from dse.study.space import load_space

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("cliff_hunter", root / "benchmarks" / "cliff_hunter.py")
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)
    cols, _ = h.sample(load_space(root / "search_spaces" / "full.yaml"), n, seed=seed)
    return HwView.from_arrays(DesignArrays.from_columns(cols, TECH))


def _throughput(res) -> np.ndarray:
    return np.where(res.feasible, res.metrics["throughput"], 0.0)


_RANGE_CASES = [  # (model, prompt, output, bits, the scenario's SLOs)
    ("Llama-3-8B", 1024, 512, 8, {}),
    ("Mixtral-8x7B", 1000, 1000, 8, {}),
    ("Llama-3-70B", 512, 256, 16, {"tpot_ms": 60.0}),
    ("Llama-3-8B", 2048, 128, 16, {"ttft_ms": 4000.0}),
]


def _range_scenario(model, prompt, output, bits, slo, max_batch):
    sc = adhoc_scenario(model=model, prompt_len=prompt, output_len=output, weight_bits=bits, act_bits=bits,
                        kv_bits=bits)
    data = sc.model_dump()
    data.update(batch={"max": int(max_batch)}, goal="throughput", **slo)
    return Scenario.model_validate(data)


@pytest.mark.parametrize("case", range(len(_RANGE_CASES)))
def test_random_designs_larger_max_batch_never_lowers_best_throughput(case):
    """Random designs × maxima that are mostly not powers of two (the old ladder lost up to 5.75 % from
    1,500 to 2,048 on Mixtral FP8 / H200, where the design holds ~1,800 sequences): best throughput never
    falls as the max grows, and some design does gain from a max between knots."""
    hw = _random_hw(120, seed=21 + case)
    rng = np.random.default_rng(case)
    tops = np.unique(np.concatenate([[1, 3, 100, 1500, 1800, 2048], rng.integers(2, 4000, 6)]))
    prev, gained = None, False
    for top in tops:
        thr = _throughput(evaluate_scenario(_range_scenario(*_RANGE_CASES[case], top), hw, CAL))
        if prev is not None:
            assert np.all(thr >= prev * (1 - 1e-9)), (top, np.min(thr / np.maximum(prev, 1e-300)))
            gained |= bool(np.any(thr > prev * (1 + 1e-6)))
        prev = thr
    assert gained and np.count_nonzero(prev) > 10


@pytest.mark.parametrize("case", range(len(_RANGE_CASES)))
def test_random_designs_more_memory_capacity_never_lowers_best_throughput(case):
    """The same designs with 0.5× … 2× their off-chip capacity in ~6 % steps (bandwidth unchanged): throughput
    never falls, and it grows at some design. On an unchanged parallel plan capacity buys sequences, not speed,
    and only as many as the added bytes hold (Δ = Δmemory / KV per sequence, plus one chord step); a sequence
    never raises the throughput per sequence (TPOT and prefill grow with the batch), so throughput grows at
    most by (B + Δ) / B from batch B (the old ladder jumped a knot, e.g. 1,024 -> 2,048, once it fit)."""
    from dataclasses import replace

    from dse.evaluate.steps import Builders

    hw = _random_hw(120, seed=41 + case)
    sc = _range_scenario(*_RANGE_CASES[case], 4096)
    shape, prec = load_model_shape(sc.model), sc.precision_spec()
    context = sc.prompt_len + sc.output_len
    prev, grew = None, False
    for f in np.geomspace(0.5, 2.0, 25):
        res = evaluate_scenario(sc, replace(hw, mem_bytes=hw.mem_bytes * f), CAL)
        thr = _throughput(res)
        if prev is not None:
            p_res, p_thr, p_f = prev
            assert np.all(thr >= p_thr * (1 - 1e-9)), (f, np.min(thr / np.maximum(p_thr, 1e-300)))
            grew |= bool(np.any(thr > p_thr * (1 + 1e-6)))
            same = p_res.feasible & res.feasible
            for k in ("tp", "pp", "ep"):
                same &= p_res.plans[k] == res.plans[k]
            b0 = p_res.metrics["batch"][same]
            tp, pp, ep = (res.plans[k][same] for k in ("tp", "pp", "ep"))
            kv_seq = np.array([Builders.kv_bytes(shape, 1, context, int(t), prec) * -(-shape.layers // int(p))
                               / shape.layers / int(e) for t, p, e in zip(tp, pp, ep)])
            # the sequences the added bytes hold, plus one chord step (one sequence per micro-batch)
            more = hw.mem_bytes[same] * (f - p_f) / kv_seq + res.plans["micro_batches"][same]
            ratio = thr[same] / p_thr[same] / ((b0 + more) / b0)
            assert np.all(ratio <= 1 + 1e-9), (f, np.max(ratio))
        prev = (res, thr, f)
    assert grew


def test_capacity_limited_batch_by_hand():
    """Mixtral-8x7B FP8 on one H200 replica (tp 1, pp 1, ep 2), 1,000 + 1,000 tokens, max 4,096: the batch is
    what the stack's KV room holds (TensorRT-LLM: 0.9 of the memory left after the weights, calibration.yaml
    kv_memory_fraction), 0.9 (memory − weights per chip) / KV per sequence per chip, KV = 32 layers × 8 KV heads ×
    128 × 2 (K, V) × 1 byte × 2,000 tokens / ep 2 = 65.536 MB; and its TPOT is the chord between the knots
    of 1,024 and 2,048 (timed as fixed batches on a copy with room for both)."""
    from dataclasses import replace

    from dse.evaluate.mapping import map_llm
    from dse.evaluate.steps import llm_steps

    shape = load_model_shape("Mixtral-8x7B")
    sc = _range_scenario("Mixtral-8x7B", 1000, 1000, 8, {}, 4096)
    prec = sc.precision_spec()
    hw = _hw(load_catalog_design("H200"))
    res = map_llm(sc, shape, prec, hw, CAL, force_tp=1, force_pp=1, force_ep=2)
    w = llm_steps(sc, shape, prec, 1, 2, 1024).decode.weight_bytes_per_chip
    kv_seq = 32 * 8 * 128 * 2 * 1 * 2000 / 2
    assert CAL.kv_memory_of == "free" and CAL.kv_memory_fraction == 0.9
    want = int(0.9 * (hw.mem_bytes[0] - w) // kv_seq)
    assert 1024 < want < 2048
    assert res.plan(0).batch == want and res.plan(0).micro_batches == 1
    big = replace(hw, mem_bytes=hw.mem_bytes * 4)
    knots = []
    for b in (1024, 2048):
        fixed = adhoc_scenario(model="Mixtral-8x7B", batch=b, prompt_len=1000, output_len=1000, weight_bits=8,
                               act_bits=8, kv_bits=8)
        knots.append(map_llm(fixed, shape, prec, big, CAL, force_tp=1, force_pp=1, force_ep=2))
    th = (want - 1024) / 1024
    for k in ("tpot_ms", "ttft_ms"):
        lo, hi = knots[0].metrics[k][0], knots[1].metrics[k][0]
        assert res.metrics[k][0] == pytest.approx(lo + th * (hi - lo), rel=1e-12)
    # and the range picks it over the knot below: more sequences per step at the chord's time
    assert res.metrics["throughput"][0] > knots[0].metrics["throughput"][0]
