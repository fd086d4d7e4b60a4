"""The raw-columns part format (`.dcol`, dse.runs.colpart): what is written reads back as the frame polars
builds from the same columns; a cut file reads as damaged; a column it cannot hold is refused."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from dse.errors import DseUserError
from dse.runs.colpart import Coded, ColumnsError, encode_columns, frame_of, read_columns, read_rows
from dse.runs.writer import PartStore


def _columns(n: int, rng: np.random.Generator) -> dict:
    return {
        "trial": np.arange(n, dtype=np.int64),
        "x": rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, n),
        "nan": np.where(rng.random(n) < 0.5, np.nan, np.inf),
        "i32": rng.integers(-5, 5, n).astype(np.int32),
        "u8": rng.integers(0, 255, n).astype(np.uint8),
        "flag": rng.random(n) < 0.5,
        "when": np.full(n, np.datetime64("2026-01-02T03:04:05.678901", "us")),
        "state": ["COMPLETE" if f else "FAIL" for f in rng.random(n) < 0.7],
        "knob": np.array(["n7", "n5", "a'\"b\\ü"])[rng.integers(0, 3, n)],
        "lists": np.array([["bf16", "fp8"], ["fp8"], []], dtype=object)[rng.integers(0, 3, n)],
        "maybe": [None if i % 3 else "x" for i in range(n)],
        "none": [None] * n,
        "matrix": rng.random((n, 3)),
    }


@pytest.mark.parametrize("n", [1, 7, 100])
def test_columns_read_back_as_polars_builds_them(n):
    rng = np.random.default_rng(n)
    data = _columns(n, rng)
    blob = encode_columns(data)
    back = read_columns(blob)
    want = pl.DataFrame([pl.Series(k, v.tolist() if isinstance(v, np.ndarray) and v.dtype == object else v,
                                   dtype=pl.String if k in ("maybe", "none") else None, strict=False)
                         for k, v in data.items()])
    assert back.schema == want.schema and back.equals(want)
    assert read_rows(blob) == n
    assert read_columns(blob, ["state", "trial"]).columns == ["trial", "state"]  # the file's order
    # generations one after the other: as their parts read back and concatenated
    other = _columns(3, rng)
    assert frame_of([data, other]).equals(pl.concat([back, read_columns(encode_columns(other))]))


def test_a_cut_or_odd_file_is_damaged_and_odd_columns_are_refused(tmp_path):
    data = _columns(10, np.random.default_rng(0))
    blob = encode_columns(data)
    for cut in (blob[: len(blob) // 2], blob[:-1], blob[:20], b""):
        with pytest.raises(ColumnsError):
            read_columns(cut)
    with pytest.raises(ColumnsError):
        encode_columns({"a": np.arange(3), "b": np.arange(4)})  # not one length
    with pytest.raises(ColumnsError):
        encode_columns({"a": np.array([object(), 1], dtype=object)})  # not JSON-plain
    store = PartStore(tmp_path / "r", fmt="dcol")
    store.write_columns(0, data)  # a record of the part log
    store.write(1, pl.DataFrame({"a": [1, None]}))  # a null: the frame goes as an Arrow stream
    assert [p.name for p in store.paths()] == ["part-000001.arrows"] and store.indices() == [0, 1]
    store.write(1, pl.DataFrame({"a": [1, 2]}))  # rewritten: the other format's file goes
    assert store.paths() == [] and store.indices() == [0, 1]
    assert not (tmp_path / "r" / "parts" / "part-000001.arrows").exists()
    store.write(1, pl.DataFrame({"a": [1, None]}))  # and back: the log's record superseded (a tombstone)
    assert [p.name for p in store.paths()] == ["part-000001.arrows"] and store.read(1)["a"].to_list() == [1, None]
    store.close()
    again = PartStore(tmp_path / "r", create=False)
    assert again.indices() == [0, 1] and again.read(1)["a"].to_list() == [1, None] and again.read(0).height == 10
    p = tmp_path / "r" / "parts" / "part-000000.dcol"  # an older run's file per generation: still read
    p.write_bytes(blob)
    (tmp_path / "r" / "parts" / "generations.dlog").unlink()
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(DseUserError, match="part-000000.dcol: damaged part"):
        PartStore(tmp_path / "r", create=False).read(0)


def test_coded_columns_are_their_values():
    """A column given as its dictionary (`Coded`) is stored and merged as the column of its values."""
    codes = np.array([1, 0, 1, 2], dtype=np.int32)
    coded = {"s": Coded(["a", "b", "ü\"x"], codes), "t": np.arange(4)}
    plain = {"s": ["b", "a", "b", 'ü"x'], "t": np.arange(4)}
    assert read_columns(encode_columns(coded)).equals(read_columns(encode_columns(plain)))
    other = {"s": Coded(["c", "b"], np.array([0, 1, 1], dtype=np.int32)), "t": np.arange(3)}
    both = frame_of([coded, other])
    assert both["s"].to_list() == ["b", "a", "b", 'ü"x', "c", "b", "b"]
    assert both.equals(frame_of([plain, {"s": ["c", "b", "b"], "t": np.arange(3)}]))


def test_generations_with_the_same_texts_merge_as_the_others():
    """Generations whose `Coded` column has the same distinct texts (a knob's choices, a null among them, values no
    row uses) are merged as generations with different texts are: the frame of their parts read back."""
    choices = ["x", None, "unused", "y"]
    gens = [{"k": Coded(list(choices), np.array(c, dtype=np.int32)), "t": np.arange(len(c))}
            for c in ([0, 3, 1], [3, 3], [1, 0, 0, 3])]
    back = pl.concat([read_columns(encode_columns(g)) for g in gens])
    assert frame_of(gens).equals(back) and frame_of(gens)["k"].to_list() == ["x", "y", None, "y", "y", None, "x",
                                                                              "x", "y"]
    dup = [{"k": Coded(["a", "a", "b"], np.array([1, 2], dtype=np.int32)), "t": np.arange(2)}] * 2  # (not distinct)
    assert frame_of(dup).equals(pl.concat([read_columns(encode_columns(g)) for g in dup]))
