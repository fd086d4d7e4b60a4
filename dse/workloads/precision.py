"""Numeric precision of a workload: bits of weights / activations / KV cache, block formats, 2:4 sparsity.

Bytes per stored value and the compute precision a chip must run GEMMs at are derived here, so that
every builder counts bytes the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse.errors import DseUserError

# 2:4 structured sparsity keeps 2 of every 4 weights and stores a 2-bit index for each kept value
# (position within its group of 4). Source: Mishra et al., "Accelerating Sparse Deep Neural Networks",
# arXiv:2104.08378 (2021), §3 (NVIDIA Ampere sparse tensor cores); also the NVIDIA A100 whitepaper.
SPARSE_KEEP_FRACTION = 0.5
SPARSE_META_BITS_PER_KEPT = 2.0


class Precision(BaseModel):
    """Storage bits per tensor class plus block-scaling and sparsity; see `compute_precision`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight_bits: int = Field(16, ge=2, le=16, description="bits per weight value (16 = bf16/fp16)")
    act_bits: int = Field(16, ge=2, le=16, description="bits per activation value")
    kv_bits: int = Field(16, ge=2, le=16, description="bits per KV-cache value")
    number: Literal["float", "int"] = Field(
        "float", description="arithmetic of sub-16-bit values: float (fp8/fp4) or int (int8/int4)")
    # Block formats share one scale per block of values. OCP Microscaling (MX) v1.0 spec: blocks of 32
    # elements with an 8-bit E8M0 shared scale; block floating point (BFP/MSFP) likewise shares an
    # exponent per block. Applies to every tensor stored at fewer than 16 bits.
    block_format: Literal["none", "mx", "bfp"] = "none"
    block_size: int = Field(32, ge=1)
    block_scale_bits: int = Field(8, ge=1)
    sparsity: Literal["dense", "2:4"] = "dense"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data):
        if isinstance(data, str):
            return parse_precision(data).model_dump()
        return data

    # --- bytes per value -------------------------------------------------------------------
    def _bits(self, bits: int) -> float:
        extra = self.block_scale_bits / self.block_size if self.block_format != "none" and bits < 16 else 0.0
        return bits + extra

    @property
    def weight_bytes(self) -> float:
        """Bytes per dense-equivalent weight of a GEMM (sparsity: half the values + index metadata)."""
        bits = self._bits(self.weight_bits)
        if self.sparse:
            return SPARSE_KEEP_FRACTION * (bits + SPARSE_META_BITS_PER_KEPT) / 8.0
        return bits / 8.0

    @property
    def dense_weight_bytes(self) -> float:
        """Bytes per weight that is never sparsified (embedding tables)."""
        return self._bits(self.weight_bits) / 8.0

    @property
    def act_bytes(self) -> float:
        return self._bits(self.act_bits) / 8.0

    @property
    def kv_bytes(self) -> float:
        return self._bits(self.kv_bits) / 8.0

    @property
    def sparse(self) -> bool:
        return self.sparsity == "2:4"

    @property
    def flop_scale(self) -> float:
        """Multiplier on weight-GEMM FLOPs: 2:4 sparsity executes only the kept half."""
        return SPARSE_KEEP_FRACTION if self.sparse else 1.0

    @property
    def compute_precision(self) -> str:
        """Precision GEMMs run at: the wider of weights and activations (weight-only quantization
        dequantizes to the activation type). Names match the technology `precision_speedup` keys."""
        bits = max(self.weight_bits, self.act_bits)
        if bits > 8:
            return "bf16"
        if bits > 4:  # 5-8 bits (incl. fp6, which MX hardware runs on the fp8 path)
            return "fp8" if self.number == "float" else "int8"
        return "fp4" if self.number == "float" else "int4"

    @property
    def label(self) -> str:
        """Short human label, e.g. 'w4a16kv16', 'fp8', 'w8a8kv8-int+2:4'."""
        w, a, k = self.weight_bits, self.act_bits, self.kv_bits
        s = f"w{w}a{a}kv{k}"
        if self.number == "int" and min(w, a) < 16:
            s += "-int"
        if self.block_format != "none":
            s += f"-{self.block_format}{self.block_size}"
        if self.sparse:
            s += "+2:4"
        return s


# Shorthands: name -> (weight_bits, act_bits, kv_bits, number, block_format)
PRESETS: dict[str, tuple[int, int, int, str, str]] = {
    "bf16": (16, 16, 16, "float", "none"),
    "fp16": (16, 16, 16, "float", "none"),
    "fp8": (8, 8, 8, "float", "none"),
    "int8": (8, 8, 8, "int", "none"),
    "w8a8": (8, 8, 16, "int", "none"),
    "w8a16": (8, 16, 16, "int", "none"),
    "int4": (4, 16, 16, "int", "none"),   # weight-only int4 (GPTQ/AWQ-style), 16-bit activations
    "w4a16": (4, 16, 16, "int", "none"),
    "w4a8": (4, 8, 8, "int", "none"),
    "fp4": (4, 4, 8, "float", "none"),
    "mxfp8": (8, 8, 8, "float", "mx"),
    "mxfp6": (6, 6, 8, "float", "mx"),
    "mxfp4": (4, 4, 8, "float", "mx"),
    "bfp8": (8, 8, 8, "int", "bfp"),
}


def parse_precision(spec: str | dict | Precision | None) -> Precision:
    """A Precision from a preset name ('fp8', 'int4', 'mxfp4', optional '+2:4' suffix), a dict or None."""
    if spec is None:
        return Precision()
    if isinstance(spec, Precision):
        return spec
    if isinstance(spec, dict):
        return Precision.model_validate(spec)
    name = str(spec).strip().lower()
    sparsity = "dense"
    if name.endswith("+2:4"):
        name, sparsity = name[: -len("+2:4")], "2:4"
    if name not in PRESETS:
        from dse.config import suggest

        raise DseUserError(suggest(name, PRESETS, what="precision"))
    w, a, k, number, block = PRESETS[name]
    return Precision(weight_bits=w, act_bits=a, kv_bits=k, number=number, block_format=block,
                     sparsity=sparsity)
