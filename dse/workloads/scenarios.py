"""Scenarios (a model served under a batch policy, lengths, precision and SLOs) and weighted mixes."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from dse.errors import DseUserError
from dse.workloads.precision import Precision, parse_precision
from dse.workloads.shapes import load_model_shape, model_names

DATA = Path(__file__).parent / "data" / "scenarios.yaml"


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
    model: str
    kind: Literal["llm", "cnn"]   # cnn = any vision model (ResNet or ViT), one inference per batch
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

    @field_validator("batch")
    @classmethod
    def _batch_pos(cls, v):
        if isinstance(v, int) and v < 1:
            raise ValueError("batch must be >= 1")
        return v

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: str) -> str:
        try:
            return load_model_shape(v).name
        except DseUserError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _consistent(self):
        family = load_model_shape(self.model).family
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

    @field_validator("precision", mode="before")
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
                from dse.config import suggest

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
    import yaml

    return yaml.safe_load(DATA.read_text(encoding="utf-8"))


def scenario_names() -> list[str]:
    return list(_raw()["scenarios"])


def mix_names() -> list[str]:
    return list(_raw()["mixes"])


def _validate(data: Any, cls, where: str):
    from dse.config import validate_data

    return validate_data(data, cls, where=where)


def load_scenario(spec: str | Path | dict | Scenario) -> Scenario:
    """A built-in scenario by name, a YAML file, an inline dict or a Scenario; errors name the field."""
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, dict):
        return _validate(spec, Scenario, "<inline scenario>")
    raw = _raw()["scenarios"]
    if str(spec) in raw:
        return _validate({"name": str(spec), **raw[str(spec)]}, Scenario, f"scenario {spec}")
    if str(spec).endswith((".yaml", ".yml")):
        from dse.config import load_yaml_model

        return load_yaml_model(spec, Scenario)
    from dse.config import suggest

    raise DseUserError(suggest(str(spec), raw, what="scenario"))


def load_mix(spec: str | Path | dict | Mix) -> Mix:
    """A built-in mix by name, a YAML file, an inline dict or a Mix; a scenario name alone is a
    one-scenario mix. Errors name the offending field."""
    if isinstance(spec, Mix):
        return spec
    if isinstance(spec, dict):
        return _validate(spec, Mix, "<inline mix>")
    mixes = _raw()["mixes"]
    name = str(spec)
    if name in mixes:
        return _validate({"name": name, **mixes[name]}, Mix, f"mix {name}")
    if name in _raw()["scenarios"]:
        return _validate({"name": name, "scenarios": {name: 1}}, Mix, f"mix {name}")
    if name.endswith((".yaml", ".yml")):
        from dse.config import load_yaml_model

        return load_yaml_model(spec, Mix)
    from dse.config import suggest

    raise DseUserError(suggest(name, [*mixes, *_raw()["scenarios"]], what="mix"))


def mix_of(scenarios: list[Scenario], name: str | None = None) -> Mix:
    """A mix of the given scenarios with equal weights (e.g. one scenario for `dse evaluate --scenario`)."""
    entries = [MixEntry(scenario=s, weight=1.0) for s in scenarios]
    return Mix(name=name or "+".join(s.name for s in scenarios), scenarios=tuple(entries))


def adhoc_scenario(*, model: str, batch: int = 1, prompt_len: int = 512, output_len: int = 128,
                   weight_bits: int = 16, act_bits: int = 16, kv_bits: int = 16, max_chips: int | None = None,
                   number: str | None = None) -> Scenario:
    """A scenario from command-line flags: fixed batch, no SLOs; LLM or vision decided by the model."""
    from dse.workloads.shapes import load_model_shape

    shape = load_model_shape(model)
    kind = "llm" if shape.family == "llm" else "cnn"
    num = number or ("float" if min(weight_bits, act_bits) >= 8 else "int")
    data = {"name": "adhoc", "model": shape.name, "kind": kind, "batch": batch,
            "precision": {"weight_bits": weight_bits, "act_bits": act_bits, "kv_bits": kv_bits, "number": num},
            "goal": "throughput" if batch > 1 else "latency"}
    if kind == "llm":
        data.update(prompt_len=prompt_len, output_len=output_len)
    if max_chips:
        data["max_chips"] = max_chips
    return _validate(data, Scenario, "<command-line scenario>")


__all__ = ["mix_of", "adhoc_scenario", "BatchRange", "Scenario", "MixEntry", "Mix", "load_scenario", "load_mix", "scenario_names",
           "mix_names", "model_names"]
