"""Calibration physics: what a fit may use."""

from __future__ import annotations

from dse.validate.calibrate import fit_rows
from dse.validate.measurements import load_measurements, select


def test_fits_never_use_loose_or_power_rows():
    rows = [m for m, _ in select("all")]
    kept = fit_rows(rows)
    assert kept and all(not m.loose and m.regime != "power" for m in kept)
    assert {m.id for m in rows} - {m.id for m in kept} == {m.id for m in rows if m.loose or m.regime == "power"}


def test_first_fp8_release_batch1_rows_are_loose_with_their_evidence():
    """TensorRT-LLM v0.5's batch-1 FP8 H100 rows contradict the same table's FP16 A100 rows and v0.6.1's
    FP8 rows; they are validated, not fitted (measurements.yaml notes give the ratios)."""
    by_id = {m.id: m for m in load_measurements().measurements}
    for rid in ("trtllm05-ttft-llama7b-h100-fp8-tp1-128", "trtllm05-ttft-llama70b-h100-fp8-tp4-128",
                "trtllm05-ttft-gptj-h100-fp8-128", "trtllm05-decode-gptj-h100-fp8-b1"):
        assert by_id[rid].loose and "first FP8 release" in by_id[rid].notes, rid
    # the compute-bound rows of the same release agree with the hardware: they stay fitted
    for rid in ("trtllm05-ttft-llama7b-h100-fp8-tp1-2048", "trtllm05-ttft-llama7b-a100-fp16-tp1-128"):
        assert not by_id[rid].loose, rid
