"""Energy per operation by operand width (technology `mac_energy`): one rule from Horowitz's 45 nm figures gives every
node's per-precision energy from its anchor (fp16) figure."""

from __future__ import annotations

import pytest

from dse.errors import ConfigError
from dse.model.technology import default_technology, load_technology

TECH = default_technology()

# Horowitz ISSCC 2014, 45 nm (dse_and_cost.md §3.11), by hand: multiplier × (bits / reference bits)² + accumulator add
FP16 = 1.1 + 0.9                     # fp16 mult + fp32 add
BY_HAND = {
    "fp16": 1.0,
    "bf16": (1.1 * (8 / 11) ** 2 + 0.9) / FP16,   # 0.741
    "fp8": (1.1 * (4 / 11) ** 2 + 0.9) / FP16,    # 0.523: E4M3, 4 significand bits
    "int8": (0.2 + 0.1) / FP16,                   # 0.15: 8-bit mult + int32 add
    "int4": (0.2 * (4 / 8) ** 2 + 0.1) / FP16,    # 0.075
    "fp4": (0.2 * (4 / 8) ** 2 + 0.1) / FP16,     # E2M1 values are 4-bit integers over 2: as int4
}


def test_ratios_by_hand():
    rule = TECH.mac_energy
    for p, r in BY_HAND.items():
        assert rule.ratio(p) == pytest.approx(r, rel=1e-12), p
    assert rule.ratio("bf16") == pytest.approx(0.7409, abs=1e-4) and rule.ratio("fp8") == pytest.approx(0.5227, abs=1e-4)


def test_the_rule_reproduces_its_sources_checks():
    """The exponent 2 predicts Horowitz's int32 mult (3.1 pJ) from the 8-bit one within 4 %, and the int8 MAC (0.3 pJ)
    is Timeloop/Accelergy's 45 nm 8-bit intmac (0.315-0.32 pJ, dse_and_cost.md §3.11) within 7 %."""
    rule = TECH.mac_energy
    int_mult = rule.multipliers["int"]
    assert int_mult.pj * (32 / int_mult.bits) ** rule.multiplier_exponent == pytest.approx(3.1, rel=0.04)
    assert rule.arithmetic_pj("int8") == pytest.approx(0.3175, rel=0.07)


def test_every_node_follows_its_anchor():
    for name, node in TECH.process_nodes.items():
        e = node.energy_pj_per_flop
        assert set(e) == set(TECH.precision_speedup), name
        for p in e:
            assert e[p] == pytest.approx(e["fp16"] * BY_HAND[p], rel=1e-12), (name, p)
    assert TECH.process_nodes["n7"].energy_pj_per_flop["int8"] == pytest.approx(0.65 * 0.15)


def test_narrower_never_costs_more():
    """Within a multiplier kind, fewer significand bits never cost more; an integer MAC never costs more than a
    float MAC of as many bits."""
    rule = TECH.mac_energy
    by_kind: dict[str, list[tuple[int, float]]] = {}
    for p, spec in rule.precisions.items():
        by_kind.setdefault(spec.multiplier, []).append((spec.bits, rule.arithmetic_pj(p)))
    for pairs in by_kind.values():
        pairs.sort()
        assert all(b[1] >= a[1] for a, b in zip(pairs, pairs[1:]))
    assert rule.arithmetic_pj("int8") < rule.arithmetic_pj("bf16")  # 8 significand bits each


def test_a_stated_precision_wins_and_the_anchor_carries_the_rest():
    tech = load_technology({"process_nodes": {"n7": {"energy_pj_per_flop": {"int8": 0.2}}}})
    e = tech.process_nodes["n7"].energy_pj_per_flop
    assert e["int8"] == 0.2 and e["fp8"] == pytest.approx(0.65 * BY_HAND["fp8"])
    tech = load_technology({"process_nodes": {"n7": {"energy_pj_per_flop": {"fp16": 0.5}}}})
    assert tech.process_nodes["n7"].energy_pj_per_flop["bf16"] == pytest.approx(0.5 * BY_HAND["bf16"])
    # the rule itself may be overridden: a linear multiplier
    tech = load_technology({"mac_energy": {"multiplier_exponent": 1.0}})
    assert tech.mac_energy.ratio("fp8") == pytest.approx((1.1 * 4 / 11 + 0.9) / FP16)
    assert tech.process_nodes["n5"].energy_pj_per_flop["fp8"] == pytest.approx(0.45 * (1.1 * 4 / 11 + 0.9) / FP16)


@pytest.mark.parametrize("override, words", [
    ({"mac_energy": {"anchor": "fp64"}}, "anchor"),
    ({"mac_energy": {"precisions": {"fp8": {"accumulator": "fp23"}}}}, "accumulator"),
    ({"mac_energy": {"anchor": "bf16"}}, "needs its bf16"),   # the nodes state fp16 only
])
def test_bad_rules_are_errors(override, words):
    with pytest.raises(ConfigError, match=words):
        load_technology(override)
