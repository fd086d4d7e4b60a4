"""Scenarios and mixes: built-ins, inline definitions, YAML files, errors that name the field."""

import pytest

from dse.errors import ConfigError, DseUserError
from dse.workloads.scenarios import Mix, Scenario, load_mix, load_scenario, mix_names, scenario_names


def test_builtin_scenarios():
    assert {"local_llm", "datacenter_llm", "vision_cnn"} <= set(scenario_names())
    for name in scenario_names():
        sc = load_scenario(name)
        assert sc.name == name
    local = load_scenario("local_llm")
    assert local.model.name == "Llama-3-8B" and local.batch == 1 and local.max_chips == 1
    assert local.precision.weight_bits == 4 and local.precision.act_bits == 16
    assert local.precision.compute_precision == "bf16" and local.goal == "latency"
    dc = load_scenario("datacenter_llm")
    assert dc.model.name == "Llama-3-70B" and dc.max_batch == 256 and dc.fixed_batch is None
    assert dc.tpot_ms == 50 and dc.precision.compute_precision == "fp8"
    assert dc.phases == ("prefill", "decode") and dc.context_len == dc.prompt_len + dc.output_len
    vis = load_scenario("vision_cnn")
    assert vis.model.name == "ResNet-50" and vis.kind == "cnn" and vis.latency_ms == 10
    assert (vis.min_batch, vis.max_batch) == (1, 256) and vis.phases == ("inference",)


def test_builtin_mixes():
    assert {"local", "datacenter", "vision", "balanced"} <= set(mix_names())
    bal = load_mix("balanced")
    assert [e.scenario.name for e in bal.scenarios] == ["local_llm", "datacenter_llm", "vision_cnn"]
    assert bal.reference_design == "H100-SXM"
    assert load_mix("datacenter_llm").scenarios[0].scenario.name == "datacenter_llm"
    hash(bal)


def test_inline_mix_with_inline_scenario():
    mix = load_mix({"name": "m", "scenarios": [
        {"scenario": {"name": "tiny", "model": "llama-2-7b", "kind": "llm", "prompt_len": 64,
                      "output_len": 32, "precision": "int8+2:4", "batch": {"max": 8}}, "weight": 2},
        "vision_cnn"]})
    tiny = mix.scenario("tiny")
    assert tiny.model.name == "Llama-2-7B" and tiny.precision.sparse and tiny.max_batch == 8
    assert [e.weight for e in mix.scenarios] == [2, 1]
    assert isinstance(mix, Mix) and isinstance(tiny, Scenario)


def test_invalid_inline_scenario_names_field():
    with pytest.raises(ConfigError) as err:
        load_scenario({"name": "x", "model": "Llama-3-8B", "kind": "llm", "prompt_len": 10,
                       "output_len": 5, "tpot_ms": -1, "batch": {"maxx": 3}})
    text = str(err.value)
    assert "tpot_ms" in text and "batch.maxx" in text and "did you mean `max`" in text
    with pytest.raises(ConfigError, match=r"model: unknown model 'Lama-3-8B' \(did you mean 'Llama-3-8B'"):
        load_scenario({"name": "x", "model": "Lama-3-8B", "kind": "llm", "prompt_len": 1, "output_len": 1})
    with pytest.raises(ConfigError, match="ResNet-50 is a cnn model"):
        load_scenario({"name": "x", "model": "ResNet-50", "kind": "llm"})
    with pytest.raises(ConfigError, match="precision.act_bitz"):
        load_scenario({"name": "x", "model": "ResNet-50", "kind": "cnn", "precision": {"act_bitz": 8}})


def test_invalid_mix_and_unknown_names():
    with pytest.raises(ConfigError, match=r"scenarios.0.scenario: unknown scenario 'local_lm'"):
        load_mix({"name": "m", "scenarios": [{"scenario": "local_lm", "weight": 2}]})
    with pytest.raises(ConfigError, match="weight"):
        load_mix({"name": "m", "scenarios": {"local_llm": 0}})
    with pytest.raises(DseUserError, match="did you mean 'balanced'"):
        load_mix("balancd")
    with pytest.raises(DseUserError, match="did you mean 'vision_cnn'"):
        load_scenario("vision_cn")


def test_mix_from_yaml_file(tmp_path):
    f = tmp_path / "mix.yaml"
    f.write_text("name: mine\nreference_design: A100-SXM\nscenarios:\n  local_llm: 3\n  vision_cnn: 1\n")
    mix = load_mix(str(f))
    assert mix.name == "mine" and mix.reference_design == "A100-SXM"
    assert [(e.scenario.name, e.weight) for e in mix.scenarios] == [("local_llm", 3), ("vision_cnn", 1)]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nscenarios:\n  - scenario: {name: s, model: Llama-3-8B, kind: llm,\n"
                   "               prompt_len: 8, output_len: 8, goal: fastest}\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4:\d+: scenarios.0.scenario.goal"):
        load_mix(str(bad))


def test_mix_files_and_round_trip_of_user_models(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    from dse.workloads.scenarios import Mix, mix_files

    assert "moe" in mix_files()
    moe = load_mix("moe")
    assert moe.name == "moe" and moe.scenario("gpt_oss").precision.experts == "mxfp4"
    assert moe.scenario("deepseek_v3").model.is_mla
    # a mix with a model from a file, given inline with a base folder, dumps self-contained
    hf = Path(__file__).parent / "data" / "hf"
    inline = {"scenarios": [{"scenario": {"name": "q", "model": "qwen3-30b-a3b/config.json", "prompt_len": 16,
                                          "output_len": 4}}]}
    mix = load_mix(inline, base_dir=hf)
    dumped = json.loads(json.dumps(mix.model_dump(mode="json")))
    assert isinstance(dumped["scenarios"][0]["scenario"]["model"], dict)
    assert Mix.model_validate(dumped) == mix
    res = subprocess.run([sys.executable, "-m", "dse", "mixes", "--json"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["moe"]["scenarios"] == {"deepseek_v3": 1.0, "gpt_oss": 1.0, "qwen3_moe": 1.0}
    res = subprocess.run([sys.executable, "-m", "dse", "scenarios", "--json"], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0 and json.loads(res.stdout)["local_llm"]["model"] == "Llama-3-8B"


def test_scenario_routing_skew_overrides_the_model():
    sc = load_scenario({"name": "hot", "model": "Mixtral-8x7B", "prompt_len": 8, "output_len": 2, "routing_skew": 1.0})
    assert sc.model.routing_skew == 1.0 and sc.model.name == "Mixtral-8x7B"
    assert load_scenario(sc.model_dump()) == sc
    with pytest.raises(Exception, match="routing_skew: Llama-3-8B is not a mixture-of-experts model"):
        load_scenario({"name": "x", "model": "Llama-3-8B", "prompt_len": 8, "output_len": 2, "routing_skew": 1.0})
