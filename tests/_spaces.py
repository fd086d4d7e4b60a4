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
