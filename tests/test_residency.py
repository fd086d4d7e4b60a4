"""Helper L (residency): `--chips` above the design is an error; SRAM residency is continuous in sram_mb."""

from __future__ import annotations

from typer.testing import CliRunner

from dse.cli import app


def test_chips_above_design_count_is_an_error_naming_both_numbers():
    res = CliRunner().invoke(app, ["evaluate", "H100-SXM", "--model", "Llama-3-8B", "--chips", "99"])
    assert res.exit_code == 2
    out = " ".join(res.output.split())  # rich wraps the error box
    assert "99" in out and "num_chips = 8" in out


def test_chips_within_design_count_still_runs():
    res = CliRunner().invoke(app, ["evaluate", "H100-SXM", "--model", "Llama-3-8B", "--chips", "2", "--json"])
    assert res.exit_code == 0, res.output
