"""A study generation's part as raw columns (`.dcol`): the arrays the runner holds, written as they are.

Building a polars frame and an Arrow IPC stream of a 100-trial generation costs ~2-3 ms of CPU (75 columns, a
few us of Python per column, lz4 and polars' thread pool), most of a run's own work per trial once the model
is fast; this format costs ~0.1-0.2 ms: each numeric column's bytes (numpy's own layout, little-endian), each
other column as a dictionary (its distinct values in the header, JSON) and a code per row. Layout:

  MAGIC (8 bytes) | header length (8 bytes, little-endian) | header (JSON, padded to 8 bytes) | body | END (8 bytes)

The header names the rows and, per column in order, its kind (`array`: dtype, shape of a row, offset and size
in the body; `dict`: the values, their type `str` (texts or null) or `json` (e.g. a list-valued knob), and
the codes' dtype, offset and size). A file that does not start with MAGIC and end with END, or whose sizes do
not add up, is damaged (cut short by a power loss before its flush): `read_columns` raises.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Iterable, NamedTuple

import numpy as np
import polars as pl

__all__ = ["Coded", "ColumnsError", "decoded_frame", "dictionary", "encode_columns", "frame_of", "read_columns", "read_rows"]

MAGIC = b"DSECOLS1"
END = b"DSECEND1"
_ALIGN = 8


class ColumnsError(ValueError):
    """A `.dcol` file that is not whole, or a column that cannot be stored in one (the caller writes Arrow)."""


class Coded(NamedTuple):
    """A column given as its dictionary: its distinct values (texts or other JSON-plain values) and each row's
    index into them (a generation's few distinct texts, coded once by the caller)."""

    values: list[Any]
    codes: np.ndarray


def _plain(x: Any) -> bool:
    """A value a `json` dictionary stores as it is: a text, number, bool or null, or a list of them."""
    if x is None or isinstance(x, (str, bool, int, float)):
        return True
    return isinstance(x, list) and all(v is None or isinstance(v, (str, bool, int, float)) for v in x)


def dictionary(v: Any) -> tuple[list[Any], np.ndarray]:
    """(distinct values, code of each row) of a column of texts or other JSON-plain values (a numpy array, a
    list or a `Coded`); a value that is neither raises ColumnsError."""
    if isinstance(v, Coded):
        if not all(map(_plain, v.values)):
            raise ColumnsError("a column holds values other than texts, numbers, bools and lists of them")
        return list(v.values), np.asarray(v.codes, dtype=np.int32)
    if isinstance(v, np.ndarray) and v.dtype.kind == "U" and len(v) and bool((v == v[0]).all()):
        return [v[0].item()], np.zeros(len(v), dtype=np.int32)  # one value (a fixed knob): no per-row dictionary
    if isinstance(v, np.ndarray) and v.dtype.kind == "U" and len(v) > 1000:  # (a dict is faster below that)
        distinct, codes = np.unique(v, return_inverse=True)
        return distinct.tolist(), codes.ravel().astype(np.int32)
    values = v.tolist() if isinstance(v, np.ndarray) else list(v)
    index: dict[Any, int] = {}
    try:
        codes = [index.setdefault(x, len(index)) for x in values]
        distinct = list(index)
    except TypeError:  # unhashable values (lists): by identity (a column repeats a few objects), then JSON text
        by_id: dict[int, int] = {}
        by_text: dict[str, int] = {}
        distinct, codes = [], []
        for x in values:
            j = by_id.get(id(x))
            if j is None:
                t = json.dumps(x)
                j = by_text.get(t)
                if j is None:
                    j = by_text[t] = len(distinct)
                    distinct.append(x)
                by_id[id(x)] = j
            codes.append(j)
    if not all(map(_plain, distinct)):
        raise ColumnsError("a column holds values other than texts, numbers, bools and lists of them")
    return distinct, np.asarray(codes, dtype=np.int32)


def _is_array(v: Any) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "biufM"


_ENC = json.JSONEncoder(separators=(",", ":")).encode  # one encoder (json.dumps builds one per call)


def _plain_columns(data: dict[str, Any]) -> dict[str, Any]:
    """The columns as numpy arrays (numbers, bools, datetimes) or lists/arrays of other values."""
    if all(type(v) is not pl.Series and (type(v) is not np.ndarray or v.dtype.byteorder != ">") for v in data.values()):
        return data
    out = {}
    for name, v in data.items():
        if isinstance(v, pl.Series):
            if v.null_count():
                raise ColumnsError(f"column {name} has nulls")
            v = v.to_numpy() if v.dtype.is_numeric() or isinstance(v.dtype, pl.Array) or v.dtype in (
                pl.Boolean, pl.Datetime("us")) else v.to_list()
        if _is_array(v) and v.dtype.byteorder == ">":
            v = v.astype(v.dtype.newbyteorder("<"))
        out[name] = v
    return out


# the layout of a set of columns (names, dtypes and shapes or types and lengths: `encode_columns`): built once,
# reused by every generation
_LAYOUTS: dict[tuple, "_Layout"] = {}


class _Layout:
    """Where each column of a given set goes: the array columns of one dtype and row shape side by side in one
    block (one copy per block), then each dictionary's codes; and the header's text of the array columns."""

    def __init__(self, key: tuple, n: int):
        self.n = n
        groups: dict[tuple, list[int]] = {}
        for i, (_, dtype, shape) in enumerate(key):
            if dtype is not None:
                groups.setdefault((dtype, shape), []).append(i)
        at = 0
        where: dict[int, tuple[int, int]] = {}
        self.blocks: list[tuple[list[int], int]] = []  # (columns, padding after the block)
        for (dtype, shape), cols in groups.items():
            size = np.dtype(dtype).itemsize * n * int(np.prod(shape, dtype=np.int64))
            for i in cols:
                where[i] = (at, size)
                at += size
            pad = -at % _ALIGN
            at += pad
            self.blocks.append((cols, pad))
        self.dicts: list[int] = []
        code = np.dtype(np.int32).itemsize * n
        for i, (_, dtype, _) in enumerate(key):
            if dtype is None:
                where[i] = (at, code)
                at += code + (-code % _ALIGN)
                self.dicts.append(i)
        self.code_pad = -code % _ALIGN
        self.texts: list[str | None] = []  # each column's header entry (None: a dictionary's, made per call)
        for i, (name, dtype, shape) in enumerate(key):
            off, size = where[i]
            if dtype is None:
                self.texts.append(None)
            else:
                self.texts.append(json.dumps({"name": name, "kind": "array", "dtype": dtype, "shape": list(shape),
                                              "offset": off, "nbytes": size}, separators=(",", ":")))
        self.where = where
        self.names = [f'{{"name":{_ENC(name)},' for name, _, _ in key]  # (a dictionary's header entry starts so)


def _new_layout(data: dict[str, Any], vals: list[Any]) -> "_Layout":
    """The layout of the columns `data` (values `vals`); raises ColumnsError for columns of different lengths."""
    sizes, dtypes, shapes = [], [], []  # per column: rows, dtype text (None: a dictionary), shape of a row
    for v in vals:
        if type(v) is np.ndarray:
            sizes.append(len(v))
            dtypes.append(v.dtype.str if v.dtype.kind in "biufM" else None)
            shapes.append(v.shape[1:])
        else:
            sizes.append(len(v.codes) if isinstance(v, Coded) else len(v))
            dtypes.append(None)
            shapes.append(())
    n = sizes[0] if sizes else 0
    if sizes.count(n) != len(sizes):
        raise ColumnsError(f"columns of different lengths: {sorted(set(sizes))}")
    return _Layout(tuple(zip(data, dtypes, shapes)), n)


def encode_columns(data: dict[str, Any]) -> bytes:
    """The `.dcol` bytes of named columns of one length: numpy arrays of numbers, bools or datetimes (1-D, or
    2-D: a fixed-size array per row) as they are, any other column (texts, lists) as a dictionary."""
    vals = list(data.values())
    # the layout, keyed by the names and each column's dtype and shape (an array) or type and length: one pass over
    # the columns when the layout is known (a run's generations: the same columns each time); the columns are made
    # plain (`_plain_columns`: polars Series, big-endian arrays) when it is not, and only plain ones have a layout
    sig = (tuple(data), tuple([(v.dtype, v.shape) if type(v) is np.ndarray else
                               (type(v), len(v.codes) if isinstance(v, Coded) else len(v)) for v in vals]))
    layout = _LAYOUTS.get(sig)
    if layout is None:
        plain = _plain_columns(data)
        if plain is not data:
            return encode_columns(plain)
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        layout = _LAYOUTS[sig] = _new_layout(data, vals)
    n = layout.n
    body: list[bytes] = []
    for cols, pad in layout.blocks:
        block = vals[cols[0]] if len(cols) == 1 else np.concatenate([vals[i] for i in cols])
        body.append(np.ascontiguousarray(block).tobytes())
        if pad:
            body.append(b"\0" * pad)
    texts = list(layout.texts)
    for i in layout.dicts:
        v = vals[i]
        if type(v) is Coded and all([type(x) is str for x in v.values]):  # (texts: plain, kind str)
            distinct, codes, kind = v.values, np.asarray(v.codes), "str"
        else:
            distinct, codes = dictionary(v)
            kind = "str" if all(x is None or isinstance(x, str) for x in distinct) else "json"
        off, size = layout.where[i]
        texts[i] = (f'{layout.names[i]}"kind":"dict","type":"{kind}","values":{_ENC(distinct)},'
                    f'"dtype":"<i4","shape":[],"offset":{off},"nbytes":{size}}}')
        body.append(codes.astype("<i4", copy=False).tobytes())
        if layout.code_pad:
            body.append(b"\0" * layout.code_pad)
    head = f'{{"rows":{n},"columns":[{",".join(texts)}]}}'.encode()
    head += b" " * (-len(head) % _ALIGN)
    return b"".join([MAGIC, struct.pack("<Q", len(head)), head, *body, END])


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    if not (data.startswith(MAGIC) and data.endswith(END)) or len(data) < 24:
        raise ColumnsError("not a whole .dcol file (no end marker: cut short)")
    (size,) = struct.unpack_from("<Q", data, 8)
    start = 16 + size
    try:
        head = json.loads(data[16:start])
    except ValueError:
        raise ColumnsError("damaged .dcol header") from None
    body = len(data) - len(END) - start
    if any(c["offset"] + c["nbytes"] > body for c in head["columns"]):
        raise ColumnsError("a .dcol file shorter than its header says")
    return head, start


def read_rows(data: bytes) -> int:
    """Rows of a `.dcol` file's bytes (from its header)."""
    return int(_header(data)[0]["rows"])


def read_columns(data: bytes, columns: Iterable[str] | None = None) -> pl.DataFrame:
    """The frame of a `.dcol` file's bytes (optionally only `columns`, in the file's order)."""
    head, start = _header(data)
    n = int(head["rows"])
    want = None if columns is None else set(columns)
    out: dict[str, Any] = {}
    for c in head["columns"]:
        if want is not None and c["name"] not in want:
            continue
        a = np.frombuffer(data, dtype=np.dtype(c["dtype"]), count=c["nbytes"] // np.dtype(c["dtype"]).itemsize,
                          offset=start + c["offset"]).reshape(n, *c["shape"])
        out[c["name"]] = a if c["kind"] == "array" else (c["values"], a, c["type"])
    return decoded_frame(out, n)


def decoded_frame(data: dict[str, Any], n: int) -> pl.DataFrame:
    """The polars frame of decoded columns: numpy arrays (a 2-D one becomes an Array column) or dictionaries
    (values, codes, 'str' | 'json'), as `pl.Series` gives them (texts: String; lists of texts: List(String))."""
    series = []
    for name, v in data.items():
        if isinstance(v, tuple):
            values, codes, kind = v
            s = pl.Series(name, values, dtype=pl.String) if kind == "str" else pl.Series(name, values, strict=False)
            # (indexing by a numpy array is a gather without a query: `Series.gather` runs one per call, ~0.2 ms)
            series.append(s[codes.astype(np.int64)] if len(values) != n or not np.array_equal(codes, np.arange(n))
                          else s)
        else:
            series.append(pl.Series(name, v))
    return pl.DataFrame(series, height=n) if series else pl.DataFrame(height=n)


def frame_of(datas: list[dict[str, Any]]) -> pl.DataFrame:
    """The polars frame of several generations' columns (dicts of the same names, as `encode_columns` takes
    them) one after the other, as reading their parts back and concatenating them gives it."""
    def size(v: Any) -> int:
        return len(v.codes) if isinstance(v, Coded) else len(v)

    n = sum(size(next(iter(d.values()))) for d in datas) if datas and datas[0] else 0
    out: dict[str, Any] = {}
    for name in datas[0] if datas else ():
        vs = [d[name] for d in datas]
        if all(_is_array(v) for v in vs):
            out[name] = np.concatenate(vs) if len(vs) > 1 else vs[0]
            continue
        first = vs[0]
        if type(first) is Coded and all([type(v) is Coded and v.values == first.values for v in vs]) and all(
                [x is None or type(x) is str for x in first.values]) and len(set(first.values)) == len(first.values):
            # the same distinct texts in every generation (a knob's choices, the states): their codes as they are
            # (what the merge below gives, without a pass over each generation's values)
            out[name] = (list(first.values), np.concatenate([np.asarray(v.codes, dtype=np.int32) for v in vs]), "str")
            continue
        # each generation's dictionary, merged: a value's index in the merged one per generation's code
        merged: list[Any] = []
        index: dict[str, int] = {}
        codes = []
        for v in vs:
            values, c = dictionary(v)
            at = np.empty(len(values), dtype=np.int32)
            for j, x in enumerate(values):
                key = x if isinstance(x, str) else json.dumps(x)
                k = index.get(key)
                if k is None:
                    k = index[key] = len(merged)
                    merged.append(x)
                at[j] = k
            codes.append(at[c] if len(values) else c)
        kind = "str" if all(x is None or isinstance(x, str) for x in merged) else "json"
        out[name] = (merged, np.concatenate(codes) if codes else np.zeros(0, np.int32), kind)
    return decoded_frame(out, n)
