"""Operators, model shapes, transformer and CNN builders, scenarios and mixes (numpy + pydantic only).

Conventions: an `OpTable` row is one execution of an operator on one chip; `count` says how often it
runs per step (per-layer operators: count = layers on the chip, `layer=True`). See ops.py and step.py.
"""

from dse.workloads.cnn import build_cnn_step
from dse.workloads.ops import OpBuilder, OpTable
from dse.workloads.precision import Precision, parse_precision
from dse.workloads.scenarios import Mix, MixEntry, Scenario, load_mix, load_scenario, mix_names, scenario_names
from dse.workloads.shapes import ModelShape, model_names
from dse.workloads.modelfile import load_model_shape
from dse.workloads.step import Step
from dse.workloads.transformer import build_llm_step, expected_experts_touched, mean_decode_kv_len

__all__ = ["OpBuilder", "OpTable", "Precision", "parse_precision", "ModelShape", "load_model_shape",
           "model_names", "Step", "build_llm_step", "build_cnn_step", "mean_decode_kv_len",
           "expected_experts_touched", "Scenario", "Mix", "MixEntry", "load_scenario", "load_mix",
           "scenario_names", "mix_names"]
