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


# the tiny space with the memory fixed (HBM3): the Ray tests' space
RAY_SPACE = {
    "name": "tiny",
    "params": {
        "chip.process_node": {"choices": ["n7", "n5", "n3"]},
        "chip.cores": {"low": 8, "high": 128, "log": True, "type": "int"},
        "chip.clock_ghz": {"low": 0.8, "high": 2.0},
        "chip.sram_mb": {"low": 16, "high": 256, "log": True, "type": "float"},
    },
    "fixed": {"system.num_chips": 1, "chip.packaging": "cowos_s", "chip.memory": "hbm3"},
}


def study_body(name: str, space: dict | None = None, **over) -> dict:
    """A small two-objective NSGA-II study on `space` (default SPACE) over the `local` mix; `over` replaces
    top-level fields."""
    body = {
        "name": name, "space": space or SPACE, "mix": "local",
        "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                       {"metric": "chip_cost_usd", "direction": "minimize"}],
        "sampler": {"kind": "nsga2", "population_size": 16},
    }
    body.update(over)
    return body


def ray_study_body(name: str, **over) -> dict:
    """`study_body` on RAY_SPACE, every batch sent to Ray."""
    return study_body(name, RAY_SPACE, **{"budget": {"trials": 48}, "seed": 7,
                                          "execution": {"backend": "ray", "inline_below": 0}, **over})


def write_study(tmp_path, body: dict):
    """`body` written to `tmp_path/NAME.yaml`; returns the path."""
    import yaml

    path = tmp_path / f"{body['name']}.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def study_file(tmp_path, name: str = "t", **over):
    """A small serial study on SPACE (`study_body` with a TDP constraint), written to `tmp_path/NAME.yaml`."""
    return write_study(tmp_path, study_body(name, **{
        "constraints": ["tdp_w <= 400"], "budget": {"trials": 50}, "seed": 11,
        "execution": {"backend": "serial"}, **over}))
