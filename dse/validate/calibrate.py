"""`dse calibrate`: fit each software class's constants on the TRAIN split (robust least squares on log error).

Objective of a class: sum over its training rows of huber(ln(predicted / measured)) (squared within
±25 %, linear beyond; see HUBER_DELTA). A row the model cannot
run (NaN) costs a fixed 25 (an error of e^5). Parameters are searched in a bounded space: each constant
p in [lo, hi] (physical ranges below) maps to u = logit((p - lo) / (hi - lo)), so the unconstrained
Nelder-Mead (written here in numpy, deterministic: fixed initial simplex, no randomness) never leaves
the range. Only constants that change at least one training prediction are fitted; the others keep
their value (e.g. `sram_eff_max`: no measurement isolates on-chip SRAM bandwidth).
Rows marked `loose` (the source is inconsistent or approximate, e.g. TensorRT-LLM v0.5's first FP8 kernels,
whose batch-1 H100 rows contradict the same table's FP16 and later FP8 rows) are validated but never
fitted: a constant must not bend to absorb what one software release or one uncertain setup did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dse.model.calibration import CALIBRATION_FILE, Calibration, calibration_classes, clear_cache, derived_classes, unknown_class_message

# mem_eff_max of the kernel class, fitted on Vidur's isolated decode GEMVs (train split, 2026-12-01): the
# fraction of the memory technology's stream rate a streaming kernel reaches timed alone, no stack around it
MEM_EFF_KERNEL = 0.9309
# Physical ranges of each constant (bounds of the fit). A fit that ends at a bound means a mechanism is
# missing from the model: `dse calibrate` marks it "AT THE FIT BOUND" in the YAML.
BOUNDS: dict[str, tuple[float, float]] = {
    "compute_eff_max": (0.30, 1.00),      # fraction of the padded array peak a GEMM sustains
    "mem_eff_max": (0.50, 1.00),          # fraction of the technology's sustained stream rate the kernels reach
    # DRAM ramp-up + tail of a streaming kernel. Vidur's GEMVs (llm_perf_models.md §3.3) fit t = t0 + B / BW:
    # H100 QKV 100.7 MB in 38 µs and gate+up 180.4 MB in 64 µs give 3.07 TB/s and t0 = 5.2 µs; A100 (65 /
    # 116 µs) gives 1.56 TB/s and t0 = 0.6 µs
    "mem_ramp_us": (0.0, 10.0),
    "sram_eff_max": (0.30, 1.00),
    "step_overhead_us": (0.0, 1000.0),    # per engine step: graph launch, scheduling, sampling
    # per CNN / vision forward pass (graph launch + the input's copy to the device): at most the whole MLPerf
    # v4.1 SingleStream ResNet-50 query on speedAI240 Slim, 120 µs with the host and the chip's own work
    # (measurements_more.md 5.13)
    "inference_launch_us": (0.0, 120.0),
    "kernel_gap_us": (0.5, 5.0),          # device-side kernel boundary: CUDA-graph gaps ~1-2 µs, grid drain (the DRAM ramp is mem_ramp_us)
    "launch_us": (0.0, 60.0),             # host launch interval (LLMCompass A100 eager constants: 12-45 µs)
    "collective_floor_us": (2.0, 100.0),  # NCCL small-message floor (Vidur: 37-62 µs); >= one kernel launch + flag sync
    "link_eff": (0.50, 0.90),             # NCCL bus bandwidth: 58 % of NVLink3 (8xA100) to 81 % of NVLink4 (8xH100), Vidur
    "conv_eff": (0.10, 1.00),
    "lowp_eff": (0.30, 1.00),             # 8/4-bit GEMM efficiency relative to 16-bit
    "comm_overlap": (0.0, 1.0),           # share of a collective's bandwidth time hidden under compute
    "knee_p": (1.0, 16.0),                # matrix kernels near the knee: 1 = loads and math never overlap, → ∞ = max()
}
# Narrower physical ranges per software stack: a graph-launched, fused stack pays a GPU-side kernel
# boundary (launch gap + ramp/tail, 0.5-8 µs), not a host launch; an eager stack pays the host launch.
CLASS_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    # C++ runtimes launch one kernel per cudaLaunchKernel call: 2-8 µs of host time each (NVIDIA
    # "Getting Started with CUDA Graphs", 2019: ~3.8 µs per short kernel launched back to back from a
    # stream); values above that are host work this model does not have, not launch cost
    # a stack's streaming kernels reach at most what the same kernels reach timed alone: tuned's mem_eff_max
    # stops at the kernel class's fit on Vidur's isolated GEMVs (MEM_EFF_KERNEL). Without the cap the fit
    # raised it to 0.986 (2026-12-01, once plugin_layers carried the unfused kernels' own cost) to speed up
    # the large-batch 2,048-token decode rows, and `graph`, which inherits it, ran Gaudi 2 faster than H100
    "tuned": {"launch_us": (2.0, 8.0), "step_overhead_us": (0.0, 500.0), "mem_eff_max": (0.50, MEM_EFF_KERNEL)},
    "generic": {"launch_us": (5.0, 60.0)},
    # vLLM V0's host work per engine step (scheduler, input tensors, sampler, detokenizer in Python, synchronous with
    # the GPU step): the vLLM v0.6.0 release blog (2024-09-05) found Llama-3-8B on one H100 spending 29 % of its
    # time in scheduling and input preparation and 33 % in the API server against 38 % in GPU execution, and its
    # multi-step scheduling + asynchronous output processing cut the time per output token up to 5x: up to ~4/5 of
    # a V0 step was host work, i.e. up to ~4x the GPU time of a ~5 ms batch-1 step: 20 ms. Its GEMVs stream no
    # faster than isolated kernels (as tuned: MEM_EFF_KERNEL)
    "vllm": {"step_overhead_us": (0.0, 20000.0), "mem_eff_max": (0.50, MEM_EFF_KERNEL)},
    "kernel": {"kernel_gap_us": (0.0, 5.0)},
}
# constants a class does not fit (its measurements cannot see them)
# `comm_overlap` of tuned / generic: their measured stacks (TensorRT-LLM 0.5-0.12 and FasterTransformer
# without userbuffers; eager PyTorch) run each collective between the dependent kernels on one stream, so
# the overlap is 0 by construction (a fit only drives it onto its lower bound)
# `knee_p` is a property of tiled GEMM kernels, not of a stack: every class keeps the sourced value (the
# LLMCompass A100 GEMMs at M = 64-256); fitting it per class would let it absorb stack overheads
# `mem_ramp_us` is a property of the memory system and of how a GEMV kernel fills it, not of a stack: the
# kernel class fits it on Vidur's isolated GEMVs (the only rows that separate it from per-step and per-kernel
# stack costs) and tuned / generic keep that value; fitted per stack it absorbed the stacks' host work
# (as the byte-sized half-rate point it replaced did: tuned 29 MB streamed a 16.8 MB FP8 matrix at 37 %).
# `kernel_gap_us` of the kernel class is 0: one kernel timed alone has no boundary to a neighbour (its own
# ramp and tail are `mem_ramp_us`).
# `inference_launch_us`: the fitted rows of a CNN run offline at batches of ~1,000+ images, where one launch is
# < 0.1 % of the step (a fit would only trade it against conv_eff), and every batch-1 CNN row is `loose`: the
# constant keeps its sourced value (calibration.yaml) in every class.
NOT_FITTED: dict[str, tuple[str, ...]] = {"kernel": ("launch_us", "step_overhead_us", "knee_p", "kernel_gap_us",
                                                     "inference_launch_us"),
                                          "tuned": ("comm_overlap", "knee_p", "mem_ramp_us", "inference_launch_us"),
                                          # generic: no training row isolates a device-side kernel gap (its GEMMs are
                                          # timed one call at a time: launch + kernel, predict._predict_gemm; the GPT-3
                                          # layer prefill's kernels run for ms): the fit only pushed it onto a bound
                                          # and no row separates NCCL's small-message floor from the NVLink hop
                                          # latency, which technology.yaml derives from the same Vidur 2 KB NCCL
                                          # all-reduces (37 µs / 14 ring steps on 8xH100, 62 / 14 on 8xA100): the
                                          # floor on top is one kernel launch + flag handshake; fitted, it only ran
                                          # onto its 2 µs bound against LLMCompass's 4xA100 8-byte all-reduce
                                          "generic": ("comm_overlap", "knee_p", "mem_ramp_us", "inference_launch_us",
                                                      "kernel_gap_us", "collective_floor_us"),
                                          # vllm: the decode step is one graph replay (launch_us 0, a device-side
                                          # kernel_gap_us as graph's); its training rows are batch-1 decodes of 1,024
                                          # tokens after one 1,024-token prefill: they see the streaming rate, the
                                          # per-step host work and the small-message all-reduce floor, not the compute
                                          # efficiencies nor the links' bandwidth (16 KB messages), nor a per-kernel gap
                                          # apart from the per-step work; those keep their sourced values. The
                                          # small-message all-reduce floor keeps the NCCL/torch.distributed figure
                                          # (Vidur 2 KB, 37 µs): its one TP8 training row (Mixtral) cannot tell it from
                                          # the per-step work (fitted with them, 2026-12-02: floor 75 µs, mem_eff_max on
                                          # its 0.5 bound, the held-out Llama-3-70B TP8 row +37 %)
                                          "vllm": ("comm_overlap", "knee_p", "mem_ramp_us", "inference_launch_us",
                                                   "launch_us", "kernel_gap_us", "compute_eff_max", "lowp_eff",
                                                   "conv_eff", "link_eff", "collective_floor_us")}
# sram_eff_max is not fitted: no measurement isolates on-chip SRAM bandwidth (GPU caches have no
# published bandwidth in the reference), and fitting it to GPU rows would mis-price SRAM-resident designs.
FIT_ORDER = tuple(k for k in BOUNDS if k != "sram_eff_max")
RAMP_US = 4.408  # µs: the kernel class fit of mem_ramp_us on Vidur's GEMVs (train split of the per-row rule, 2026-12-01) (t0 5.2 µs H100 / 0.6 µs A100 by two-point fits)
# Start of every fit: the sourced values of dse/model/data/calibration.yaml before any fit (each line's
# comment there keeps its source after `initial value:`). Starting from these, not from the file's current
# (fitted) values, makes `dse calibrate` idempotent: running it twice writes the same constants.
INITIAL: dict[str, dict[str, float]] = {
    'tuned': {'compute_eff_max': 0.9, 'mem_eff_max': 0.88, 'mem_ramp_us': RAMP_US, 'sram_eff_max': 0.85,
              'step_overhead_us': 50.0, 'inference_launch_us': 10.0, 'kernel_gap_us': 2.0, 'launch_us': 4.0, 'collective_floor_us': 10.0, 'link_eff': 0.8,
              'conv_eff': 0.55, 'lowp_eff': 0.6, 'comm_overlap': 0.0, 'knee_p': 2.0},
    'generic': {'compute_eff_max': 0.8, 'mem_eff_max': 0.82, 'mem_ramp_us': RAMP_US, 'sram_eff_max': 0.8,
                'step_overhead_us': 100.0, 'inference_launch_us': 50.0, 'kernel_gap_us': 2.0, 'launch_us': 28.5, 'collective_floor_us': 2.0,
                'link_eff': 0.7, 'conv_eff': 0.45, 'lowp_eff': 0.6, 'comm_overlap': 0.0, 'knee_p': 2.0},
    'vllm': {'compute_eff_max': 0.8, 'mem_eff_max': 0.88, 'mem_ramp_us': RAMP_US, 'sram_eff_max': 0.85,
             'step_overhead_us': 1000.0, 'inference_launch_us': 50.0, 'kernel_gap_us': 2.0, 'launch_us': 0.0,
             'collective_floor_us': 37.0, 'link_eff': 0.8, 'conv_eff': 0.45, 'lowp_eff': 0.6, 'comm_overlap': 0.0,
             'knee_p': 2.0},
    'kernel': {'compute_eff_max': 0.9, 'mem_eff_max': 0.88, 'mem_ramp_us': 3.0, 'sram_eff_max': 0.85,
               'step_overhead_us': 0.0, 'inference_launch_us': 0.0, 'kernel_gap_us': 0.0, 'launch_us': 0.0, 'collective_floor_us': 10.0, 'link_eff': 0.8,
               'conv_eff': 0.55, 'lowp_eff': 0.6, 'comm_overlap': 0.0, 'knee_p': 2.0},
}
NAN_COST = 25.0
# |u| a restart of the fit starts within: 3.0 is 4.7 % of the range from a bound (logistic(3) = 0.953)
U_RESTART = 3.0
# Robust fit (Huber 1964): log errors beyond ±25 % count linearly. The training rows come from many stacks
# and releases (e.g. TensorRT-LLM v0.5's first FP8 kernels at 128-token prompts run 30 % below every
# later FP8 row); least squares let two such rows set the per-step overhead of every tuned design.
HUBER_DELTA = math.log(1.25)
NOT_FITTED_REGIMES = ("power",)


def fit_rows(rows):
    """The rows a fit may use: not `loose`, not a regime that checks technology constants (power)."""
    return [m for m in rows if m.regime not in NOT_FITTED_REGIMES and not m.loose]


def bounds(cls: str, name: str) -> tuple[float, float]:
    """Fit range of constant `name` for software class `cls`."""
    return CLASS_BOUNDS.get(cls, {}).get(name, BOUNDS[name])


def _to_u(name: str, p: float, cls: str = "") -> float:
    lo, hi = bounds(cls, name)
    f = min(max((p - lo) / (hi - lo), 1e-4), 1 - 1e-4)
    return math.log(f / (1 - f))


def _from_u(name: str, u: float, cls: str = "") -> float:
    lo, hi = bounds(cls, name)
    # a constant the rows barely constrain can drift to u < -709, where exp(-u) overflows: its limit is lo
    return lo + (hi - lo) / (1.0 + math.exp(-u)) if u > -700.0 else lo + (hi - lo) * math.exp(u)


def nelder_mead(f, x0: np.ndarray, step: float = 0.6, max_evals: int = 400, tol: float = 1e-7):
    """Minimise f from x0 (standard coefficients 1, 2, 0.5, 0.5); deterministic. Returns (x, fx, evals)."""
    n = len(x0)
    simplex = [np.array(x0, float)] + [np.array(x0, float) + step * np.eye(n)[i] for i in range(n)]
    fs = [f(x) for x in simplex]
    evals = n + 1
    while evals < max_evals:
        order = np.argsort(fs, kind="stable")
        simplex = [simplex[i] for i in order]
        fs = [fs[i] for i in order]
        if abs(fs[-1] - fs[0]) <= tol * (1.0 + abs(fs[0])):
            break
        centroid = np.mean(simplex[:-1], axis=0)
        xr = centroid + (centroid - simplex[-1])
        fr = f(xr)
        evals += 1
        if fs[0] <= fr < fs[-2]:
            simplex[-1], fs[-1] = xr, fr
        elif fr < fs[0]:
            xe = centroid + 2.0 * (centroid - simplex[-1])
            fe = f(xe)
            evals += 1
            simplex[-1], fs[-1] = (xe, fe) if fe < fr else (xr, fr)
        else:
            xc = centroid + 0.5 * (simplex[-1] - centroid) if fr >= fs[-1] else centroid + 0.5 * (xr - centroid)
            fc = f(xc)
            evals += 1
            if fc < min(fr, fs[-1]):
                simplex[-1], fs[-1] = xc, fc
            else:  # shrink towards the best
                for i in range(1, n + 1):
                    simplex[i] = simplex[0] + 0.5 * (simplex[i] - simplex[0])
                    fs[i] = f(simplex[i])
                evals += n
    best = int(np.argmin(fs))
    return simplex[best], fs[best], evals


@dataclass
class FitResult:
    software_class: str
    n_train: int
    fitted: tuple[str, ...]
    before: Calibration
    after: Calibration
    loss_before: float
    loss_after: float
    evals: int


def _loss(rows, cal: Calibration, models) -> float:
    from dse.validate.predict import predict

    total = 0.0
    for m in rows:
        p = predict(m, cal, models)
        total += huber(math.log(p / m.value)) if (np.isfinite(p) and p > 0) else NAN_COST
    return total


def huber(r: float, delta: float = HUBER_DELTA) -> float:
    """Huber loss of a log error: squared inside ±delta, linear outside (a row no mechanism explains pulls
    the constants with a bounded force instead of dragging them to a bound)."""
    a = abs(r)
    return r * r if a <= delta else 2.0 * delta * a - delta * delta


def fit_class(name: str, start: Calibration, rows, models, max_evals: int = 600, restarts: int = 2) -> FitResult:
    """Fit the constants of class `name` on its training `rows`, starting from `start`."""
    base = start.model_dump()
    loss0 = _loss(rows, start, models)
    # which constants matter for these rows: a relative nudge changes the loss
    fitted = []
    for key in FIT_ORDER:
        if key in NOT_FITTED.get(name, ()):
            continue
        for fac in (0.8, 1.25):
            trial = dict(base)
            lo, hi = bounds(name, key)
            v = base[key] * fac if base[key] > 0 else (hi - lo) * 0.1
            trial[key] = min(max(v, lo + 1e-6), hi - 1e-6)
            if abs(_loss(rows, Calibration(**trial), models) - loss0) > 1e-9:
                fitted.append(key)
                break

    def cal_of(u: np.ndarray) -> Calibration:
        d = dict(base)
        for key, val in zip(fitted, u):
            d[key] = round(_from_u(key, float(val), name), 6)
        return Calibration(**d)

    def f(u):
        return _loss(rows, cal_of(u), models)

    x = np.array([_to_u(k, base[k], name) for k in fitted])
    fx, evals = loss0, 0
    if fitted:
        for r in range(restarts + 1):  # restarts from the best point escape a collapsed simplex
            # a restart starts inside U_RESTART: a constant the last run left near a bound sits where the
            # logit is flat (u << 0), and a simplex of fixed step in u cannot bring it back (a bound that is
            # only the optimizer's trap, not the data's); the best point of all runs is kept
            x0 = x if r == 0 else np.clip(x, -U_RESTART, U_RESTART)
            xr, fr, e = nelder_mead(f, x0, max_evals=max_evals)
            evals += e
            if fr <= fx or r == 0:
                x, fx = xr, fr
    after = cal_of(x) if fitted else start
    return FitResult(name, len(rows), tuple(fitted), start, after, loss0, _loss(rows, after, models), evals)


def calibrate(classes: list[str] | None = None, max_evals: int = 600, restarts: int = 2,
              path: Path | None = None) -> dict[str, FitResult]:
    """Fit every class in `classes` (default: all classes with training rows) on the train split."""
    from dse.validate.measurements import load_measurements, select

    data = load_measurements(path)
    current = calibration_classes()
    # power rows check the energy model (technology constants), not a software stack's efficiencies
    train = fit_rows(m for m, _ in select("train", path))
    # a derived class (e.g. `graph` inherits `tuned`) is not fitted: its rows check the parent's constants
    names = classes or sorted({m.software_class for m in train} - derived_classes())
    out = {}
    for name in names:
        rows = [m for m in train if m.software_class == name]
        problem = unknown_class_message(name)
        if problem:
            from dse.errors import DseUserError

            raise DseUserError(problem)
        if not rows:
            continue
        start = current[name].model_copy(update=INITIAL.get(name, {}))
        out[name] = fit_class(name, start, rows, data.models, max_evals=max_evals, restarts=restarts)
    return out


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def write_calibration(results: dict[str, FitResult], file: Path = CALIBRATION_FILE) -> None:
    """Rewrite the fitted values in the calibration YAML in place, keeping every other line, and put
    a provenance note on each fitted line: '(fitted by dse calibrate on N training points; ...)'."""
    import re

    lines = file.read_text(encoding="utf-8").splitlines()
    cls = None
    for i, line in enumerate(lines):
        mc = re.match(r"^  ([A-Za-z0-9_]+):", line)
        if mc:
            cls = mc.group(1)
            continue
        mf = re.match(r"^(    )([a-z_]+):(\s*)([^#\s]+)(\s*)(#.*)?$", line)
        if not mf or cls not in results:
            continue
        key = mf.group(2)
        res = results[cls]
        if key not in res.fitted:
            # not fitted (no training row is sensitive to it): the fit ran with its sourced initial value,
            # so the file must hold that value too, not a stale fit of earlier physics
            init = INITIAL.get(cls, {}).get(key)
            comment = (mf.group(6) or "").lstrip("# ").strip()
            m_init = re.search(r"initial value: (.*)$", comment)
            if init is not None and ("fitted by dse calibrate" in comment or "not fitted" in comment) and m_init:
                why = ("by construction, see calibrate.NOT_FITTED" if key in NOT_FITTED.get(cls, ())
                       else f"no training row of {res.n_train} is sensitive to it")
                lines[i] = f"    {key}: {_fmt(init)}  # not fitted ({why}); initial value: {m_init.group(1)}"
            continue
        new = _fmt(getattr(res.after, key))
        comment = (mf.group(6) or "").lstrip("# ").strip()
        comment = re.sub(r"^fitted by dse calibrate on \d+ training points \(was [^)]*\)(; AT THE FIT BOUND)?; initial value: ",
                         "", comment)
        comment = re.sub(r"^initial value: ", "", comment)
        lo, hi = bounds(cls, key)
        val = getattr(res.after, key)
        at_bound = min(abs(val - lo), abs(val - hi)) <= 1e-3 * (hi - lo)
        note = (f"fitted by dse calibrate on {res.n_train} training points (was {_fmt(getattr(res.before, key))})"
                f"{'; AT THE FIT BOUND' if at_bound else ''}; initial value: ")
        lines[i] = f"    {key}: {new}  # {note}{comment}"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    clear_cache()
