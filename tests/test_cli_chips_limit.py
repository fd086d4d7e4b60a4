"""`dse evaluate --chips N` limits every scenario of a `--scenario` or `--mix` to N chips (it used to apply to
ad-hoc `--model` scenarios only, and was silently ignored otherwise)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dse.cli import app
from dse.workloads.scenarios import load_mix, load_scenario, mix_of, with_max_chips

RUNNER = CliRunner()


def _metrics(*argv: str) -> dict:
    res = RUNNER.invoke(app, ["evaluate", *argv, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)["metrics"]


def test_chips_limits_a_named_scenario():
    whole = _metrics("H100-SXM", "--scenario", "vision_cnn")
    one = _metrics("H100-SXM", "--scenario", "vision_cnn", "--chips", "1")
    assert whole["vision_cnn.chips_used"] == 8
    assert one["vision_cnn.chips_used"] == 1
    # ResNet-50 is data parallel: one chip of eight gives an eighth of the images (same batch, same step)
    assert one["vision_cnn.images_per_s"] == pytest.approx(whole["vision_cnn.images_per_s"] / 8, rel=1e-9)


def test_chips_limits_every_scenario_of_a_mix():
    m = _metrics("H100-SXM", "--mix", "balanced", "--chips", "2")
    used = {k: v for k, v in m.items() if k.endswith(".chips_used")}
    assert used and max(used.values()) <= 2


def test_with_max_chips_keeps_a_smaller_own_limit():
    s = load_scenario("local_llm").model_copy(update={"max_chips": 1})
    mix = with_max_chips(mix_of([s, load_scenario("vision_cnn")]), 4)
    assert [e.scenario.max_chips for e in mix.scenarios] == [1, 4]
    assert with_max_chips(load_mix("balanced"), None) == load_mix("balanced")
