"""Scenarios (a model served under a batch policy, lengths, precision and SLOs) and weighted mixes."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_serializer,
    field_validator,
    model_validator,
)

from dse.config import MAX_YAML_INT, load_data_yaml, load_yaml_model, suggest, validate_data
from dse.errors import DseUserError
from dse.workloads.serving import ServingWorkload
from dse.workloads.modelfile import load_model_shape
from dse.workloads.precision import Precision, parse_precision, weight_format_precision
from dse.workloads.shapes import ModelShape, builtin_name, model_names

DATA = Path(__file__).parent / "data" / "scenarios.yaml"
MIXES_DIR = Path(__file__).resolve().parents[2] / "studies" / "mixes"

# Folder that relative model / scenario paths inside the mix or scenario being validated are relative to
# (the folder of the YAML file that names them); set by load_scenario / load_mix for one validation.
_BASE_DIR: ContextVar[Path | None] = ContextVar("dse_workloads_base_dir", default=None)


@contextmanager
def relative_to(base_dir: Path | str | None):
    """Resolve relative model paths against `base_dir` while validating inside this block."""
    token = _BASE_DIR.set(Path(base_dir) if base_dir is not None else _BASE_DIR.get())
    try:
        yield
    finally:
        _BASE_DIR.reset(token)


class BatchRange(BaseModel):
    """Batch policy `{max: N}`: the mapping picks the best batch in [min, max] under the SLOs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int = Field(1, ge=1)
    max: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min > self.max:
            raise ValueError(f"min {self.min} > max {self.max}")
        return self


# `batch: 8` (fixed) or `batch: {max: 256}`; the callable discriminator keeps errors to one branch
# (tags contain "[" so dse.config leaves them out of error paths).
BatchPolicy = Annotated[
    Union[Annotated[int, Tag("batch[int]")], Annotated[BatchRange, Tag("batch[range]")]],
    Discriminator(lambda v: "batch[range]" if isinstance(v, (dict, BatchRange)) else "batch[int]"),
]


class Scenario(BaseModel):
    """One workload: model, phases, batch policy, lengths, precision, chip limit, SLOs and goal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    description: str = ""
    model: ModelShape = Field(description="built-in model name, model YAML, Hugging Face config.json, or an "
                                          "inline mapping of model fields")
    # cnn = any vision model (ResNet or ViT), one inference per batch; default: from the model's family
    kind: Literal["llm", "cnn"] = None  # type: ignore[assignment]
    phases: tuple[Literal["prefill", "decode", "inference"], ...] = ()
    batch: BatchPolicy = Field(1, description="fixed batch N, or {max: N} (best batch under SLOs)")
    prompt_len: int = Field(0, ge=0)
    output_len: int = Field(0, ge=0)
    precision: Precision = Field(default_factory=Precision)
    max_chips: int | None = Field(None, ge=1)
    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    latency_ms: float | None = Field(None, gt=0)
    goal: Literal["throughput", "latency"] = "throughput"
    routing_skew: float | None = Field(None, ge=0.0, description="MoE expert popularity Zipf exponent for this "
                                       "scenario (overrides the model's; 0 = uniform routing)")
    serving: ServingWorkload | None = Field(None, description="request-level workload (arrivals, length "
                                            "distributions, percentile SLOs) for the serving metrics")

    @field_validator("batch")
    @classmethod
    def _batch_pos(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("batch must be >= 1")
        return v

    @field_validator("batch", "prompt_len", "output_len", "max_chips")
    @classmethod
    def _fits_int64(cls, v):
        """Sizes become int64 columns: a command-line 10**30 is an error here, not an OverflowError later
        (YAML input is already held to the same limit by dse.config)."""
        for n in ((v.min, v.max) if isinstance(v, BatchRange) else (v,)):
            if isinstance(n, int) and n >= MAX_YAML_INT:
                raise ValueError(f"{n:.3g} is too large (the limit is 2**63); give a realistic value")
        return v

    @field_validator("model", mode="before", json_schema_input_type=str | ModelShape)
    @classmethod
    def _known_model(cls, v):
        try:
            return load_model_shape(v, base_dir=_BASE_DIR.get())
        except DseUserError as exc:
            raise ValueError(str(exc)) from None

    @field_serializer("model")
    def _model_out(self, shape: ModelShape):
        """A built-in model dumps as its name; a user model as its full shape (a run stays self-contained)."""
        key = builtin_name(shape.name)
        return key if key is not None and load_model_shape(key) == shape else shape.model_dump(exclude_defaults=True)

    @model_validator(mode="after")
    def _consistent(self):
        family = self.model.family
        if self.routing_skew is not None:
            if not self.model.is_moe:
                raise ValueError(f"routing_skew: {self.model} is not a mixture-of-experts model")
            if self.model.routing_skew != self.routing_skew:
                object.__setattr__(self, "model", self.model.model_copy(update={"routing_skew": self.routing_skew}))
        if self.kind is None:
            object.__setattr__(self, "kind", "llm" if family == "llm" else "cnn")
        if self.kind == "llm" and family != "llm":
            raise ValueError(f"kind 'llm' needs a language model; {self.model} is a {family} model (use kind: cnn)")
        if self.kind == "cnn" and family == "llm":
            raise ValueError(f"kind 'cnn' needs a vision model; {self.model} is a language model (use kind: llm)")
        if self.kind == "llm":
            if self.prompt_len < 1 or self.output_len < 1:
                raise ValueError("llm scenarios need prompt_len >= 1 and output_len >= 1")
            allowed, default = {"prefill", "decode"}, ("prefill", "decode")
        else:
            allowed, default = {"inference"}, ("inference",)
        if not self.phases:
            object.__setattr__(self, "phases", default)
        bad = [p for p in self.phases if p not in allowed]
        if bad:
            raise ValueError(f"phase(s) {bad} not valid for kind '{self.kind}' (valid: {sorted(allowed)})")
        return self

    @field_validator("precision", mode="before", json_schema_input_type=str | Precision)
    @classmethod
    def _prec(cls, v):
        try:
            return parse_precision(v) if isinstance(v, str) else v
        except DseUserError as exc:
            raise ValueError(str(exc)) from None

    def precision_spec(self) -> Precision:
        return self.precision

    @property
    def fixed_batch(self) -> int | None:
        """The batch when fixed, else None (the mapping searches up to `max_batch`)."""
        return self.batch if isinstance(self.batch, int) else None

    @property
    def min_batch(self) -> int:
        return self.batch if isinstance(self.batch, int) else self.batch.min

    @property
    def max_batch(self) -> int:
        return self.batch if isinstance(self.batch, int) else self.batch.max

    @property
    def context_len(self) -> int:
        """KV tokens per sequence at the end of generation (prompt + output)."""
        return self.prompt_len + self.output_len


class MixEntry(BaseModel):
    """A scenario (built-in name or inline) and its weight in the mix's geometric mean."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scenario: Scenario
    weight: float = Field(1.0, gt=0)

    @field_validator("scenario", mode="before")
    @classmethod
    def _resolve(cls, v):
        if isinstance(v, str):
            raw = _raw()["scenarios"]
            if v not in raw:

                raise ValueError(suggest(v, raw, what="scenario"))
            return {"name": v, **raw[v]}
        return v


class Mix(BaseModel):
    """Weighted scenarios; `mix.throughput` is their weighted geometric mean normalised to
    `reference_design`. `scenarios` may be a list of entries, names, or a mapping name → weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "custom"
    description: str = ""
    scenarios: tuple[MixEntry, ...]
    reference_design: str = "H100-SXM"

    @field_validator("scenarios", mode="before")
    @classmethod
    def _normalize(cls, v):
        if isinstance(v, dict):
            return [{"scenario": k, "weight": w} for k, w in v.items()]
        if isinstance(v, list):
            return [{"scenario": e} if isinstance(e, str) else e for e in v]
        return v

    @model_validator(mode="after")
    def _unique(self):
        if not self.scenarios:
            raise ValueError("a mix needs at least one scenario")
        names = [e.scenario.name for e in self.scenarios]
        if any(not n for n in names):
            raise ValueError("every inline scenario needs a name")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate scenario name(s) {dup}")
        return self

    def scenario(self, name: str) -> Scenario:
        for e in self.scenarios:
            if e.scenario.name == name:
                return e.scenario
        raise KeyError(name)


@lru_cache(maxsize=1)
def _raw() -> dict:

    return load_data_yaml(DATA)


def scenario_names() -> list[str]:
    return list(_raw()["scenarios"])


def mix_names() -> list[str]:
    return list(_raw()["mixes"])


def mix_files() -> dict[str, Path]:
    """Mix files shipped under studies/mixes/ (name = file stem)."""
    if not MIXES_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(MIXES_DIR.glob("*.yaml"))}


def _validate(data: Any, cls, where: str, base_dir: Path | str | None = None):

    with relative_to(base_dir):
        return validate_data(data, cls, where=where)


def _load_file(path: Path | str, cls):
    """A scenario or mix YAML file; model paths inside it are relative to the file's folder."""

    with relative_to(Path(path).resolve().parent):
        return load_yaml_model(path, cls)


def load_scenario(spec: str | Path | dict | Scenario, *, base_dir: Path | str | None = None) -> Scenario:
    """A built-in scenario by name, a YAML file, an inline dict or a Scenario; errors name the field.
    Relative model paths in an inline dict are tried against `base_dir` first."""
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, dict):
        return _validate(spec, Scenario, "<inline scenario>", base_dir)
    raw = _raw()["scenarios"]
    if str(spec) in raw:
        return _validate({"name": str(spec), **raw[str(spec)]}, Scenario, f"scenario {spec}")
    if str(spec).endswith((".yaml", ".yml")):
        p = Path(spec)
        if base_dir is not None and not p.is_absolute() and (Path(base_dir) / p).is_file():
            p = Path(base_dir) / p
        return _load_file(p, Scenario)

    raise DseUserError(suggest(str(spec), raw, what="scenario"))


def load_mix(spec: str | Path | dict | Mix, *, base_dir: Path | str | None = None) -> Mix:
    """A built-in mix by name, a mix file under studies/mixes/ by name, a YAML file, an inline dict or
    a Mix; a scenario name alone is a one-scenario mix. Errors name the offending field. Relative
    paths (the file, models inside an inline dict) are tried against `base_dir` first."""
    if isinstance(spec, Mix):
        return spec
    if isinstance(spec, dict):
        return _validate(spec, Mix, "<inline mix>", base_dir)
    mixes = _raw()["mixes"]
    name = str(spec)
    if name in mixes:
        return _validate({"name": name, **mixes[name]}, Mix, f"mix {name}")
    if name in _raw()["scenarios"]:
        return _validate({"name": name, "scenarios": {name: 1}}, Mix, f"mix {name}")
    if name.endswith((".yaml", ".yml")):
        p = Path(spec)
        if base_dir is not None and not p.is_absolute() and (Path(base_dir) / p).is_file():
            p = Path(base_dir) / p
        return _load_file(p, Mix)
    files = mix_files()
    if name in files:
        mix = _load_file(files[name], Mix)
        return mix if mix.name != "custom" else mix.model_copy(update={"name": name})

    raise DseUserError(suggest(name, [*mixes, *files, *_raw()["scenarios"]], what="mix"))


def mix_of(scenarios: list[Scenario], name: str | None = None) -> Mix:
    """A mix of the given scenarios with equal weights (e.g. one scenario for `dse evaluate --scenario`)."""
    entries = [MixEntry(scenario=s, weight=1.0) for s in scenarios]
    return Mix(name=name or "+".join(s.name for s in scenarios), scenarios=tuple(entries))


def with_max_chips(mix: Mix, chips: int | None) -> Mix:
    """`mix` with every scenario limited to at most `chips` chips (`dse evaluate --chips`); a scenario's own
    smaller `max_chips` stays. `None` returns `mix` unchanged."""
    if chips is None:
        return mix
    entries = tuple(e.model_copy(update={"scenario": e.scenario.model_copy(
        update={"max_chips": min(chips, e.scenario.max_chips or chips)})}) for e in mix.scenarios)
    return mix.model_copy(update={"scenarios": entries})


def adhoc_scenario(*, model: str | Path | dict | ModelShape, batch: int = 1, prompt_len: int = 512,
                   output_len: int = 128, weight_bits: int = 16, act_bits: int | None = 16, kv_bits: int = 16,
                   max_chips: int | None = None, number: str | None = None,
                   weight_format: str | None = None) -> Scenario:
    """A scenario from command-line flags: fixed batch, no SLOs; LLM or vision decided by the model.
    `weight_format` (e.g. int8, fp8, int4, mxfp4, nvfp4, q4_0) sets the weights' bits, arithmetic and
    block scaling, and the activations' bits when `act_bits` is None (int8 and fp8 are distinct)."""

    shape = load_model_shape(model)
    kind = "llm" if shape.family == "llm" else "cnn"
    if weight_format:
        prec = weight_format_precision(weight_format, act_bits=act_bits, kv_bits=kv_bits)
    else:
        act = 16 if act_bits is None else act_bits
        num = number or ("float" if min(weight_bits, act) >= 8 else "int")
        prec = {"weight_bits": weight_bits, "act_bits": act, "kv_bits": kv_bits, "number": num}
    data = {"name": "adhoc", "model": shape, "kind": kind, "batch": batch, "precision": prec,
            "goal": "throughput" if batch > 1 else "latency"}
    if kind == "llm":
        data.update(prompt_len=prompt_len, output_len=output_len)
    if max_chips:
        data["max_chips"] = max_chips
    return _validate(data, Scenario, "<command-line scenario>")


__all__ = ["mix_of", "with_max_chips", "adhoc_scenario", "BatchRange", "Scenario", "MixEntry", "Mix", "load_scenario", "load_mix", "scenario_names",
           "mix_names", "mix_files", "model_names", "relative_to"]
