"""A design file with `memory: none` and memory stacks is an error naming the field and the fix (issue 11):
the stacks would otherwise be silently ignored."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from dse.model.hardware import Design


def test_stacks_without_memory_are_an_error_naming_the_field_and_fix():
    with pytest.raises(ValidationError) as exc:
        Design.model_validate({"chip": {"memory": "none", "memory_stacks": 8, "sram_mb": 4000}})
    (err,) = exc.value.errors()
    assert err["loc"] == ("chip", "memory_stacks")
    assert "memory: none" in err["msg"] and "memory_stacks: 0" in err["msg"] and "hbm3e" in err["msg"]


def test_no_memory_with_zero_or_unset_stacks_and_memory_with_stacks_are_accepted():
    assert Design.model_validate({"chip": {"memory": "none", "memory_stacks": 0}}).chip.memory_stacks == 0
    # the knob's default is not the user's: not checked, and the design holds the 0 stacks it evaluates
    d = Design.model_validate({"chip": {"memory": "none"}})
    assert d.chip.memory_stacks == 0 and Design.from_flat(d.to_flat()) == d
    assert Design.model_validate({"chip": {"memory": "hbm3", "memory_stacks": 8}}).chip.memory_stacks == 8


def test_cli_evaluate_exits_2_with_file_line_and_field(tmp_path):
    f = tmp_path / "d.yaml"
    f.write_text("chip:\n  memory: none\n  memory_stacks: 8\n  sram_mb: 4000\nsystem: {num_chips: 1}\n")
    r = subprocess.run([sys.executable, "-m", "dse", "evaluate", str(f)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert f"{f}:3" in out and "chip.memory_stacks" in out and "memory_stacks: 0" in out
    assert "Traceback" not in out


def test_export_of_a_row_without_memory_writes_the_stacks_the_model_evaluated():
    from dse.study.export import row_design
    row = {"chip.memory": "none", "chip.memory_stacks": 5, "chip.sram_mb": 900.0}
    d = row_design(row, list(row), "t0", [])
    assert d.chip.memory == "none" and d.chip.memory_stacks == 0
