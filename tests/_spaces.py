"""Small search spaces shared by the study tests (fast to evaluate, every knob kind)."""

SPACE = {
    "name": "tiny",
    "params": {
        "chip.process_node": {"choices": ["n7", "n5"]},
        "chip.cores": {"low": 8, "high": 128, "log": True, "type": "int"},
        "chip.clock_ghz": {"low": 0.8, "high": 2.0},
        "chip.sram_mb": {"low": 16, "high": 256, "log": True, "type": "float"},
        "chip.memory": {"choices": ["hbm3", "lpddr5x", "none"]},
        "chip.memory_stacks": {"low": 1, "high": 6, "type": "int", "when": "chip.memory != 'none'", "inactive": 0},
    },
    "fixed": {"system.num_chips": 1, "chip.packaging": "cowos_s"},
}


def study_file(tmp_path, name: str = "t", **over):
    """A small two-objective study on SPACE (serial, NSGA-II), written to `tmp_path/NAME.yaml`; `over`
    replaces top-level fields."""
    import yaml

    body = {
        "name": name, "space": SPACE, "mix": "local",
        "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                       {"metric": "chip_cost_usd", "direction": "minimize"}],
        "constraints": ["tdp_w <= 400"],
        "sampler": {"kind": "nsga2", "population_size": 16},
        "budget": {"trials": 50}, "seed": 11, "execution": {"backend": "serial"},
    }
    body.update(over)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path
