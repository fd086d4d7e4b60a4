"""dse from Python: load designs, evaluate them, run a small study, read its front.

Run: python examples/python_api.py [OUT_DIR]   (CI runs it: tests/test_python_api.py)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dse

REPO = Path(__file__).resolve().parents[1]


def main(out: Path) -> None:
    # 1. A catalog chip and a design of our own (any knob of dse.KNOBS; the rest take their defaults).
    h100 = dse.load_design("H100-SXM")
    sram_chip = dse.load_design({"name": "sram-heavy", "chip": {"sram_mb": 512, "memory": "hbm3e", "memory_stacks": 4}})

    # 2. One design on one scenario, then several designs on a mix in one vectorized call.
    local = dse.evaluate_design(h100, scenario="local_llm")
    print(f"H100-SXM local_llm: TPOT {local['local_llm.tpot_ms']:.2f} ms on {local['local_llm.chips_used']} chip(s)")
    cols = dse.evaluate_designs([h100, sram_chip, "A100-SXM-80GB"], mix="balanced")
    for name, thr, cost in zip(["H100-SXM", "sram-heavy", "A100-SXM-80GB"], cols["mix.throughput"],
                               cols["system_cost_usd"]):
        print(f"{name:14s} mix throughput {thr:6.3f} x reference, system cost ${cost:,.0f}")

    # 3. A study, in-process (serial) and small, then its run folder.
    run_dir = dse.run_study(REPO / "studies" / "quickstart.yaml", out=out, trials=200, serial=True)
    run = dse.load_run(run_dir)
    front = run.results.filter(run.front())
    print(f"{run.name}: {run.results.height} trials, {front.height} designs on the front, "
          f"hypervolume {run.hypervolume():.4g}")
    for o in run.objectives():
        info = dse.metric_info(o.metric, run.mix())  # unit, direction, label from the metric registry
        unit = info.unit if info is not None else "expression"
        print(f"objective {o.direction} {o.metric} [{unit}]: best on the front "
              f"{(front[o.metric].max() if o.maximize else front[o.metric].min()):.4g}")
    assert front.height > 0


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
