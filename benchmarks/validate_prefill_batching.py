"""How much of the large-batch error comes from the serving model's unbatched prefill?

dse.evaluate.mapping prices the prefill of a static batch of B prompts as B x TTFT(one prompt at batch 1):
every request re-streams the weights and pays every operator's fixed overhead. A batched prefill runs
ONE step at M = B x prompt tokens. This script prints, for every fixed-batch large_batch measurement,
the model's throughput as is and with the prefill priced as one batched step (same constants, same
decode), next to the measurement. It changes nothing in the model.

Run: /work/venv/bin/python benchmarks/validate_prefill_batching.py
"""

from __future__ import annotations

import numpy as np

from dse.model.calibration import load_calibration
from dse.evaluate.steps import Builders
from dse.evaluate.mapping import residency
from dse.model.perf import op_times
from dse.validate.measurements import load_measurements, select
from dse.validate.predict import _hw, _precision, model_shape, predict


def batched_prefill_s(m, cal, models) -> float:
    shape = model_shape(m.model, models)
    prec = _precision(m.precision)
    tp = m.tp or 1
    step = Builders.llm(shape, "prefill", m.batch, m.prompt_len, m.prompt_len, tp, prec)
    hw = _hw(m)
    kv = Builders.kv_bytes(shape, m.batch, m.prompt_len + m.output_len, tp, prec)
    wres, kres, _, resident = residency(step.weight_bytes_per_chip, kv, step.act_bytes_per_chip,
                                        hw.sram_bytes, hw.mem_bytes)
    t = op_times(step.ops, hw, cal, wres, kres, resident)
    return float((t.total[0] * step.ops.count).sum())


def main() -> None:
    models = load_measurements().models
    print(f"{'id':52s} {'measured':>9s} {'model':>9s} {'err':>7s} {'batched':>9s} {'err':>7s}")
    for m, split in select("all"):
        if m.metric != "tokens_per_s_per_chip" or m.batch is None:
            continue
        cal = load_calibration(m.software_class)
        now = predict(m, cal, models)
        tpot = m.num_chips and None
        # TPOT at the measured batch from the model, then the batched-prefill throughput
        from dse.validate.predict import _predict_llm

        tpot_row = m.model_copy(update={"metric": "tpot_ms", "unit": "ms"})
        tpot = _predict_llm(tpot_row, cal, models) / 1e3
        alt = m.batch * m.output_len / (batched_prefill_s(m, cal, models) + m.output_len * tpot) / m.num_chips
        print(f"{m.id:52s} {m.value:9.4g} {now:9.4g} {100 * (now / m.value - 1):+6.1f}% {alt:9.4g} "
              f"{100 * (alt / m.value - 1):+6.1f}%")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
