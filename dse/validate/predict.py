"""The model's prediction for each published measurement, recomputed from dse.model on every call.

End-to-end rows run the real mapping (`dse.evaluate.mapping.map_llm` / `map_cnn`) on the catalog chip with
the measured chip count, batch and (when published) tp / pp forced; kernel rows call the operator
model (`dse.model.perf.op_times`, `collective_time`) on a one-operator table. The helpers below only
choose WHAT to ask the model; every time in them comes from dse.model.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace

import numpy as np

from dse.catalog import load_catalog_design
from dse.errors import DseUserError
from dse.evaluate.mapping import map_cnn, map_llm, residency
from dse.evaluate.steps import Builders
from dse.model.arrays import DesignArrays
from dse.model.calibration import Calibration
from dse.model.hardware import Design
from dse.model.perf import HwView, collective_time, op_times
from dse.evaluate.throttle import evaluate_capped, used_chip_power_w
from dse.model.power import chip_power
from dse.model.technology import default_technology
from dse.validate.measurements import Measurement
from dse.workloads.modelfile import load_model_shape
from dse.workloads.ops import OpBuilder
from dse.workloads.precision import parse_precision
from dse.workloads.scenarios import BatchRange


@lru_cache(maxsize=64)
def hw_view(hardware: str, num_chips: int, overrides: tuple[tuple[str, object], ...] = ()):
    """HwView of catalog design `hardware` with `num_chips` chips and dotted-field overrides."""

    flat = load_catalog_design(hardware).to_flat()
    flat["system.num_chips"] = int(num_chips)
    for key, val in overrides:
        if key not in flat:

            raise DseUserError(f"override {key!r} is not a design field of {hardware}")
        flat[key] = val
    design = Design.from_flat(flat)

    arr = DesignArrays.from_designs([design], default_technology())
    hw = HwView.from_arrays(arr)
    power = chip_power(arr)
    hw.static_w = np.asarray(power.static_w, float)  # as dse.evaluate does
    hw.leakage_w = np.asarray(power.leakage_w, float)  # the part of it a throttled clock does not lower
    # GPUs (core_style simt) launch kernels; systolic chips run a compiled schedule (a no-op check that
    # HwView.from_arrays derived the flag from the design)
    hw.dataflow = np.array([design.chip.core_style != "simt"])
    return hw


def _hw(m: Measurement):
    return hw_view(m.hardware, m.num_chips, tuple(sorted(m.overrides.items())))


def model_shape(name: str, extra: dict | None = None):
    """A built-in model shape, or one defined in the measurement file's `models:`."""

    if extra and name in extra:
        return extra[name]
    return load_model_shape(name)


def _precision(name: str):

    return parse_precision(name)


def _batch_policy(m: Measurement):

    return m.batch if m.batch is not None else BatchRange(min=1, max=int(m.max_batch))


def llm_scenario(m: Measurement) -> SimpleNamespace:
    """What `map_llm` reads of a scenario: lengths, batch policy, chip limit; no SLOs (the measured
    setup is given, not searched), goal = throughput for throughput metrics, else latency.

    A fixed batch b is asked as "best batch <= b" with goal throughput and the answer is checked to be
    b (see `_predict_llm`): map_llm's early stop skips a fixed batch when its smaller micro-batches were
    not candidates (fixed batch 52 at pp = 1 is reported infeasible); throughput grows with the batch
    in the static-batching model, so the search returns b whenever b fits."""

    thr = m.metric in ("tokens_per_s_per_chip", "offline_tokens_per_s_per_chip")
    batch = _batch_policy(m)
    if m.batch is not None and m.batch > 1 and (m.pp or 1) == 1:
        batch, thr = BatchRange(min=1, max=int(m.batch)), True
    return SimpleNamespace(name=m.id, max_chips=m.num_chips, goal="throughput" if thr else "latency",
                           tpot_ms=None, ttft_ms=None, slo=None, prompt_len=m.prompt_len,
                           output_len=m.output_len, batch=batch)


def _run_llm(m: Measurement, cal: Calibration, models):
    """The measured LLM setup mapped at the clock the design's `tdp_w` cap allows (as `dse evaluate` runs
    it, `dse.evaluate.throttle.evaluate_capped`): (mapping result, its metrics as floats), or None when
    the setup does not run or the measured batch does not fit (capacity)."""
    shape, prec = model_shape(m.model, models), _precision(m.precision)
    res, _ = evaluate_capped(lambda hw: map_llm(llm_scenario(m), shape, prec, hw, cal, Builders, force_tp=m.tp,
                                                force_pp=m.pp, force_ep=m.ep), _hw(m))
    if not res.feasible[0]:
        return None
    g = {k: float(v[0]) for k, v in res.metrics.items() if k != "weights"}
    return (res, g) if _ran_measured_batch(m, g["batch"]) else None


def _ran_measured_batch(m: Measurement, batch: float) -> bool:
    """False when the measurement fixes a batch and the mapping ran another (the measured one does not fit)."""
    return m.batch is None or int(round(batch)) == m.batch


def _predict_llm(m: Measurement, cal: Calibration, models) -> float:

    run = _run_llm(m, cal, models)
    if run is None:
        return math.nan
    g = run[1]
    if m.metric == "ttft_ms":
        return g["ttft_ms"]
    if m.metric == "tpot_ms":
        return g["tpot_ms"]
    if m.metric == "decode_tokens_per_s":
        return 1e3 / g["tpot_ms"]
    if m.metric == "e2e_latency_ms":
        return g["ttft_ms"] + m.output_len * g["tpot_ms"]
    # throughput per chip of the chips the measurement used
    return g["tokens_per_s"] / m.num_chips


def _predict_power(m: Measurement, cal: Calibration, models) -> float:
    """Average power per chip over the measured LLM run (prefill and decode): the mapping's energy per
    token (dynamic energy of its steps + static power over their time) times the tokens/s of one chip.
    A design's `tdp_w` cap (or a `chip.tdp_w` override, e.g. a MaxQ power limit) lowers the clock until
    the chip meets it, as `dse evaluate` does (`_run_llm`)."""

    run = _run_llm(m, cal, models)
    return math.nan if run is None else float(used_chip_power_w(run[0])[0])


def _predict_layer(m: Measurement, cal: Calibration, models) -> float:
    """One transformer layer on one chip of the tp group (the layer's operators incl. its all-reduces),
    with weights / KV streamed or resident by the mapping's residency rule for the whole model.
    layer_prefill: batch x prompt_len tokens; layer_decode: one token per sequence attending
    prompt_len cached positions (the KV length of the measured step)."""

    shape = model_shape(m.model, models)
    prec = _precision(m.precision)
    tp, b = m.tp or 1, int(m.batch or 1)
    if m.metric == "layer_prefill_ms":
        step = Builders.llm(shape, "prefill", b, m.prompt_len, m.prompt_len, tp, prec)
    else:
        step = Builders.llm(shape, "decode", b, 1, m.prompt_len + 1, tp, prec)
    hw = _hw(m)
    kv = Builders.kv_bytes(shape, b, m.prompt_len + m.output_len, tp, prec)
    wres, kres, _, resident = residency(step.weight_bytes_per_chip, kv, step.act_bytes_per_chip,
                                        hw.sram_bytes, hw.mem_bytes, hw.sram_cache)
    ops = step.ops.select(step.ops.layer)
    ops = ops.replace(count=np.ones(len(ops)))
    t = op_times(ops, hw, cal, wres, kres, resident)
    return float(t.total[0].sum()) * 1e3


def cnn_scenario(m: Measurement) -> SimpleNamespace:
    """What `map_cnn` reads of a scenario: the batch policy and chip limit, no SLO; goal = latency for a
    latency metric (the measured batch is then fixed: the mapping times exactly that batch)."""
    goal = "latency" if m.lower_is_better else "throughput"
    return SimpleNamespace(name=m.id, max_chips=m.num_chips, latency_ms=None, slo=None, goal=goal,
                           batch=_batch_policy(m))


def _predict_cnn(m: Measurement, cal: Calibration, models) -> float:
    """Images/s per chip at the best batch (offline), or the time of one forward pass of the measured
    batch on one chip (`cnn_latency_ms`: data parallel over chips never shortens one batch)."""
    shape, prec = model_shape(m.model, models), _precision(m.precision)
    res, _ = evaluate_capped(lambda hw: map_cnn(cnn_scenario(m), shape, prec, hw, cal, Builders), _hw(m))
    if not res.feasible[0]:
        return math.nan
    if m.metric == "cnn_latency_ms":
        ok = _ran_measured_batch(m, float(res.metrics["batch"][0]))
        return float(res.metrics["latency_ms"][0]) if ok else math.nan
    return float(res.metrics["images_per_s"][0]) / m.num_chips


def _predict_gemm(m: Measurement, cal: Calibration, models) -> float:
    """One GEMM: activations (m x k) times a weight matrix (k x n) read from off-chip memory, timed alone, one
    call at a time: the host's launch and the kernel follow one another (nothing queued behind the call to
    hide the launch under), so the time is the stack's `launch_us` plus the kernel's device time."""

    b = OpBuilder(_precision(m.precision))
    b.gemm("gemm", m.m, m.k, m.n)
    off = np.zeros(1, bool)
    device = cal.model_copy(update={"launch_us": 0.0, "kernel_gap_us": 0.0})
    t = float(op_times(b.table(), _hw(m), device, off, off, np.zeros(1)).total[0, 0]) + cal.launch_us * 1e-6
    if m.metric == "gemm_tflops":
        return 2.0 * m.m * m.k * m.n / t / 1e12
    return t * 1e3


def _predict_collective(m: Measurement, cal: Calibration, models) -> float:

    t = collective_time("allreduce", np.array([m.message_bytes]), np.array([float(m.num_chips)]), _hw(m), cal)
    return float(t[0, 0]) * 1e6


_KIND = {"llm": _predict_llm, "power": _predict_power, "layer": _predict_layer, "cnn": _predict_cnn, "gemm": _predict_gemm,
         "collective": _predict_collective}


#: measurement kinds that time one kernel or one layer alone, in a loop (LLMCompass, Vidur): no engine step around
#: it (no request scheduling, no sampling), so the stack's per-step cost is not paid
LOOPED_KINDS = frozenset({"gemm", "layer"})


def predict(m: Measurement, cal: Calibration, models: dict | None = None) -> float:
    """The model's value of `m.metric` for the measured setup, in `m.unit` (NaN if it cannot run)."""
    if m.kind in LOOPED_KINDS and cal.step_overhead_us:
        cal = cal.model_copy(update={"step_overhead_us": 0.0})
    return float(_KIND[m.kind](m, cal.for_stack(m.stack), models or {}))
