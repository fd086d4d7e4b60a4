"""The knob registry (dse.model.knobs) and what is derived from it: the pydantic design model, the
DesignArrays columns and range checks, the search-space bound check, the labels and the JSON Schema."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import jsonschema
import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from dse.catalog import CATALOG_FILE, CATALOG_ONLY_KEYS, list_catalog, load_catalog_design
from dse.errors import ConfigError
from dse.model.arrays import DesignArrays
from dse.model.hardware import ChipDesign, Design, SystemDesign
from dse.model.knobs import BY_NAME, KNOBS, NONE, RULES, SECTIONS, TOPOLOGIES, TOPOLOGY_CODE, Knob, \
    design_json_schema, knobs_of
from dse.model.technology import default_technology
from dse.report.labels import title_of
from dse.study.space import load_space

TECH = default_technology()
MODELS = {"chip": ChipDesign, "system": SystemDesign}


def other_value(k: Knob) -> Any:
    """A valid value of `k` different from its default (every other knob at its default)."""
    if k.type is bool:
        return not k.default
    if k.type is list:
        return ["bf16", "int4"]
    if k.type is dict:
        return {"int8": 3.0}
    if k.type is str:
        names = [x for x in k.allowed(TECH) if x != k.default]
        return names[-1]
    lo, hi = k.int_bounds() if k.type is int else (k.low, k.high)
    v = 2 if k.default is None else k.default + 1
    if hi is not None and v > hi:
        v = k.default - 1
    if k.type is float:
        v = float(v) + 0.5
    assert k.in_bounds(np.array([float(v)]))[0], (k.name, v)
    return v


def outside(k: Knob) -> list[float]:
    """Values just outside the registry bounds of a numeric knob."""
    out = []
    if k.type is int:
        lo, hi = k.int_bounds()
        out += [lo - 1] if np.isfinite(lo) else []
        out += [hi + 1] if np.isfinite(hi) else []
    else:
        if k.low is not None:
            out.append(k.low if k.low_open else k.low - 1.0)
        if k.high is not None:
            out.append(k.high if k.high_open else k.high * 1.5)
    return out


def inside(k: Knob) -> list[float]:
    """The extreme values the bounds still allow."""
    if k.type is int:
        return [x for x in k.int_bounds() if np.isfinite(x)]
    return [x for x, is_open in ((k.low, k.low_open), (k.high, k.high_open)) if x is not None and not is_open]


NUMERIC = [k for k in KNOBS if k.numeric]


def test_registry_is_the_design_model():
    for sec in SECTIONS:
        assert list(MODELS[sec].model_fields) == [k.key for k in knobs_of(sec)]
    for k in KNOBS:
        f = MODELS[k.section].model_fields[k.key]
        assert f.get_default(call_default_factory=True) == k.default, k.name
        assert f.title == k.label and f.description == k.description
    dict_knobs = {k.name for k in KNOBS if k.type is dict}  # flattened per entry; empty by default
    assert set(BY_NAME) - dict_knobs == set(Design().to_flat()) - {"name", "tags"}


@pytest.mark.parametrize("k", KNOBS, ids=lambda k: k.name)
def test_every_knob_round_trips_design_flat_arrays(k):
    value = other_value(k)
    flat = {k.name: value}
    if k.name == "chip.memory_stacks" and value == 0:
        flat["chip.memory"] = NONE
    d = Design.from_flat(flat)
    assert getattr(getattr(d, k.section), k.key) == value
    back = d.to_flat()
    if k.type is dict:
        assert all(back[f"{k.name}.{p}"] == v for p, v in value.items())
    else:
        assert back[k.name] == value
    assert Design.from_flat(back) == d
    arr = DesignArrays.from_designs([d], TECH)
    assert arr.valid[0], arr.reason[0]
    if k.numeric or k.type is bool:
        assert arr.knobs[k.name][0] == value
    elif k.type is str:
        assert arr.names[k.name][0] == value
    elif k.type is list:
        assert sorted(p for p, v in arr.peak_tflops.items() if v[0] > 0) == sorted(value)
    else:
        assert all(arr.speedup[p][0] == v for p, v in value.items())


@pytest.mark.parametrize("k", NUMERIC, ids=lambda k: k.name)
def test_bounds_reject_in_pydantic_and_flag_in_arrays(k):
    assert outside(k), f"{k.name} has no bounds"
    for v in outside(k):
        typed = int(v) if k.type is int else v
        with pytest.raises(ValidationError) as ei:
            MODELS[k.section](**{k.key: typed})
        assert ei.value.errors()[0]["loc"] == (k.key,)
        arr = DesignArrays.from_columns({k.name: [v]}, TECH)
        assert not arr.valid[0]
        assert f"{k.name} must be {k.rule()} (got {v:g})" in arr.reason[0]
    for v in inside(k):
        # 0 stacks need memory: none, more need a memory (dse.model.knobs RULES, hardware.ChipDesign)
        extra = {"chip.memory": NONE} if k.name == "chip.memory_stacks" and v == 0 else {}
        typed = int(v) if k.type is int else v
        Design.from_flat({k.name: typed, **extra})  # accepted
        arr = DesignArrays.from_columns({k.name: [v], **{x: [y] for x, y in extra.items()}}, TECH)
        if k.name == "chip.clock_ghz" and not arr.valid[0]:
            # within the knob's bounds, past what the default node reaches at its highest supply: a physical
            # rule of its own (tests/test_clock_reach.py), not the knob's bound
            assert "reaches at its highest supply" in arr.reason[0] and "must be" not in arr.reason[0]
            continue
        assert arr.valid[0], arr.reason[0]
        assert np.isfinite(arr.macs).all() and np.isfinite(arr.peak_tflops_headline).all()


def test_integer_knobs_reject_fractions_and_rule_text():
    assert BY_NAME["chip.cores"].rule() == "an integer in [1, 10,000,000]"
    assert BY_NAME["chip.clock_ghz"].rule() == "in (0, 10] GHz"
    assert BY_NAME["chip.dies"].rule() == "an integer in [1, 64] (or unset)"
    arr = DesignArrays.from_columns({"chip.cores": [8.5]}, TECH)
    assert "chip.cores must be an integer" in arr.reason[0]
    with pytest.raises(ValidationError):
        ChipDesign(cores=8.5)


@pytest.mark.parametrize("flat", [
    {"chip.memory": "hbm3", "chip.memory_stacks": 0},
    {"chip.cores": 4, "chip.dies": 8},
    {"chip.dies": 2, "chip.allow_chiplets": False},
], ids=lambda f: ",".join(f))
def test_cross_knob_rules_same_in_pydantic_and_arrays(flat):
    (rule,) = [r for r in RULES if set(r.reads) == set(flat)]
    values = {**{x: BY_NAME[x].default for x in rule.reads}, **flat}
    msg = rule.message(values)
    with pytest.raises(ValidationError) as ei:
        Design.from_flat(flat)
    err = ei.value.errors()[0]
    assert err["loc"] == tuple(rule.knob.split(".")) and msg in err["msg"]
    arr = DesignArrays.from_columns({x: [v] for x, v in flat.items()}, TECH)
    assert not arr.valid[0] and f"{rule.knob}: {msg}" in arr.reason[0]
    ok = DesignArrays.from_columns({x: [BY_NAME[x].default if BY_NAME[x].default is not None else np.nan]
                                    for x in flat}, TECH)
    assert ok.valid[0], ok.reason[0]


def test_topology_codes_follow_the_registry():
    arr = DesignArrays.from_columns({"system.topology": list(TOPOLOGIES)}, TECH)
    assert arr.topology.tolist() == [TOPOLOGY_CODE[t] for t in TOPOLOGIES]
    assert BY_NAME["system.topology"].choices == TOPOLOGIES


def test_take_keeps_every_column_aligned():
    arr = DesignArrays.from_columns({"chip.cores": [8, 16, 32], "chip.memory": ["hbm3", NONE, "hbm3"],
                                     "chip.memory_stacks": [2, 0, 4]}, TECH)
    sub = arr.take(np.array([False, True, True]))
    assert sub.n == 2 and sub.cores.tolist() == [16, 32] and sub.knobs["chip.cores"].tolist() == [16, 32]
    assert sub.names["chip.memory"].tolist() == [NONE, "hbm3"] and sub.mem_gb[0] == 0
    assert all(v.shape == (2,) for v in sub.peak_tflops.values())
    assert not hasattr(DesignArrays, "__getattr__")


def test_knob_labels_come_from_the_registry():
    for k in KNOBS:
        assert title_of(k.name) == k.title
    assert title_of("chip.sram_mb") == "SRAM (MB)" and title_of("system.num_chips") == "Chips (count)"


# ------------------------------------------------------------------------------ search spaces
def test_space_range_outside_registry_bounds_names_file_line_field(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: s\nparams:\n  chip.cores: {low: 1, high: 64}\n  chip.clock_ghz: {low: 0.5, high: 20}\n"
                 "  chip.dies: {low: 1, high: 65, type: int}\n")
    with pytest.raises(ConfigError) as ei:
        load_space(p)
    probs = ei.value.problems
    assert len(probs) == 2, probs
    assert probs[0].startswith(f"{p}:4:") and "params.chip.clock_ghz.high" in probs[0] and "got 20" in probs[0]
    assert probs[1].startswith(f"{p}:5:") and "params.chip.dies.high" in probs[1] and "64" in probs[1]


def test_space_inside_registry_bounds_loads(tmp_path):
    p = tmp_path / "s.yaml"
    hi = BY_NAME["chip.clock_ghz"].high
    p.write_text(f"name: s\nparams:\n  chip.clock_ghz: {{low: 0.5, high: {hi}}}\n")
    assert load_space(p).knobs["chip.clock_ghz"].dist.high == hi


# ------------------------------------------------------------------------------ JSON Schema
SCHEMA = design_json_schema(TECH)


def test_schema_structure_matches_registry():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    for sec in SECTIONS:
        props = SCHEMA["properties"][sec]["properties"]
        assert list(props) == [k.key for k in knobs_of(sec)]
        for k in knobs_of(sec):
            s = props[k.key]
            assert s["title"] == k.title and s["default"] == k.default
            if k.numeric:
                assert s.get("exclusiveMinimum" if k.low_open else "minimum") == k.low
                assert s.get("exclusiveMaximum" if k.high_open else "maximum") == k.high
            if k.type is str:
                assert s["enum"][: len(k.allowed(TECH))] == k.allowed(TECH)


def catalog_raw() -> dict[str, dict]:
    raw = yaml.safe_load(CATALOG_FILE.read_text())
    return {name: {k: v for k, v in entry.items() if k not in CATALOG_ONLY_KEYS} for name, entry in raw.items()}


@pytest.mark.parametrize("name", list_catalog())
def test_schema_validates_catalog_and_exported_designs(name):
    raw = {"name": name, **catalog_raw()[name]}
    jsonschema.validate(raw, SCHEMA)
    d = load_catalog_design(name)
    jsonschema.validate(d.model_dump(mode="json"), SCHEMA)  # every field, unset ones as null
    jsonschema.validate(d.model_dump(mode="json", exclude_none=True), SCHEMA)  # what `dse export` writes
    jsonschema.validate(Design.from_flat(d.to_flat()).model_dump(mode="json"), SCHEMA)  # via the flat columns


@pytest.mark.parametrize("path,value", [
    (("chip", "cores"), 0), (("chip", "cores"), True), (("chip", "clock_ghz"), 11), (("chip", "memory"), "hbm9"),
    (("chip", "sram_mbb"), 3), (("system", "topology"), "mesh"), (("chip", "dies"), 65),
    (("chip", "precisions"), []), (("chip", "precisions"), ["fp7"]), (("chip", "precision_speedup"), {"int8": 0}),
], ids=lambda x: str(x))
def test_schema_rejects_what_the_model_rejects(path, value):
    d = copy.deepcopy(Design().model_dump(mode="json"))
    d[path[0]][path[1]] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(d, SCHEMA)
    with pytest.raises(ValidationError):
        Design.model_validate(d)


def test_dse_schema_design_cli():
    r = subprocess.run([sys.executable, "-m", "dse", "schema", "design"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    printed = json.loads(r.stdout)
    assert printed.pop("$id") == "design.schema.json"
    assert printed == json.loads(json.dumps(SCHEMA, ensure_ascii=False))
    bad = subprocess.run([sys.executable, "-m", "dse", "schema", "desing"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "did you mean 'design'" in bad.stderr and "Traceback" not in bad.stderr


def test_dse_knobs_cli_lists_the_registry():
    r = subprocess.run([sys.executable, "-m", "dse", "knobs", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert list(rows) == [k.name for k in KNOBS]
    assert rows["chip.clock_ghz"]["bounds"] == "in (0, 10] GHz" and rows["chip.clock_ghz"]["unit"] == "GHz"
    assert rows["chip.memory"]["allowed"][-1] == NONE and "hbm3e" in rows["chip.memory"]["allowed"]
    assert rows["system.topology"]["allowed"] == list(TOPOLOGIES)


def test_demo_results_use_registry_knobs_within_bounds():
    from dse.report.demo import synthetic_results

    df = synthetic_results(300, seed=1)
    knob_cols = [c for c in df.columns if c.split(".", 1)[0] in SECTIONS]
    assert knob_cols and set(knob_cols) <= set(BY_NAME)
    arr = DesignArrays.from_columns({c: df[c].to_numpy() for c in knob_cols}, TECH)
    assert arr.valid.all(), arr.reason[~arr.valid][:3]


def test_space_when_is_type_checked_with_registry_kinds(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("name: s\nparams:\n  chip.memory: {choices: [hbm3, none]}\n"
                 "  chip.memory_stacks: {low: 1, high: 4, when: \"chip.memory > 3\", inactive: 0}\n")
    with pytest.raises(ConfigError) as ei:
        load_space(p)
    (prob,) = ei.value.problems
    assert prob.startswith(f"{p}:4:") and "params.chip.memory_stacks.when" in prob and "category" in prob
    p.write_text("name: s\nparams:\n  chip.memory: {choices: [hbm3, none]}\n"
                 "  chip.memory_stacks: {low: 1, high: 4, when: \"chip.memory != 'none'\", inactive: 0}\n")
    assert load_space(p).is_active("chip.memory_stacks", {"chip.memory": "hbm3"})


def test_resource_knobs_are_numeric_counts_or_capacities():
    """The registry's resource knobs (more of one buys hardware) are what the cliff hunter and the cost tests
    step up: each is a numeric knob with a lower bound and a unit, and the chip's MACs, SRAM and memory are
    among them."""
    from dse.model.knobs import BY_NAME, RESOURCE_KNOBS

    assert RESOURCE_KNOBS and len(set(RESOURCE_KNOBS)) == len(RESOURCE_KNOBS)
    for name in RESOURCE_KNOBS:
        k = BY_NAME[name]
        assert k.type in (int, float) and k.low is not None and k.low >= 0 and k.unit, name
    assert {"chip.cores", "chip.sram_mb", "chip.memory_stacks"} <= set(RESOURCE_KNOBS)
    assert not BY_NAME["chip.clock_ghz"].resource  # a faster clock is not more hardware (power may rise or fall)
