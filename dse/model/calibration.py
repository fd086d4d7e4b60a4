"""Efficiency constants of the performance model, per software class, loaded from data/calibration.yaml."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from dse.config import load_data_yaml, suggest
from dse.errors import DseUserError

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.yaml"


class Calibration(BaseModel):
    """One software stack: how close to the hardware roofline its kernels get and what it pays per
    step, per kernel and per collective (physics v2: overheads belong to the stack, DESIGN.md §5.1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    compute_eff_max: float = Field(gt=0, le=1)      # fraction of the padded array peak a large GEMM sustains
    # fraction of the memory technology's sustained stream rate (technology `stream_efficiency`) the
    # stack's kernels reach on a long read
    mem_eff_max: float = Field(gt=0, le=1)
    # time a streaming kernel spends below that rate: DRAM ramp-up (first requests in flight, CTAs still
    # launching) and the tail (last wave draining). A time, not a byte count: a kernel streaming B bytes
    # takes B / rate + mem_ramp_us (Vidur's GEMVs, llm_perf_models.md §3.3: t = t0 + B / BW)
    mem_ramp_us: float = Field(0.0, ge=0)
    sram_eff_max: float = Field(gt=0, le=1)
    # per forward step (one decode step / one prefill chunk / one CNN batch): host scheduling, graph or
    # program launch, sampling; paid once per step on every chip style
    step_overhead_us: float = Field(ge=0)
    # per forward pass of a stateless model (a CNN / vision batch: one MLPerf query or one framework call):
    # the runtime enqueues one compiled graph and copies the batch's input to the device. It replaces
    # `step_overhead_us` on such steps: an LLM engine step's scheduling of in-flight sequences, KV-block
    # bookkeeping and sampling has no counterpart in a CNN inference (see `for_phase`)
    inference_launch_us: float = Field(0.0, ge=0)
    # per kernel that stays unfused, on a dynamically scheduled chip (GPU): the device-side boundary
    # (grid drain, launch gap; a streaming kernel's DRAM ramp is mem_ramp_us), paid even inside a CUDA graph. Statically scheduled chips compile
    # the step into one program and pay their array fill/drain per operator (perf.fill_time_s) instead.
    kernel_gap_us: float = Field(ge=0)
    # host-side interval between two kernel launches when the stack launches kernels one by one (no graph
    # capture): the GPU runs ahead of the host, so a kernel costs max(its time + gap, launch_us).
    # 0 = the step is one captured graph / persistent kernel (its launch is in step_overhead_us).
    launch_us: float = Field(0.0, ge=0)
    # the stack fuses norms, activations, residual adds and rotary embedding into the neighbouring GEMM
    # or attention kernel (no launch, no activation round trip through memory)
    fuse_epilogues: bool = True
    # the stack builds transformer layers from opaque runtime plugins that its engine compiler cannot fuse
    # across (TensorRT-LLM 0.5-0.12: GPT-attention, GEMM, RMSNorm/LayerNorm and NCCL plugins): in a step
    # without convolutions, norms, residual adds, activations and the QKV preprocessing (RoPE + KV write)
    # run as kernels of their own, and an 8/4-bit GEMM's input is quantized by a kernel of its own; a
    # convolutional step keeps the compiler's fusion (conv + bias + ReLU + add, int8 in and out).
    # Only meaningful with fuse_epilogues (perf._static builds the three variants; see `fusion_variant`)
    plugin_layers: bool = False
    # software floor of a collective on a dynamically scheduled chip (NCCL-style: kernel launch + flag
    # handshakes); statically scheduled fabrics pay per-hop link latency only
    collective_floor_us: float = Field(ge=0)
    # all-reduce algorithm on a switched GPU system: "ring" (NCCL: 2(g-1) latency steps) or "oneshot"
    # (peer-to-peer custom all-reduce: one-shot / two-shot, 2 / 4 steps; see perf.collective_time)
    allreduce: Literal["ring", "oneshot"] = "ring"
    link_eff: float = Field(gt=0, le=1)
    conv_eff: float = Field(gt=0, le=1)
    lowp_eff: float = Field(1.0, gt=0, le=1)  # GEMM efficiency of 8/4-bit compute relative to 16-bit
    # fraction of a collective's bandwidth time hidden under the step's compute when the step splits into
    # >= 2 independent token chunks (TP comm/GEMM overlap); latency and the floor are never hidden
    comm_overlap: float = Field(0.0, ge=0, le=1)
    # how well a matrix kernel overlaps its operand loads with its math near the roofline's knee: its
    # time is the p-norm (t_compute^p + t_memory^p)^(1/p) of the two roofs (p → ∞: the classic max,
    # perfect overlap; p = 1: none). Tiled GEMMs load a tile before its math can start and drain the
    # last tile's math after the loads end, so both roofs show where they are close. Initial value 2:
    # LLMCompass A100 fp16 GEMMs at M = 64 / 128 / 256, K = N = 12288 take 190 / 200 / 318 µs; p = 2
    # gives 177 / 211 / 312 µs, the max 164 / 164 / 266 µs (llm_perf_models.md §3.3 kernel rows)
    knee_p: float = Field(2.0, ge=1.0, le=16.0)
    # the runtime's paged KV cache on a memory-backed chip: it takes `kv_memory_fraction` of the memory
    # left after the weights (`kv_memory_of: free`, TensorRT-LLM) or of the whole memory, weights included
    # (`total`, vLLM); `kv_admission` "reserve" admits a request only when blocks for its prompt plus its
    # whole output are free, so it never grows nor is preempted (TensorRT-LLM's GUARANTEED_NO_EVICT);
    # "grow" admits on its prompt's blocks, grows block by block and is preempted when the cache is full
    # (vLLM). Used by the serving engine (dse.evaluate.serving, dse.serving)
    kv_memory_fraction: float = Field(1.0, gt=0, le=1)
    kv_memory_of: Literal["free", "total"] = "free"
    kv_admission: Literal["reserve", "grow"] = "grow"

    def kv_room_bytes(self, memory_bytes, weight_bytes):
        """Bytes the runtime's KV cache may take on a chip with `memory_bytes` holding `weight_bytes` of
        weights (never below 0)."""
        memory_bytes, weight_bytes = np.asarray(memory_bytes, float), np.asarray(weight_bytes, float)
        if self.kv_memory_of == "total":
            room = self.kv_memory_fraction * memory_bytes - weight_bytes
        else:
            room = self.kv_memory_fraction * (memory_bytes - weight_bytes)
        return np.maximum(room, 0.0)


    @property
    def fusion_variant(self) -> int:
        """Which of perf._static's per-operator variants the stack runs: 0 nothing fused (every epilogue and
        every 8/4-bit input quantization a kernel of its own), 1 all fused, 2 fused in convolutional steps only
        (`plugin_layers`)."""
        if not self.fuse_epilogues:
            return 0
        return 2 if self.plugin_layers else 1

    def for_stack(self, stack: Mapping[str, bool | str]) -> "Calibration":
        """The class's constants for one published stack whose structure differs from its class's (a measurement's
        `stack:`, e.g. a vLLM build measured under class `tuned` fuses its layers: plugin_layers false). Only the
        structural fields of `STACK_FIELDS`, never a fitted constant."""
        return self.model_copy(update=check_stack(stack)) if stack else self

    def for_phase(self, phase: str) -> "Calibration":
        """The constants a step of `phase` runs with: an `inference` step (CNN / vision forward pass) pays
        the stack's `inference_launch_us` as its per-step cost instead of an LLM engine step's
        `step_overhead_us`; prefill and decode steps run with the constants as they are."""
        if phase != "inference" or self.step_overhead_us == self.inference_launch_us:
            return self
        return self.model_copy(update={"step_overhead_us": self.inference_launch_us})


def _structural(annotation) -> tuple | None:
    """The values a structural field may take (yes/no, or one of a Literal's choices); None for a number."""
    if annotation is bool:
        return (False, True)
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return None


# The structural properties of a stack (yes/no, or a choice such as the all-reduce algorithm), as opposed to its
# fitted constants: what one published measurement may state about its own stack where it differs from its
# software class (`Calibration.for_stack`), e.g. a vLLM build without the custom all-reduce (`allreduce: ring`)
STACK_FIELDS: tuple[str, ...] = tuple(k for k, f in Calibration.model_fields.items()
                                      if _structural(f.annotation) is not None)


def check_stack(stack: Mapping[str, bool | str]) -> dict[str, bool | str]:
    """`stack` as a dict if every key is one of `STACK_FIELDS` and its value one that field takes (ValueError
    otherwise: a measurement states facts of its stack, never a fitted constant)."""
    bad = sorted(set(stack) - set(STACK_FIELDS))
    if bad:
        raise ValueError(f"stack fields {bad} are not structural; valid: {', '.join(STACK_FIELDS)}")
    for key, val in stack.items():
        allowed = _structural(Calibration.model_fields[key].annotation)
        if not any(val is a or (isinstance(a, str) and val == a) for a in allowed):
            raise ValueError(f"stack field {key}: {val!r} is not one of {list(allowed)}")
    return dict(stack)


class CalibrationFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    classes: dict[str, Calibration]
    default_class: str


@lru_cache(maxsize=8)
def _load(path: str) -> CalibrationFile:
    """Read the file; a class with `inherits: <other>` takes every field it does not set from <other>
    (e.g. `graph` = `tuned`'s fitted efficiencies with CUDA-graph launching)."""
    raw = load_data_yaml(path)
    classes = dict(raw.get("classes") or {})
    for name, body in list(classes.items()):
        parent = (body or {}).get("inherits")
        if parent is not None:
            if parent not in classes or "inherits" in (classes[parent] or {}):
                raise ValueError(f"{path}: class {name!r} inherits unknown or derived class {parent!r}")
            merged = dict(classes[parent])
            merged.update({k: v for k, v in body.items() if k != "inherits"})
            classes[name] = merged
    return CalibrationFile.model_validate({**raw, "classes": classes})


def derived_classes(path: Path | None = None) -> frozenset[str]:
    """Classes that take their constants from another (`inherits:`): `dse calibrate` does not fit them;
    their measurements check the parent's fitted constants under the derived stack's launch model."""
    raw = load_data_yaml(path or CALIBRATION_FILE)
    return frozenset(n for n, body in (raw.get("classes") or {}).items() if (body or {}).get("inherits"))


def calibration_classes(path: Path | None = None) -> dict[str, Calibration]:
    """All software classes in the calibration file."""
    return dict(_load(str(path or CALIBRATION_FILE)).classes)


def default_class(path: Path | None = None) -> str:
    """The software class a design runs under when none is named (the file's `default_class`)."""
    return _load(str(path or CALIBRATION_FILE)).default_class


def unknown_class_message(name: str, path: Path | None = None) -> str | None:
    """None when `name` is a software class of the calibration file, else the one message for it (with a
    did-you-mean), shared by `load_calibration` and a study's `software:` check."""
    classes = _load(str(path or CALIBRATION_FILE)).classes
    if name in classes:
        return None
    return suggest(name, classes, "software stack") + " (see `dse software`)"


def load_calibration(name: str | None = None, path: Path | None = None) -> Calibration:
    """The constants of software class `name` (default: the file's default class)."""

    data = _load(str(path or CALIBRATION_FILE))
    key = name or data.default_class
    problem = unknown_class_message(key, path)
    if problem:
        raise DseUserError(problem)
    return data.classes[key]


def clear_cache() -> None:
    """Forget loaded files (after `dse calibrate` rewrites the data file)."""
    _load.cache_clear()
