"""Numeric precision of a workload: bits of weights / activations / KV cache, block formats, 2:4 sparsity.

Bytes per stored value and the compute precision a chip must run GEMMs at are derived here, so that
every builder counts bytes the same way.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dse.config import suggest
from dse.errors import DseUserError

# 2:4 structured sparsity keeps 2 of every 4 weights and stores a 2-bit index for each kept value
# (position within its group of 4). Source: Mishra et al., "Accelerating Sparse Deep Neural Networks",
# arXiv:2104.08378 (2021), §3 (NVIDIA Ampere sparse tensor cores); also the NVIDIA A100 whitepaper.
SPARSE_KEEP_FRACTION = 0.5
SPARSE_META_BITS_PER_KEPT = 2.0


class WeightFormat(BaseModel):
    """A stored number format: bits per value, arithmetic, and one scale of `scale_bits` per `block` values."""

    model_config = ConfigDict(frozen=True)

    bits: int
    number: Literal["float", "int"]
    block: int = 0
    scale_bits: int = 0
    act_bits: int = 16   # activation bits a deployment pairs with these weights (`--weight-format`)
    source: str = ""

    @property
    def bits_per_value(self) -> float:
        """Exact storage bits per value, block scales included (MXFP4: 4 + 8/32 = 4.25)."""
        return self.bits + (self.scale_bits / self.block if self.block else 0.0)


_MX = "OCP Microscaling Formats (MX) v1.0 spec: 32-element blocks, one 8-bit E8M0 scale"
FORMATS: dict[str, WeightFormat] = {
    "bf16": WeightFormat(bits=16, number="float", source="bfloat16"),
    "fp16": WeightFormat(bits=16, number="float", source="IEEE half"),
    "fp8": WeightFormat(bits=8, number="float", act_bits=8, source="FP8 E4M3 W8A8 (per-tensor scale)"),
    "int8": WeightFormat(bits=8, number="int", act_bits=8, source="INT8 W8A8 (SmoothQuant-style)"),
    "int4": WeightFormat(bits=4, number="int", source="INT4 weight-only (GPTQ/AWQ-style), 16-bit activations"),
    "fp4": WeightFormat(bits=4, number="float", act_bits=4, source="FP4 E2M1"),
    "mxfp8": WeightFormat(bits=8, number="float", block=32, scale_bits=8, act_bits=8, source=_MX),
    "mxfp6": WeightFormat(bits=6, number="float", block=32, scale_bits=8, act_bits=8, source=_MX),
    "mxfp4": WeightFormat(bits=4, number="float", block=32, scale_bits=8, source=_MX + "; gpt-oss "
                          "ships MXFP4 experts run with BF16 activations (OpenAI gpt-oss model card)"),
    "mxint8": WeightFormat(bits=8, number="int", block=32, scale_bits=8, act_bits=8, source=_MX),
    "nvfp4": WeightFormat(bits=4, number="float", block=16, scale_bits=8, act_bits=4,
                          source="NVIDIA NVFP4 (Blackwell): E2M1 values, one FP8 E4M3 scale per 16 (+ one "
                                 "FP32 per tensor, negligible)"),
    "q8_0": WeightFormat(bits=8, number="int", block=32, scale_bits=16,
                         source="ggml Q8_0: 32 int8 values + one fp16 scale = 34 bytes"),
    "q4_0": WeightFormat(bits=4, number="int", block=32, scale_bits=16,
                         source="ggml Q4_0: 32 4-bit values + one fp16 scale = 18 bytes"),
}
TENSOR_CLASSES = ("attn", "mlp", "experts", "shared_experts", "embed")


def weight_format(name: str) -> WeightFormat:
    """The format called `name` (case-insensitive); unknown names raise DseUserError with a suggestion."""
    key = str(name).strip().lower()
    if key not in FORMATS:

        raise DseUserError(suggest(key, FORMATS, what="weight format"))
    return FORMATS[key]


def _precision_of(bits: int, number: str) -> str:
    """Precision GEMMs run at for `bits` (the wider operand); names match technology `precision_speedup`."""
    if bits > 8:
        return "bf16"
    if bits > 4:  # 5-8 bits (incl. fp6, which MX hardware runs on the fp8 path)
        return "fp8" if number == "float" else "int8"
    return "fp4" if number == "float" else "int4"


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
    # Weight formats by name (see FORMATS): `weights` for every weight, and per tensor class; None =
    # the bits / number / block fields above. E.g. gpt-oss: {experts: mxfp4} with 16-bit attention.
    weights: str | None = None
    attn: str | None = Field(None, description="attention projections (q, k, v, o; MLA down/up projections)")
    mlp: str | None = Field(None, description="dense MLPs (dense models and DeepSeek's dense first layers)")
    experts: str | None = Field(None, description="routed experts")
    shared_experts: str | None = Field(None, description="shared experts")
    embed: str | None = Field(None, description="embedding table and LM head")

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data):
        if isinstance(data, str):
            return parse_precision(data).model_dump(exclude_defaults=True)
        if isinstance(data, dict) and data.get("weights") and "weight_bits" not in data:
            try:
                fmt = weight_format(data["weights"])
            except DseUserError as exc:
                raise ValueError(f"weights: {exc}") from None
            data = {"weight_bits": fmt.bits, "number": fmt.number, **data}
        return data

    @model_validator(mode="after")
    def _formats(self):
        for f in ("weights",) + TENSOR_CLASSES:
            v = getattr(self, f)
            if v is not None:
                if str(v).lower() not in FORMATS:

                    raise ValueError(f"{f}: " + suggest(v, FORMATS, what="weight format"))
                object.__setattr__(self, f, str(v).lower())
        return self

    # --- per tensor class ------------------------------------------------------------------
    def format_of(self, cls: str) -> WeightFormat | None:
        """The explicit weight format of a tensor class (or of all weights), None = the bit fields."""
        name = getattr(self, cls) or self.weights
        return FORMATS[name] if name else None

    def class_weight_bytes(self, cls: str, sparse_ok: bool = True) -> float:
        """Bytes per weight of tensor class `cls` (one of TENSOR_CLASSES)."""
        fmt = self.format_of(cls)
        if fmt is None:
            return self.weight_bytes if sparse_ok else self.dense_weight_bytes
        if self.sparse and sparse_ok:
            return SPARSE_KEEP_FRACTION * (fmt.bits_per_value + SPARSE_META_BITS_PER_KEPT) / 8.0
        return fmt.bits_per_value / 8.0

    def class_compute_precision(self, cls: str) -> str:
        """Precision the GEMMs of tensor class `cls` run at (the wider of its weights and the activations)."""
        fmt = self.format_of(cls)
        if fmt is None:
            return self.compute_precision
        number = fmt.number if fmt.bits >= self.act_bits else self.number  # the wider operand's arithmetic
        return _precision_of(max(fmt.bits, self.act_bits), number)

    @property
    def uniform(self) -> bool:
        """True when no weight format is set (every weight uses the bit fields)."""
        return not any(getattr(self, f) for f in ("weights",) + TENSOR_CLASSES)

    # --- bytes per value -------------------------------------------------------------------
    def _bits(self, bits: int) -> float:
        extra = self.block_scale_bits / self.block_size if self.block_format != "none" and bits < 16 else 0.0
        return bits + extra

    @property
    def weight_bytes(self) -> float:
        """Bytes per dense-equivalent weight of a GEMM (sparsity: half the values + index metadata)."""
        if self.weights:
            return self.class_weight_bytes("weights")
        bits = self._bits(self.weight_bits)
        if self.sparse:
            return SPARSE_KEEP_FRACTION * (bits + SPARSE_META_BITS_PER_KEPT) / 8.0
        return bits / 8.0

    @property
    def dense_weight_bytes(self) -> float:
        """Bytes per weight that is never sparsified (embedding tables)."""
        if self.weights:
            return self.class_weight_bytes("weights", sparse_ok=False)
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
        return _precision_of(max(self.weight_bits, self.act_bits), self.number)

    @property
    def label(self) -> str:
        """Short human label, e.g. 'w4a16kv16', 'fp8', 'w8a8kv8-int+2:4'."""
        w, a, k = self.weight_bits, self.act_bits, self.kv_bits
        s = f"w{w}a{a}kv{k}"
        if self.number == "int" and min(w, a) < 16:
            s += "-int"
        if self.block_format != "none":
            s += f"-{self.block_format}{self.block_size}"
        if self.weights:
            s = f"{self.weights}-a{a}kv{k}"
        classes = [f"{c}:{getattr(self, c)}" for c in TENSOR_CLASSES if getattr(self, c)]
        if classes:
            s += "[" + ",".join(classes) + "]"
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


def weight_format_precision(name: str, *, act_bits: int | None = None, kv_bits: int = 16) -> Precision:
    """A Precision whose weights are stored in format `name`; activations at `act_bits` (None = what
    deployments pair with the format: fp8/int8 → 8, nvfp4/fp4 → 4, int4/mxfp4/q4_0 → 16)."""
    fmt = weight_format(name)
    act = fmt.act_bits if act_bits is None else act_bits
    return Precision(weights=name.lower(), weight_bits=fmt.bits, act_bits=act, kv_bits=kv_bits,
                     number=fmt.number)


def parse_precision(spec: str | dict | Precision | None) -> Precision:
    """A Precision from a preset name ('fp8', 'int4', 'mxfp4', optional '+2:4' suffix), a dict or None.

    A string may add per-tensor overrides after commas, so per-tensor precision fits wherever a
    precision name does: 'bf16,experts=mxfp4' (gpt-oss), 'fp8,experts=nvfp4,kv_bits=8'. Keys: the
    tensor classes (attn, mlp, experts, shared_experts, embed), weights, act_bits, kv_bits."""
    if spec is None:
        return Precision()
    if isinstance(spec, Precision):
        return spec
    if isinstance(spec, dict):
        return Precision.model_validate(spec)
    name, *overrides = [part.strip() for part in str(spec).strip().lower().split(",")]
    sparsity = "dense"
    if name.endswith("+2:4"):
        name, sparsity = name[: -len("+2:4")], "2:4"
    if name not in PRESETS:

        raise DseUserError(suggest(name, PRESETS, what="precision"))
    w, a, k, number, block = PRESETS[name]
    fields: dict = dict(weight_bits=w, act_bits=a, kv_bits=k, number=number, block_format=block, sparsity=sparsity)
    for item in overrides:
        key, _, val = item.partition("=")
        if key in TENSOR_CLASSES or key == "weights":
            weight_format(val)  # unknown formats: a clear error with a suggestion
            fields[key] = val
        elif key in ("act_bits", "kv_bits") and val.isdigit():
            fields[key] = int(val)
        else:
            raise DseUserError(f"precision '{spec}': cannot read '{item}' (expected <class>=<format> with class "
                               f"in {', '.join(TENSOR_CLASSES)} or weights, or act_bits=N / kv_bits=N)")
    if fields.get("weights"):
        fmt = FORMATS[fields["weights"]]
        fields.update(weight_bits=fmt.bits, number=fmt.number)
    return Precision(**fields)
