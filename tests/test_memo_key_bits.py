"""The compiled LLM mapping packs a memo column in MEMO_KEY_BITS bits (`step_kernel._sort_rows`): a plan table with
more columns is refused with a clear error before the kernel runs, not sorted into garbage."""

from types import SimpleNamespace

import numpy as np
import pytest

from dse.evaluate import mapping


def test_a_table_past_the_packed_width_is_refused_before_the_kernel():
    t = SimpleNamespace(steps=tuple(range(10)), cls_step=np.arange(5))  # 3 x 10 + 5 = 35 memo columns
    hw = SimpleNamespace(n=1)
    with pytest.raises(ValueError, match=r"10 steps and 5 footprint classes .* \(2\^5\); DSE_KERNEL=numpy"):
        mapping._choose_compiled(SimpleNamespace(MEMO_KEY_BITS=5), t, hw, None, None, None, None, None, 0, None, None)
    # 35 < 2^6: past the check (the fake kernel module has nothing else to give)
    with pytest.raises(AttributeError):
        mapping._choose_compiled(SimpleNamespace(MEMO_KEY_BITS=6), t, hw, None, None, None, None, None, 0, None, None)

