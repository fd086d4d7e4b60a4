"""Pydantic descriptions of one chip, one system and one design (DESIGN.md §3/§10), with derived figures.

Names of technologies (process node, memory, link, packaging, precisions) are checked against the
active technology library (`use_technology`, default: the packaged one), with did-you-mean messages.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from dse.config import suggest
from dse.model.technology import Technology, default_technology

_ACTIVE_TECH: contextvars.ContextVar[Technology | None] = contextvars.ContextVar("dse_tech", default=None)


def active_technology() -> Technology:
    """The technology used to validate names and compute derived figures."""
    return _ACTIVE_TECH.get() or default_technology()


@contextlib.contextmanager
def use_technology(tech: Technology | None) -> Iterator[Technology]:
    """Validate / derive with `tech` (e.g. after `--tech override.yaml`) inside the block."""
    token = _ACTIVE_TECH.set(tech)
    try:
        yield active_technology()
    finally:
        _ACTIVE_TECH.reset(token)


def _check_name(value: str, table: dict, what: str, extra: tuple[str, ...] = ()) -> str:
    if value in table or value in extra:
        return value
    raise ValueError(suggest(value, list(table) + list(extra), what))


def _plain_number(v: Any) -> Any:
    """Reject what YAML would silently coerce into a size: `true`, or a number written as text."""
    if isinstance(v, bool) or isinstance(v, str):
        raise ValueError(f"input should be a valid number, got {type(v).__name__} {v!r}")
    return v


class ChipDesign(BaseModel):
    """One accelerator package: compute array, SRAM, off-chip memory, links, packaging."""

    model_config = ConfigDict(extra="forbid")

    process_node: str = "n5"
    cores: int = Field(64, gt=0)
    array_rows: int = Field(128, gt=0)
    array_cols: int = Field(128, gt=0)
    clock_ghz: float = Field(1.0, gt=0, le=10)
    precisions: list[str] = Field(default_factory=lambda: ["bf16", "fp8", "int8"], min_length=1)
    precision_speedup: dict[str, float] = Field(default_factory=dict)  # overrides of the tech defaults
    core_style: Literal["systolic", "simt"] = "systolic"
    sparsity_2to4: bool = False
    vector_flops_per_cycle: float | None = Field(None, ge=0)  # None: 2 per array column per core
    sram_mb: float = Field(64.0, ge=0)
    sram_tbps: float | None = Field(None, gt=0)  # None: technology GB/s per MB × clock
    sram_kind: Literal["scratchpad", "cache"] = "scratchpad"
    memory: str = "hbm3e"
    memory_stacks: int = Field(4, ge=0)
    memory_gbps_per_stack: float | None = Field(None, gt=0)  # None: the memory table's figure
    memory_gb_per_stack: float | None = Field(None, gt=0)
    link: str = "nvlink4"
    links: int = Field(18, ge=0)
    packaging: str = "cowos_s"
    dies: int | None = Field(None, ge=1, le=64)  # None: automatic chiplet split at the reticle limit
    allow_chiplets: bool = True
    tdp_w: float | None = Field(None, gt=0)  # optional power cap

    @field_validator("cores", "array_rows", "array_cols", "clock_ghz", "vector_flops_per_cycle", "sram_mb",
                     "sram_tbps", "memory_stacks", "memory_gbps_per_stack", "memory_gb_per_stack", "links", "dies",
                     "tdp_w", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        return _plain_number(v)

    @field_validator("process_node")
    @classmethod
    def _node(cls, v: str) -> str:
        return _check_name(v, active_technology().process_nodes, "process node")

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        return _check_name(v, active_technology().memories, "memory", ("none",))

    @field_validator("link")
    @classmethod
    def _link(cls, v: str) -> str:
        return _check_name(v, active_technology().links, "link", ("none",))

    @field_validator("packaging")
    @classmethod
    def _packaging(cls, v: str) -> str:
        return _check_name(v, active_technology().packaging, "packaging")

    @field_validator("precisions")
    @classmethod
    def _precisions(cls, v: list[str]) -> list[str]:
        for p in v:
            _check_name(p, active_technology().precision_speedup, "precision")
        return list(dict.fromkeys(v))

    @field_validator("precision_speedup")
    @classmethod
    def _speedups(cls, v: dict[str, float]) -> dict[str, float]:
        for p, s in v.items():
            _check_name(p, active_technology().precision_speedup, "precision")
            if not s > 0:
                raise ValueError(f"speedup of {p} must be > 0, got {s}")
        return v

    @field_validator("memory_stacks")
    @classmethod
    def _stacks(cls, v: int, info: ValidationInfo) -> int:
        if info.data.get("memory", "none") != "none" and v == 0:
            raise ValueError(f"memory '{info.data['memory']}' needs memory_stacks >= 1 (or set memory: none)")
        return v

    @field_validator("allow_chiplets")
    @classmethod
    def _chiplets(cls, v: bool, info: ValidationInfo) -> bool:
        dies = info.data.get("dies")
        if not v and dies is not None and dies > 1:
            raise ValueError(f"dies={dies} needs allow_chiplets: true")
        return v

    # ---- derived figures (computed by the same vectorized code as studies) ----
    def _derived(self) -> dict[str, Any]:
        return Design(chip=self).derived()

    @property
    def macs(self) -> int:
        """MAC units: cores × array_rows × array_cols."""
        return self.cores * self.array_rows * self.array_cols

    def peak_tflops(self, precision: str = "bf16") -> float:
        """Dense peak TFLOPS at `precision` (0 if unsupported): 2 · MACs · clock · multiplier."""
        return self._derived()["peak_tflops"].get(precision, 0.0)

    @property
    def mem_bw_tbps(self) -> float:
        return self._derived()["mem_bw_tbps"]

    @property
    def mem_gb(self) -> float:
        return self._derived()["mem_gb"]

    @property
    def sram_bw_tbps(self) -> float:
        return self._derived()["sram_tbps"]

    @property
    def knee_flop_per_byte(self) -> float:
        return self._derived()["knee_flop_per_byte"]


class SystemDesign(BaseModel):
    """`num_chips` chips joined by a topology."""

    model_config = ConfigDict(extra="forbid")

    num_chips: int = Field(1, ge=1)
    topology: Literal["ring", "torus2d", "switch"] = "switch"
    link_latency_us: float | None = Field(None, ge=0)  # None: from the link table

    @field_validator("num_chips", "link_latency_us", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        return _plain_number(v)


class Design(BaseModel):
    """A named design: one chip type × a system. This is what `dse export` writes and `dse evaluate` reads."""

    model_config = ConfigDict(extra="forbid")

    name: str = "design"
    tags: list[str] = Field(default_factory=list)
    chip: ChipDesign = Field(default_factory=ChipDesign)
    system: SystemDesign = Field(default_factory=SystemDesign)

    def to_flat(self) -> dict[str, Any]:
        """Dotted keys (`chip.cores`, `system.num_chips`, `chip.precision_speedup.int8`) → values."""
        out: dict[str, Any] = {"name": self.name, "tags": list(self.tags)}
        for section in ("chip", "system"):
            for key, value in getattr(self, section).model_dump().items():
                if isinstance(value, dict):
                    for sub, v in value.items():
                        out[f"{section}.{key}.{sub}"] = v
                else:
                    out[f"{section}.{key}"] = value
        return out

    @classmethod
    def from_flat(cls, flat: dict[str, Any]) -> "Design":
        """Inverse of `to_flat`; unknown dotted keys are validation errors."""
        return cls.model_validate(unflatten(flat))

    def derived(self, tech: Technology | None = None) -> dict[str, Any]:
        """Scalar derived figures (peak TFLOPS per precision, TB/s, GB, knee, ...)."""
        from dse.model.arrays import DesignArrays

        arr = DesignArrays.from_designs([self], tech or active_technology())
        return arr.row(0)


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """{'chip.cores': 4, 'chip.precision_speedup.int8': 4} → {'chip': {'cores': 4, 'precision_speedup': {...}}}."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).split(".")
        cur = out
        for part in parts[:-1]:
            nxt = cur.setdefault(part, {})
            if not isinstance(nxt, dict):
                nxt = cur[part] = {}
            cur = nxt
        if value is None and len(parts) > 2:
            continue  # e.g. an absent precision override in a results table
        cur[parts[-1]] = value
    return out
