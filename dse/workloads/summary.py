"""What `dse models` shows about a model: parameters, weight bytes per format, KV bytes per token."""

from __future__ import annotations

from dse.units import MEMORY_GB_BYTES
from dse.workloads.precision import FORMATS
from dse.workloads.shapes import ModelShape

SHOWN_FORMATS = ("bf16", "fp8", "int8", "mxfp4", "nvfp4", "int4", "q4_0")


def model_summary(shape: ModelShape, context: int = 8192) -> dict:
    """Plain-data summary of a model (JSON-able): shape fields that differ from the defaults, total and
    active parameters, weight GB per format (every weight in that format) and 16-bit KV bytes. GB are
    GB of memory capacity (2^30 B, dse.units.MEMORY_GB_BYTES), so they compare with a chip's `mem_gb`."""
    params = shape.param_count()
    out = {"name": shape.name, "family": shape.family, "source": shape.source,
           "shape": shape.model_dump(mode="json", exclude_defaults=True) | {"experts": shape.experts},
           "params": params, "active_params": shape.param_count(active=True),
           "weight_gb": {f: {"bits_per_weight": FORMATS[f].bits_per_value,
                             "gb": params * FORMATS[f].bits_per_value / 8 / MEMORY_GB_BYTES} for f in SHOWN_FORMATS}}
    if shape.family == "llm":
        out["kv_bytes_per_token"] = shape.kv_bytes_per_token()
        out["kv_bytes_per_token_at_context"] = shape.kv_bytes_per_token(context)
        out["kv_gb_at_context"] = shape.kv_cache_bytes(1, context) / MEMORY_GB_BYTES
        out["context"] = context
    return out
