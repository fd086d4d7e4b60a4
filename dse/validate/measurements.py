"""Schema of the published measurements (dse/catalog/measurements.yaml) and the train/test split rule.

Split rule (deterministic, independent of measured or predicted values and of every other row): a row is
`test` when the SHA-256 of its `id`, read as an integer, is 1 modulo 3, else `train`. About a third of
the rows are held out, and adding or removing a row never moves another between the splits (the earlier
rule ranked the rows of a regime by that hash, so every added row re-dealt its regime's split and with
it the fitted constants). `dse calibrate` never sees a `test` row.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dse.config import load_yaml_model
from dse.errors import DseUserError
from dse.model.calibration import calibration_classes, check_stack
from dse.workloads.shapes import ModelShape

MEASUREMENTS_FILE = Path(__file__).resolve().parent.parent / "catalog" / "measurements.yaml"

REGIMES = ("decode_b1", "prefill", "large_batch", "cnn", "moe", "power", "kernel",
           "serving")  # serving: rows of dse/validate/serving_measurements.yaml (dse/validate/serving.py)
# the software classes a row may name: those of dse/model/data/calibration.yaml (declared there once)
SOFTWARE_CLASSES: tuple[str, ...] = tuple(calibration_classes())

# metric -> (unit, kind of prediction). LLM metrics run the real mapping (dse.evaluate.mapping.map_llm).
METRICS: dict[str, tuple[str, str]] = {
    "ttft_ms": ("ms", "llm"),                        # batch-1 time to first token (prefill of one prompt)
    "tpot_ms": ("ms", "llm"),                        # time per output token at the given batch
    "decode_tokens_per_s": ("tokens/s", "llm"),      # 1000 / TPOT (one user's generation speed)
    "e2e_latency_ms": ("ms", "llm"),                 # TTFT + output_len x TPOT
    "tokens_per_s_per_chip": ("tokens/s/chip", "llm"),          # fixed batch, static batching
    "offline_tokens_per_s_per_chip": ("tokens/s/chip", "llm"),  # best batch <= max_batch, no SLO
    "layer_prefill_ms": ("ms", "layer"),             # one transformer layer, prefill of batch x prompt
    "layer_decode_ms": ("ms", "layer"),              # one transformer layer, one decode step
    "offline_images_per_s_per_chip": ("images/s/chip", "cnn"),  # best batch <= max_batch, no SLO
    "cnn_latency_ms": ("ms", "cnn"),                 # time of one forward pass of the given batch (batch 1: latency)
    "gemm_tflops": ("TFLOPS", "gemm"),               # one (m x k)·(k x n) GEMM, weights from memory
    "gemm_time_ms": ("ms", "gemm"),
    "allreduce_time_us": ("us", "collective"),       # one all-reduce of message_bytes over num_chips
    "chip_power_w": ("W", "power"),                  # average power per chip while serving the LLM setup
}


class Measurement(BaseModel):
    """One published result: the setup, the measured figure, and where it was published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    hardware: str = Field(description="catalog design name (dse catalog)")
    num_chips: int = Field(1, ge=1)
    overrides: dict[str, float | int | str] = Field(
        default_factory=dict, description="dotted design fields changed from the catalog entry (a variant)")
    model: str = Field("", description="model shape name (built-in or from the file's `models:`); '' for kernels")
    metric: str
    precision: str = "bf16"
    batch: int | None = Field(None, ge=1, description="fixed batch; None = best batch up to max_batch")
    max_batch: int | None = Field(None, ge=1)
    prompt_len: int = Field(0, ge=0)
    output_len: int = Field(0, ge=0)
    tp: int | None = Field(None, ge=1, description="tensor parallelism forced to the published one")
    pp: int | None = Field(None, ge=1)
    ep: int | None = Field(None, ge=1, description="expert parallelism forced to the published one (MoE)")
    # kernel rows
    m: int = Field(0, ge=0)
    k: int = Field(0, ge=0)
    n: int = Field(0, ge=0)
    message_bytes: float = Field(0, ge=0)
    # provenance
    software: str = Field(min_length=1, description="the serving software / benchmark as published")
    software_class: Literal[SOFTWARE_CLASSES]  # type: ignore[valid-type]
    stack: dict[str, bool | str] = Field(
        default_factory=dict, description="the published stack's structure where it differs from its software_class "
        "(dse.model.calibration.STACK_FIELDS, e.g. plugin_layers: false for a vLLM build measured as `tuned`); "
        "documented facts of that stack, never fitted")
    value: float = Field(gt=0)
    unit: str
    source: str = Field(min_length=10)
    regime: Literal["decode_b1", "prefill", "large_batch", "cnn", "moe", "power", "kernel"]
    loose: bool = Field(False, description="the source itself is inconsistent or approximate")
    notes: str = ""

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: dict[str, bool | str]) -> dict[str, bool | str]:
        return check_stack(v)

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric {v!r}; valid: {', '.join(METRICS)}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        unit, kind = METRICS[self.metric]
        if self.unit != unit:
            raise ValueError(f"metric {self.metric} is in {unit}, not {self.unit}")
        if kind in ("llm", "layer", "cnn", "power") and not self.model:
            raise ValueError(f"metric {self.metric} needs a model")
        if kind in ("llm", "layer", "power") and (self.prompt_len < 1 or self.output_len < 1):
            raise ValueError("LLM rows need prompt_len >= 1 and output_len >= 1")
        if self.batch is None and self.max_batch is None and kind in ("llm", "layer", "cnn", "power"):
            raise ValueError("give batch (fixed) or max_batch (best batch up to it)")
        if kind == "gemm" and min(self.m, self.k, self.n) < 1:
            raise ValueError("GEMM rows need m, k, n >= 1")
        if kind == "collective" and (self.message_bytes <= 0 or self.num_chips < 2):
            raise ValueError("all-reduce rows need message_bytes > 0 and num_chips >= 2")
        return self

    @property
    def kind(self) -> str:
        return METRICS[self.metric][1]

    @property
    def lower_is_better(self) -> bool:
        return lower_is_better(self.metric)


def lower_is_better(metric: str) -> bool:
    """True for a time metric (ms, µs): a faster setup lowers it; False for rates, power and ratios."""
    return metric.endswith(("_ms", "_us"))


class MeasurementFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelShape] = Field(default_factory=dict)
    measurements: list[Measurement]

    @model_validator(mode="after")
    def _unique(self):
        for name, shape in list(self.models.items()):
            if shape.name != name:
                self.models[name] = shape.model_copy(update={"name": name})
        ids = [m.id for m in self.measurements]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate measurement id(s) {dup}")
        return self


def split_of(mid: str) -> Literal["train", "test"]:
    """The split of the row with id `mid` (the rule in the module docstring): its own id decides."""
    return "test" if int(hashlib.sha256(mid.encode()).hexdigest(), 16) % 3 == 1 else "train"


def assign_splits(rows: Iterable) -> dict[str, str]:
    """id -> 'train' | 'test' by the rule in the module docstring, for rows with an `id` (measurements of
    this file and the serving rows of dse/validate/serving_measurements.yaml alike)."""
    return {m.id: split_of(m.id) for m in rows}


@lru_cache(maxsize=4)
def _load(path: str) -> MeasurementFile:

    return load_yaml_model(Path(path), MeasurementFile, what="measurements")


def load_measurements(path: Path | None = None) -> MeasurementFile:
    """The validated measurement file (its `models:` shapes are named by their keys)."""
    return _load(str(path or MEASUREMENTS_FILE))


def select(split: str = "all", path: Path | None = None) -> list[tuple[Measurement, str]]:
    """(measurement, its split) for split 'train', 'test' or 'all', in file order."""
    rows = load_measurements(path).measurements
    splits = assign_splits(rows)
    if split not in ("train", "test", "all"):

        raise DseUserError(f"unknown split {split!r} (valid: train, test, all)")
    return [(m, splits[m.id]) for m in rows if split == "all" or splits[m.id] == split]
