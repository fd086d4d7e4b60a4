"""`DesignArrays`: many designs as a struct of numpy arrays, with technology values resolved per row.

This is the hot path of studies: string knobs are resolved with `np.unique` + table lookups, numeric
work is vectorized, and bad values never raise: the row is kept and flagged in `valid` / `reason`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from dse.config import suggest
from dse.model.kernel import compiled_kernel, kernel_module
from dse.model.knobs import BY_NAME, KNOBS, RULES, BoundsTable
from dse.model.technology import Technology
from dse.units import MEMORY_GB_BYTES
from dse.model.voltage import MAX_FRACTION, curve_constants, curve_kernel, max_clock_ratio, voltage_ratio


def _default(knob: str) -> Any:
    return BY_NAME[knob].default_value()


class _Flags:
    """Accumulates per-row validity and '; '-joined reasons without per-row Python for valid rows."""

    def __init__(self, n: int, valid: np.ndarray | None = None, reason: np.ndarray | None = None):
        """`n` valid rows without a reason, or copies of `valid` and `reason` (flags so far)."""
        if valid is None:  # (empty + fill: np.ones' and np.full's arrays without their Python-level passes)
            self.valid = np.empty(n, dtype=bool)
            self.valid.fill(True)
        else:
            self.valid = np.array(valid, dtype=bool)
        if reason is None:
            self.reason = np.empty(n, dtype=object)
            self.reason.fill("")
        else:
            self.reason = np.array(reason, dtype=object)

    def flag(self, bad: np.ndarray, message: str | np.ndarray) -> None:
        if not np.count_nonzero(bad):  # (a C call: ~1.5 µs less than .any() at a chunk of 128)
            return
        idx = bad.nonzero()[0]
        # the flagged rows' texts (str objects) joined as lists: numpy's object passes call the same str methods
        msgs = message[idx].tolist() if isinstance(message, np.ndarray) else [message] * len(idx)
        self.flag_rows(idx, msgs)

    def flag_rows(self, idx: np.ndarray, msgs: list[str]) -> None:
        """Flag rows `idx` (distinct indices) with their texts `msgs` (a list aligned with `idx`)."""
        self.reason[idx] = [m if o == "" else o + "; " + m for o, m in zip(self.reason[idx].tolist(), msgs)]
        self.valid[idx] = False


def kernel_column(x: Any, n: int, dtype: Any = np.float64) -> np.ndarray:
    """`x` (a scalar or a column) as a fresh writable C-contiguous array of shape (n,) and `dtype`, as a compiled
    kernel takes its arguments (numba types a read-only, strided or unaligned array apart, and compiles it anew):
    `x` itself where it is such an array already (no copy)."""
    if type(x) is np.ndarray and x.shape == (n,) and x.dtype == dtype and x.flags.carray:  # (C, aligned, writeable)
        return x
    return np.array(np.broadcast_to(np.asarray(x, dtype), (n,)), dtype)


def stack_rows(cols: list, n: int) -> np.ndarray:
    """`cols` (columns of shape (n,) of any numeric dtype, or scalars) as the rows of one fresh (len(cols), n) float64
    array, the values a row-by-row write into it casts: one conversion where every entry is a column of n (numpy
    checks the shapes: a check per entry in Python cost more than the conversion)."""
    try:
        v = np.array(cols, np.float64)
    except (ValueError, TypeError):  # (ragged: a scalar among the columns)
        v = None
    if v is not None and v.shape == (len(cols), n):
        return v
    v = np.empty((len(cols), n))
    for k, c in enumerate(cols):
        v[k] = c
    return v


def _broadcast(col: Any, n: int) -> np.ndarray:
    arr = np.asarray(col, dtype=object) if isinstance(col, (list, tuple)) else np.asarray(col)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=object if arr.dtype == object else arr.dtype)
    return arr


def _numeric(columns: Mapping[str, Any], knob: str, n: int, flags: _Flags) -> np.ndarray:
    """Column as float64; None → NaN; non-numeric entries flagged (never raising)."""
    default = _default(knob)
    if knob not in columns:
        return np.full(n, np.nan if default is None else float(default))
    raw = _broadcast(columns[knob], n)
    try:
        out = raw.astype(np.float64)
    except (TypeError, ValueError):
        out = np.empty(n)
        bad = np.zeros(n, dtype=bool)
        for i, v in enumerate(raw):  # rare: mixed / textual column
            try:
                out[i] = np.nan if v is None else float(v)
            except (TypeError, ValueError):
                out[i], bad[i] = np.nan, True
        flags.flag(bad, f"{knob}: not a number")
    return out  # range / NaN checks: _check_knobs


def _lookup(columns: Mapping[str, Any], knob: str, names: Sequence[str], n: int, flags: _Flags,
            what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index of each row's name in `names` (unknown → index 0 and a flagged reason), plus the str array and the
    index with len(names) for an unknown name (`DesignArrays.name_at`). Binary search in the sorted names (cached
    per name list): no per-call sort of the column. A knob given as one name for every row (a default, a scalar)
    is looked up once."""
    col = columns.get(knob, _MISSING)
    if col is _MISSING:
        col = _default(knob)
    if n > 1 and isinstance(col, str):
        # one name for every row (a default, a fixed knob given as a scalar): looked up once per (knob, name, names)
        key = (knob, col, tuple(names), what)
        one = _ONE_NAME.get(key)
        if one is None:
            idx, raw, at = _lookup({knob: col}, knob, names, 1, row := _Flags(1), what)
            if len(_ONE_NAME) > 1024:
                _ONE_NAME.clear()
            one = _ONE_NAME[key] = (idx[:1], raw[:1], at[:1], bool(row.valid[0]), row.reason[0])
        idx, raw, at, valid, reason = one
        idx_n = np.full(n, idx[0], dtype=idx.dtype)
        if valid:
            return idx_n, np.full(n, raw[0], dtype=raw.dtype), idx_n
        flags.flag(np.ones(n, dtype=bool), np.full(n, reason, dtype=object))
        return idx_n, np.full(n, raw[0], dtype=raw.dtype), np.full(n, at[0], dtype=at.dtype)
    raw = _broadcast(col, n).astype(str, copy=False)
    srt, srt_end, order_end = _sorted_names(tuple(names))
    pos, bad = _name_rows(srt, srt_end, raw)
    idx = at = order_end[pos]  # (a fresh array)
    if np.count_nonzero(bad):
        uniq, inv = np.unique(raw[bad], return_inverse=True)
        msgs = np.full(n, "", dtype=object)
        msgs[bad] = np.array([f"{knob}: {suggest(u, names, what)}" for u in uniq], dtype=object)[inv.reshape(-1)]
        flags.flag(bad, msgs)
        at = np.where(bad, len(names), idx)
        idx[bad] = 0
    return idx, raw, at


# (knob, name, allowed names, what) → a one-row `_lookup` of that name (index, name, index or len(names), valid,
# reason): what `_lookup` repeats on every row of a knob given as one name
_ONE_NAME: dict[tuple, tuple] = {}
_SORTED_NAMES: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


_NAME_KEYS: dict[tuple, tuple | None] = {}  # (sorted names, width) → `_name_keys`


def _name_rows(srt: np.ndarray, srt_end: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, unknown) of each row of the str array `raw` among the sorted distinct names `srt` (`srt_end`: the
    same with its last entry repeated): an allowed name's position `srt.searchsorted(raw)`, and whether the row is
    not the name at its position (`srt_end[pos] != raw`). From NAME_TABLE_FROM rows by a table of the names' code
    points at a few columns where they all differ (`_name_keys`, once per name list and string width) and a check of
    each row's code points against its name's: a few integer passes instead of a binary search of string compares;
    the search where no such columns exist, and below NAME_TABLE_FROM rows."""
    keys = _table_keys(srt, raw) if raw.size >= NAME_TABLE_FROM else None
    if keys is None:
        pos = srt.searchsorted(raw)  # (len(srt) past the last name: its entry repeats the last one's)
        return pos, srt_end[pos] != raw
    cols, mod, table, end_codes = keys
    w = end_codes.shape[1]
    if not (raw.flags.c_contiguous and raw.dtype.isnative):  # (a strided or byte-swapped column: its code points)
        raw = np.ascontiguousarray(raw, dtype=raw.dtype.newbyteorder("="))
    codes = raw.view(np.uint32).reshape(raw.size, w)
    key = codes[:, cols[0]].clip(max=255)
    for p in cols[1:]:
        key = (key * 256 + codes[:, p].clip(max=255)) % mod
    pos = table.take(key)
    x = end_codes.take(pos, axis=0)
    x ^= codes
    diff = x[:, 0].copy()
    for p in range(1, w):
        diff |= x[:, p]
    return pos, diff != 0


def _name_positions(srt: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """`_name_rows`' positions (for tests: the search's on every allowed name, any in [0, len(srt)] elsewhere)."""
    return _name_rows(srt, np.append(srt, srt[-1:]), raw)[0]


def _table_keys(srt: np.ndarray, raw: np.ndarray) -> tuple | None:
    """`_name_keys` of the names `srt` for the rows of `raw` (its string width), once per (names, width)."""
    w = raw.dtype.itemsize // 4
    key = (srt.tobytes(), srt.dtype.itemsize, w)
    keys = _NAME_KEYS.get(key, _MISSING)
    if keys is _MISSING:
        if len(_NAME_KEYS) > 256:
            _NAME_KEYS.clear()
        keys = _NAME_KEYS[key] = _name_keys(srt.tolist(), w)
    return keys


NAME_TABLE_FROM = 2048  # rows from which `_name_rows` takes its table (below, its fixed ~5-15 us cost more than
# the search's ~30 ns per row: 2.3 vs 13 us at 128 rows, 320 vs 67 us at 10k, one knob)
NAME_MODULI = (251, 509, 1021, 2039, 4093)  # the table sizes `_name_keys` tries for two columns or more
NAME_COLUMNS = 4  # columns `_name_keys` combines at most


def _name_keys(srt: list[str], w: int) -> tuple[tuple[int, ...], int, np.ndarray, np.ndarray] | None:
    """(columns, modulus, table, code points) of `_name_rows` for the sorted names `srt` and rows of `w` code points:
    up to NAME_COLUMNS columns whose code points, each clipped to 255, read as base-256 digits modulo the modulus (after each
    digit; one column: its code point) differ between every two names of at most `w` code points (a longer name never
    equals such a row), the table from that key to the name's position in `srt` (0 for no name) and the code points
    of the names and the last again ((len(srt) + 1, w): a longer name's 2^32 - 1, no row's); None where no such
    columns and modulus tell them apart (or two names are the same)."""
    fit = [(i, nm) for i, nm in enumerate(srt) if len(nm) <= w]
    if not fit or w == 0:
        return None
    c = np.minimum(np.array([[ord(ch) for ch in nm.ljust(w, "\0")] for _, nm in fit], np.int64), 255)
    at = np.array([i for i, _ in fit], np.intp)
    # each name's code points (and the last's again: `srt_end`'s rows), a name longer than w's as 2^32 - 1 (no row's)
    end_codes = np.array([[ord(ch) for ch in nm.ljust(w, "\0")] if len(nm) <= w else [0xFFFFFFFF] * w
                          for nm in srt + srt[-1:]], np.uint32)
    for cols in itertools.chain.from_iterable(itertools.combinations(range(w), r) for r in range(1, NAME_COLUMNS + 1)):
        for mod in NAME_MODULI if len(cols) > 1 else (256,):
            key = c[:, cols[0]]
            for p in cols[1:]:
                key = (key * 256 + c[:, p]) % mod
            if len(np.unique(key)) == len(fit):
                table = np.zeros(mod, np.intp)
                table[key] = at
                return cols, mod, table, end_codes
    return None


def _sorted_names(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`names` sorted as a str array, the same with its last entry repeated, and each of those entries' index in
    `names` (cached: a few per technology). A search's position past the end (a name after the last) reads the
    repeated entry: no clamp of the positions per call."""
    hit = _SORTED_NAMES.get(names)
    if hit is None:
        order = np.argsort(np.array(names, dtype=str), kind="stable").astype(np.int64)
        order_end = np.append(order, order[-1:])
        hit = _SORTED_NAMES[names] = (np.array(names, dtype=str)[order], np.array(names, dtype=str)[order_end],
                                      order_end)
    return hit


def _canon_precisions(col: Any, n: int) -> np.ndarray:
    """Each row's precision set as a canonical 'a,b,c' string (accepts lists or comma strings)."""
    if isinstance(col, str):
        return np.full(n, col.replace(" ", ""), dtype=object)
    if isinstance(col, (list, tuple)) and col and all(isinstance(c, str) for c in col) \
            and not any("," in c for c in col) and len(col) != n:
        return np.full(n, ",".join(col), dtype=object)
    arr = np.asarray(col, dtype=object) if not isinstance(col, np.ndarray) else col
    if arr.dtype.kind in "US":
        return np.char.replace(arr.astype(str), " ", "").astype(object)
    return np.array([_canon_one(v) for v in arr], dtype=object)


def _canon_one(v: Any) -> str:
    """One row's precision set as 'a,b,c': a comma string without spaces, or a list of names joined."""
    return v.replace(" ", "") if isinstance(v, str) else ",".join(v)


_TABLES: dict[tuple, tuple[tuple, np.ndarray]] = {}


def _table(objs: Sequence[Any], what: Any, build: Any) -> np.ndarray:
    """`build()`: an array of one attribute per technology entry (node, memory, link, package), cached per the
    entries themselves (frozen pydantic models: the same objects hold the same values) and `what`. The cache
    keeps the entries alive, so their ids are not reused while cached; bounded (perturbed technologies of
    uncertainty runs make new entries)."""
    key = (what, tuple(map(id, objs)))
    hit = _TABLES.get(key)
    if hit is None:
        if len(_TABLES) > 4096:
            _TABLES.clear()
        hit = _TABLES[key] = (tuple(objs), build())
    return hit[1]


def _precision_sets(col: Any, n: int) -> tuple[np.ndarray, list[str]]:
    """Each row's precision set as a code, and each code's canonical 'a,b,c' string (`_canon_precisions`). A
    column of objects (lists, what samplers give, or strings) applies `_canon_one` once per distinct object, in
    the rows' order: rows sharing a list object (a fixed knob) cost no join, no hashing of names."""
    if isinstance(col, np.ndarray) and col.dtype == object and col.ndim == 1:
        rows = col.tolist()
        if rows and type(rows[0]) in (list, tuple, str):  # one set on every row (a fixed knob): one C-level pass
            try:
                same = rows.count(rows[0]) == len(rows)
            except (ValueError, TypeError):  # a row whose == is not a truth value (an array): the general path
                same = False
            if same:
                return np.zeros(len(rows), dtype=np.int64), [_canon_one(rows[0])]
        ids = list(map(id, rows))
        codes: dict[str, int] = {}
        code_of = {i: codes.setdefault(_canon_one(v), len(codes)) for i, v in dict(zip(ids, rows)).items()}
        return np.fromiter(map(code_of.__getitem__, ids), dtype=np.int64, count=len(ids)), list(codes)
    codes = {}
    rows = _canon_precisions(col, n).tolist()
    return np.fromiter((codes.setdefault(s, len(codes)) for s in rows), dtype=np.int64, count=len(rows)), list(codes)


def _node() -> Any:
    """A column copied from the process-node table (the field name is the table's attribute)."""
    return field(metadata={"process_nodes": True})


# a row attribute named `<constant><suffix>` copies a technology constant from the table entry another knob
# selects: the I/O dies' process-node constants (wafer_price_usd_io, ...) follow chip.io_die_node
ROW_SUFFIX_KNOBS: dict[str, str] = {"_io": "chip.io_die_node"}


@dataclass
class DesignArrays:
    """Every knob and resolved technology value of `n` designs as arrays of shape (n,).

    `knobs` holds every registry knob (dse.model.knobs) by dotted name as read: numbers as float64
    (NaN = unset or bad), flags as bool; `names` the str knobs as given. The typed attributes below are
    the sanitized knobs and technology values the model reads: finite and clamped into bounds even on
    flagged rows (`valid` / `reason`)."""

    n: int
    tech: Technology
    knobs: dict[str, np.ndarray]
    names: dict[str, np.ndarray]  # str knobs by dotted name (e.g. names['chip.memory']) and 'name'
    # each str knob's index of the row's name in `Knob.allowed(tech)` (len of it: a name not there), by dotted name
    name_at: dict[str, np.ndarray]
    valid: np.ndarray
    reason: np.ndarray
    # compute
    cores: np.ndarray
    array_rows: np.ndarray
    array_cols: np.ndarray
    macs: np.ndarray
    clock_ghz: np.ndarray
    vector_flops_per_cycle: np.ndarray
    is_simt: np.ndarray
    sparsity_2to4: np.ndarray
    # process node table
    wafer_price_usd: np.ndarray = _node()
    defect_density_per_cm2: np.ndarray = _node()
    yield_alpha: np.ndarray = _node()
    mac_area_um2: np.ndarray = _node()
    simt_area_factor: np.ndarray = _node()
    vector_area_um2_per_flop_cycle: np.ndarray = _node()
    sram_pj_per_byte: np.ndarray = _node()
    static_w_per_mm2: np.ndarray = _node()
    uncore_fraction: np.ndarray = _node()
    d2d_area_fraction: np.ndarray = _node()
    d2d_pj_per_bit: np.ndarray = _node()
    reticle_mm2: np.ndarray = _node()
    # SRAM
    sram_mb: np.ndarray = field()
    sram_tbps: np.ndarray = field()
    sram_mm2_per_mb: np.ndarray = field()
    is_cache: np.ndarray = field()
    # off-chip memory (0 when memory is none)
    has_memory: np.ndarray = field()
    memory_stacks: np.ndarray = field()
    mem_bw_tbps: np.ndarray = field()
    mem_gb: np.ndarray = field()
    mem_pj_per_bit: np.ndarray = field()
    mem_usd_per_gb: np.ndarray = field()
    mem_phy_mm2_per_stack: np.ndarray = field()
    mem_needs_interposer: np.ndarray = field()
    mem_footprint_mm2_per_stack: np.ndarray = field()
    # links and system
    links: np.ndarray = field()
    link_gbps: np.ndarray = field()
    link_pj_per_bit: np.ndarray = field()
    link_phy_mm2: np.ndarray = field()
    link_latency_us: np.ndarray = field()
    link_rdma: np.ndarray = field()  # True: an RDMA network port (technology Link.rdma): library-run collectives
    num_chips: np.ndarray = field()
    topology: np.ndarray = field()  # int64 code: dse.model.knobs.TOPOLOGY_CODE
    # packaging
    pkg_usd_per_mm2: np.ndarray = field()
    pkg_assembly_yield_per_die: np.ndarray = field()
    pkg_max_interposer_mm2: np.ndarray = field()
    pkg_area_scale: np.ndarray = field()
    wafer_scale: np.ndarray = field()
    pkg_is_interposer: np.ndarray = field()
    dies: np.ndarray = field()  # 0 = automatic split
    # I/O dies on their own node (chip.io_die_node; has_io_die False = PHYs on the compute dies). Suffix
    # `_io`: the row attribute of a process-node constant for the I/O dies (ROW_SUFFIX_KNOBS, dse.uncertainty)
    has_io_die: np.ndarray = field()
    io_dies: np.ndarray = field()  # I/O dies per chip (chip.io_dies) where has_io_die
    wafer_price_usd_io: np.ndarray = field()
    defect_density_per_cm2_io: np.ndarray = field()
    yield_alpha_io: np.ndarray = field()
    static_w_per_mm2_io: np.ndarray = field()
    uncore_fraction_io: np.ndarray = field()
    reticle_mm2_io: np.ndarray = field()
    allow_chiplets: np.ndarray = field()
    tdp_cap_w: np.ndarray = field()  # 0 = no cap
    # per precision (0 = unsupported) and roofline
    speedup: dict[str, np.ndarray] = field()
    peak_tflops: dict[str, np.ndarray] = field()
    energy_pj_per_flop: dict[str, np.ndarray] = field()
    mma_operand_factor: np.ndarray = field()  # energy per tensor FLOP over the MAC's (REGISTER_OPERAND_OVERHEAD)
    voltage_energy_ratio: np.ndarray = field()  # (V/V_nom)² at the design's clock (dse.model.voltage)
    clock_over_nominal: np.ndarray = field()  # design clock / its node's nominal clock (dse.model.voltage)
    supply_voltage_ratio: np.ndarray = field()  # V/V_nom at that clock (dse.model.voltage.voltage_ratio): solved
    # once per design; voltage_energy_ratio is its square and the compute dies' leakage scales with it (power)
    sram_bank_energy_ratio: np.ndarray = field()  # SRAM access energy of the design's bank over a large array's
    peak_tflops_headline: np.ndarray = field()
    knee_flop_per_byte: np.ndarray = field()

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_designs(cls, designs: Iterable[Any], tech: Technology) -> "DesignArrays":
        """Struct of arrays from pydantic `Design`s (their flat dotted fields)."""
        flats = [d.to_flat() for d in designs]
        keys = list(dict.fromkeys(k for f in flats for k in f))
        columns: dict[str, Any] = {}
        for k in keys:
            vals = [f.get(k) for f in flats]
            if k == "chip.precisions":
                columns[k] = np.array([",".join(v) for v in vals], dtype=object)
            elif k.startswith(("chip.", "system.")):
                columns[k] = np.array(vals, dtype=object)
        columns["name"] = np.array([f["name"] for f in flats], dtype=object)
        return cls.from_columns(columns, tech)

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], tech: Technology) -> "DesignArrays":
        """Vectorized build from dotted-knob columns; missing knobs take the registry defaults."""
        n = _infer_n(columns)
        flags = _Flags(n)
        c: dict[str, np.ndarray] = {}
        idx: dict[str, np.ndarray] = {}
        names: dict[str, np.ndarray] = {}
        name_at: dict[str, np.ndarray] = {}
        # the numeric knobs as rows of one array (c holds the rows), each at its fill; a given one's row overwritten
        values = np.empty((len(_NUMERIC_KNOBS), n))
        values[...] = _NUMERIC_FILLS
        for k, numeric in _KNOB_NUMERIC:
            if numeric:
                row = values[_NUMERIC_ROW[k.name]]
                col = columns.get(k.name, _MISSING)
                if type(col) is np.ndarray and col.shape == (n,) and col.dtype.kind in "iufb":
                    row[:] = col  # a numeric column (what samplers give): cast in place, as astype would
                elif col is not _MISSING:
                    row[:] = _numeric(columns, k.name, n, flags)
                c[k.name] = row
            elif k.type is bool:
                raw = _broadcast(columns.get(k.name, k.default), n)
                c[k.name] = np.asarray([_to_bool(v) for v in raw] if raw.dtype == object else raw, dtype=bool)
            elif k.type is str:
                idx[k.name], names[k.name], name_at[k.name] = _lookup(columns, k.name, k.allowed(tech), n, flags,
                                                                      k.what)
        if "name" in columns:
            names["name"] = _broadcast(columns["name"], n).astype(object)
        ok_all, san = _bounds(values)  # san: the knobs the model reads, bad/NaN → a default, then into bounds
        _check_knobs(values, c, names, flags, ok_all)
        num = dict(zip(_SANITIZED, san)).__getitem__

        out: dict[str, Any] = {}
        out.update(cores=num("chip.cores"), array_rows=num("chip.array_rows"), array_cols=num("chip.array_cols"),
                   sram_mb=num("chip.sram_mb"), num_chips=num("system.num_chips"), io_dies=num("chip.io_dies"))

        # process node table
        node_i = idx["chip.process_node"]
        nodes = list(tech.process_nodes.values())
        node_t = _columns(nodes, "node", _NODE_COLUMNS).take(node_i, axis=1)  # one gather, all columns
        node = dict(zip(_NODE_COLUMNS, node_t))
        out.update((a, node[a]) for a in _NODE_FIELDS)
        is_cache = names["chip.sram_kind"] == "cache"
        out["is_simt"] = names["chip.core_style"] == "simt"
        out["is_cache"] = is_cache

        # memory table (index len(memories) = none)
        mem_i = idx["chip.memory"]
        mems = list(tech.memories.values())
        mem_t = _columns(mems, "memory", _MEMORY_COLUMNS, 0.0).take(mem_i, axis=1)
        mem_attr = dict(zip(_MEMORY_COLUMNS, mem_t)).__getitem__
        out.update(mem_pj_per_bit=mem_attr("pj_per_bit"), mem_usd_per_gb=mem_attr("usd_per_gb"),
                   mem_phy_mm2_per_stack=mem_attr("phy_area_mm2_per_stack"),
                   mem_needs_interposer=mem_attr("needs_interposer").astype(bool),
                   mem_footprint_mm2_per_stack=mem_attr("footprint_mm2_per_stack"), has_memory=mem_i < len(mems))

        # links
        link_i = idx["chip.link"]
        lks = list(tech.links.values())
        link_t = _columns(lks, "link", _LINK_COLUMNS, 0.0).take(link_i, axis=1)
        link_attr = dict(zip(_LINK_COLUMNS, link_t)).__getitem__
        out.update(link_gbps=link_attr("gbps_per_link"), link_pj_per_bit=link_attr("pj_per_bit"),
                   link_phy_mm2=link_attr("phy_area_mm2"), link_rdma=link_attr("rdma").astype(bool))
        out["topology"] = idx["system.topology"].astype(np.int64)  # index into TOPOLOGIES = TOPOLOGY_CODE

        # packaging
        pkg_i = idx["chip.packaging"]
        pkgs = list(tech.packaging.values())
        pkg = _table(pkgs, ("packaging", tuple(tech.packaging)), lambda: np.array(
            [[getattr(p, a) for p in pkgs] for a in _PACKAGE_COLUMNS]
            + [[k == "wafer_scale" for k in tech.packaging], [k.startswith("cowos") for k in tech.packaging]],
            dtype=float)).take(pkg_i, axis=1)
        out.update((f"pkg_{a}", v) for a, v in zip(_PACKAGE_COLUMNS, pkg))
        out["wafer_scale"], out["pkg_is_interposer"] = pkg[-2] != 0.0, pkg[-1] != 0.0
        io_i = idx["chip.io_die_node"]  # index len(nodes) = none
        out["has_io_die"] = io_i < len(nodes)
        # the I/O dies' node constants: a finite fill where there is none (unused without I/O dies)
        io = _table(nodes, "io", lambda: np.array([[float(getattr(nd, a)) for nd in nodes] + [fill]
                                                   for a, fill in _IO_COLUMNS.items()])).take(io_i, axis=1)
        out.update((f"{a}_io", v) for a, v in zip(_IO_COLUMNS, io))
        out["allow_chiplets"] = c["chip.allow_chiplets"]
        out["sparsity_2to4"] = c["chip.sparsity_2to4"]

        precisions = tuple(tech.precision_speedup)
        speedups = _speedups(columns, n, tech, flags)  # (precision, row): one array op for every precision
        speedup = dict(zip(precisions, speedups))
        # a register-sourced MMA pays operand delivery on every FLOP (REGISTER_OPERAND_OVERHEAD); the arrays'
        # peak power and every operator's FLOP energy include it (dse.model.power, dse.model.perf)
        registers = out["is_simt"] & (names["chip.mma_operands"] == "registers")
        energy_t = _energy_per_flop(tech, nodes, node_i)
        dk = _rows_kernel(precisions)
        derive = _derived if dk is None else functools.partial(_derived_compiled, dk)
        got, over, peaks, energy = derive(san, values, node_t, mem_i, len(mems), mem_t, link_i, len(lks), link_t,
                                          is_cache, registers, speedups, energy_t, precisions, tech)
        out.update(got)
        peak = dict(zip(precisions, peaks))
        clock = out["clock_ghz"]
        if np.count_nonzero(over):  # a clock above what the node reaches at its highest supply (dse.model.voltage)
            rows = over.nonzero()[0]
            reach = max_clock_ratio() * node["nominal_clock_ghz"][rows]
            # the text after the clock is the node's (its name as given, whose table row gives its reach): formatted
            # once per node; Python scalars (the same text as numpy's, faster)
            nms = names["chip.process_node"][rows].tolist()
            tail = {nm: f" GHz is above what {nm} reaches at its highest supply ({MAX_FRACTION:g} x its nominal "
                        f"voltage): at most {r:.3g} GHz" for nm, r in dict(zip(nms, reach.tolist())).items()}
            flags.flag_rows(rows, [f"chip.clock_ghz: {c:g}{tail[nm]}" for c, nm in zip(clock[rows].tolist(), nms)])
        energy = dict(zip(precisions, energy))
        return cls(n=n, tech=tech, knobs=c, names=names, name_at=name_at, valid=flags.valid, reason=flags.reason,
                   speedup=speedup, peak_tflops=peak, energy_pj_per_flop=energy, **out)

    # ------------------------------------------------------------------ helpers
    @property
    def mem_bytes(self) -> np.ndarray:
        """Off-chip memory capacity per chip in bytes: `mem_gb` GB of 2^30 bytes (capacities are binary,
        dse.units.MEMORY_GB_BYTES)."""
        return self.mem_gb * float(MEMORY_GB_BYTES)

    def row(self, i: int) -> dict[str, Any]:
        """Scalar view of one design's derived figures (used by the one-design wrappers)."""
        return {
            "macs": int(self.macs[i]),
            "peak_tflops": {p: float(v[i]) for p, v in self.peak_tflops.items() if v[i] > 0},
            "mem_bw_tbps": float(self.mem_bw_tbps[i]),
            "mem_gb": float(self.mem_gb[i]),
            "sram_mb": float(self.sram_mb[i]),
            "sram_tbps": float(self.sram_tbps[i]),
            "knee_flop_per_byte": float(self.knee_flop_per_byte[i]),
            "valid": bool(self.valid[i]),
            "reason": str(self.reason[i]),
        }

    def take(self, idx: np.ndarray) -> "DesignArrays":
        """Subset of rows (e.g. the valid ones), keeping every array aligned."""
        def sub(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: a[idx] for k, a in v.items()}
            return v[idx] if isinstance(v, np.ndarray) else v

        kept = {f.name: sub(getattr(self, f.name)) for f in fields(self) if f.name != "n"}
        return DesignArrays(n=len(np.arange(self.n)[idx]), **kept)


# the process-node table's columns (fields marked by _node())
_NODE_FIELDS = tuple(f.name for f in fields(DesignArrays) if f.metadata.get("process_nodes"))
# what from_columns reads of each technology table, one row of a 2-D table per attribute (`_columns`)
_NODE_COLUMNS = _NODE_FIELDS + ("sram_mm2_per_mb_scratchpad", "sram_mm2_per_mb_cache", "sram_gbps_per_mb",
                                 "sram_gbps_per_mb_cache", "nominal_clock_ghz")
_MEMORY_COLUMNS = ("bw_gbps_per_stack", "capacity_gb_per_stack", "pj_per_bit", "usd_per_gb",
                   "phy_area_mm2_per_stack", "needs_interposer", "footprint_mm2_per_stack")
_LINK_COLUMNS = ("gbps_per_link", "pj_per_bit", "phy_area_mm2", "rdma", "latency_us")
_PACKAGE_COLUMNS = ("usd_per_mm2", "assembly_yield_per_die", "max_interposer_mm2", "area_scale")
_IO_COLUMNS = {"wafer_price_usd": 0.0, "defect_density_per_cm2": 0.0, "yield_alpha": 1.0, "static_w_per_mm2": 0.0,
               "uncore_fraction": 0.0, "reticle_mm2": 1.0}  # attribute -> its value on a row without I/O dies


def _columns(objs: Sequence[Any], what: str, attrs: tuple[str, ...], none: float | None = None) -> np.ndarray:
    """(attribute, entry) float64 table of technology entries `objs` (cached, `_table`), plus a last column
    `none` for the index len(objs) (no memory, no link) when given: a call gathers every attribute of its rows
    at once (`table.take(i, axis=1)`: each attribute a C-contiguous row, as the kernels take their arguments)
    instead of one lookup per attribute."""
    return _table(objs, (what, attrs, none), lambda: np.array(
        [[float(getattr(o, a)) for o in objs] + ([] if none is None else [none]) for a in attrs]))


def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v) if v is not None and v == v else False


def _infer_n(columns: Mapping[str, Any]) -> int:
    """Row count: the length of the first array-like column (a bare list of precision names is one row)."""
    for k, v in columns.items():
        if isinstance(v, str) or np.ndim(v) == 0:
            continue
        if k == "chip.precisions" and isinstance(v, (list, tuple)) and v and all(isinstance(x, str) for x in v) \
                and not any("," in x for x in v):
            continue
        return len(v)
    return 1


_NUMERIC_KNOBS = tuple(k for k in KNOBS if k.numeric)
_NUMERIC_ROW = {k.name: j for j, k in enumerate(_NUMERIC_KNOBS)}
# a column: row j the value of _NUMERIC_KNOBS[j] where it is not given (its default, NaN for none)
_NUMERIC_FILLS = np.array([np.nan if _default(k.name) is None else float(_default(k.name))
                           for k in _NUMERIC_KNOBS]).reshape(-1, 1)
_KNOB_NUMERIC = tuple((k, k.numeric) for k in KNOBS)  # (knob, whether numeric), in registry order
_MISSING = object()
_BOUNDS = BoundsTable(_NUMERIC_KNOBS)
# the numeric knobs from_columns computes with, and the value a bad or unset one takes before the clip into its
# bounds (a flagged row still computes finitely)
_SANITIZED = {"chip.cores": 1.0, "chip.array_rows": 1.0, "chip.array_cols": 1.0, "chip.clock_ghz": 1.0,
              "chip.sram_mb": 0.0, "chip.memory_stacks": 0.0, "chip.links": 0.0, "system.num_chips": 1.0,
              "chip.io_dies": 1.0}
_SAN_ROWS = np.array([_NUMERIC_ROW[k] for k in _SANITIZED])
_SAN_FILL = np.array(list(_SANITIZED.values())).reshape(-1, 1)
_SAN_FILL_ROW = np.ascontiguousarray(_SAN_FILL[:, 0])
_SAN_BOUNDS = BoundsTable(tuple(BY_NAME[k] for k in _SANITIZED))
# the knobs `_derived` reads as given (before sanitizing), rows of `values`, in `design_kernel.rows_kernel`'s order
_RAW = ("chip.vector_flops_per_cycle", "chip.sram_tbps", "chip.memory_gbps_per_stack", "chip.memory_gb_per_stack",
        "system.link_latency_us", "chip.dies", "chip.tdp_w")
_RAW_ROWS = np.array([_NUMERIC_ROW[k] for k in _RAW])
# the node table's columns `rows_kernel` reads, in its order
_NODE_KROWS = np.array([_NODE_COLUMNS.index(a) for a in ("sram_mm2_per_mb_scratchpad", "sram_mm2_per_mb_cache",
                                                           "sram_gbps_per_mb", "sram_gbps_per_mb_cache",
                                                           "nominal_clock_ghz", "sram_pj_per_byte")])
_DIES_BOUNDS = tuple(float(b) for b in BY_NAME["chip.dies"].clip_bounds())  # (Knob.clip's, in rows_kernel)


def _design_kernel():
    """dse.model.design_kernel where the compiled kernels are on (`kernel.compiled_kernel()`; it imports numba),
    else None."""
    return None if compiled_kernel() is None else kernel_module("design_kernel")


def _bounds(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`_BOUNDS.in_bounds(values)`, `_sanitized(values)`) in one compiled pass (`design_kernel.bounds_kernel`) where
    the compiled kernels are on; else (or where the kernel declines) in numpy: the same values."""
    dk = _design_kernel()
    if dk is not None and values.dtype == np.float64 and values.flags.c_contiguous:
        ok = np.empty(values.shape, bool)
        san = np.empty((len(_SAN_ROWS), values.shape[1]))
        b, s = _BOUNDS, _SAN_BOUNDS
        if dk.bounds_kernel(values, b.low_row, b.high_row, b.is_int_row, b.optional_row, _SAN_ROWS, _SAN_FILL_ROW,
                            s.is_int_row, s.clip_low_row, s.clip_high_row, ok, san) >= 0:
            return ok, san
    return _BOUNDS.in_bounds(values), _sanitized(values)


def _sanitized(values: np.ndarray) -> np.ndarray:
    """The `_SANITIZED` knobs of `values` (rows of _NUMERIC_KNOBS) as `Knob.clip` of each, NaN and ±inf
    replaced by its fill first (rows in `_SANITIZED` order): the same values, in one pass over the knobs."""
    v = values[_SAN_ROWS]
    return _SAN_BOUNDS.clip(np.where(np.isfinite(v), v, _SAN_FILL))


def _derived(san, values, node_t, mem_i, n_mem, mem_t, link_i, n_link, link_t, is_cache, registers, speedups, energy_t,
             precisions, tech) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The columns `from_columns` derives by arithmetic (design_kernel.ROWS_OUT but `over`), whether each clock is
    above its node's reach, the peaks and the pJ per FLOP (precision, row) of each precision: from the sanitized knobs
    `san` (rows _SANITIZED), the knobs as given (`values`, rows _NUMERIC_KNOBS) and the rows' entries of the node,
    memory and link tables (`node_t`, ...: rows _NODE_COLUMNS, ...)."""
    num = dict(zip(_SANITIZED, san)).__getitem__
    raw = dict(zip(_RAW, values[_RAW_ROWS])).__getitem__
    node = dict(zip(_NODE_COLUMNS, node_t)).__getitem__
    out = {}
    cores, rows, cols_ = num("chip.cores"), num("chip.array_rows"), num("chip.array_cols")
    clock = np.maximum(num("chip.clock_ghz"), 1e-3)  # open bound 0: a flagged row computes at 1 MHz
    macs = cores * rows * cols_
    out.update(macs=macs, clock_ghz=clock)
    vec = raw("chip.vector_flops_per_cycle")
    out["vector_flops_per_cycle"] = np.where(np.isfinite(vec) & (vec >= 0), np.minimum(vec, 1e12), 2.0 * cores * cols_)
    sp, ca = node("sram_mm2_per_mb_scratchpad"), node("sram_mm2_per_mb_cache")
    out["sram_mm2_per_mb"] = np.where(is_cache, ca, sp)
    gsp, gca = node("sram_gbps_per_mb"), node("sram_gbps_per_mb_cache")
    sram_mb = num("chip.sram_mb")
    sram_t = raw("chip.sram_tbps")
    out["sram_tbps"] = np.where(np.isfinite(sram_t) & (sram_t > 0), np.minimum(sram_t, 1e9),
                                sram_mb * np.where(is_cache, gca, gsp) * clock / 1000.0)
    mem_attr = dict(zip(_MEMORY_COLUMNS, mem_t)).__getitem__
    has_mem = mem_i < n_mem
    stacks = np.where(has_mem, num("chip.memory_stacks"), 0)
    gbps_o, gb_o = raw("chip.memory_gbps_per_stack"), raw("chip.memory_gb_per_stack")
    gbps = np.where(np.isfinite(gbps_o) & (gbps_o > 0), np.minimum(gbps_o, 1e9), mem_attr("bw_gbps_per_stack"))
    gbps_stack = np.where(has_mem, gbps, 0.0)
    gb_stack = np.where(has_mem, np.where(np.isfinite(gb_o) & (gb_o > 0), np.minimum(gb_o, 1e9),
                                          mem_attr("capacity_gb_per_stack")), 0.0)
    out.update(memory_stacks=stacks, mem_bw_tbps=stacks * gbps_stack / 1000.0, mem_gb=stacks * gb_stack)
    lat_o = raw("system.link_latency_us")
    out["links"] = np.where(link_i < n_link, num("chip.links"), 0)
    out["link_latency_us"] = np.where(np.isfinite(lat_o) & (lat_o >= 0), lat_o, dict(zip(_LINK_COLUMNS, link_t))[
        "latency_us"])
    dies = raw("chip.dies")
    out["dies"] = np.where(np.isfinite(dies) & (dies >= 1), BY_NAME["chip.dies"].clip(dies), 0)  # 0 = auto
    tdp = raw("chip.tdp_w")
    out["tdp_cap_w"] = np.where(np.isfinite(tdp) & (tdp > 0), tdp, 0.0)  # 0 = no cap
    peaks = 2.0 * macs * clock * speedups / 1000.0
    operand = np.where(registers, 1.0 + REGISTER_OPERAND_OVERHEAD, 1.0)
    out["mma_operand_factor"] = operand
    # a design's supply follows its clock along the node's voltage-frequency curve: (V/V_nom)² on every FLOP
    # and SRAM byte, above 1 over the node's nominal clock, below it under (dse.model.voltage; leakage at V_nom)
    nominal = node("nominal_clock_ghz")
    out["clock_over_nominal"] = clock / nominal
    reach = max_clock_ratio() * nominal   # the node's clock at its highest supply (dse.model.voltage)
    over = clock > reach * (1.0 + 1e-9)
    # (V/V_nom)² = voltage.design_energy_ratio(clock, nominal), from the one solve chip_power's leakage reads too
    supply = out["supply_voltage_ratio"] = voltage_ratio(out["clock_over_nominal"])
    volt = supply ** 2
    out["voltage_energy_ratio"] = volt
    # an operand read from a small bank travels a short distance (technology sram_banks): a scratchpad's
    # bank is its share per core, a cache is shared by every core (the large-array figure)
    sb = tech.sram_banks
    bank = np.clip(sram_mb / np.maximum(cores, 1.0), sb.min_bank_mb, sb.reference_bank_mb)
    out["sram_bank_energy_ratio"] = np.where(is_cache, 1.0, (bank / sb.reference_bank_mb) ** sb.exponent)
    out["sram_pj_per_byte"] = node("sram_pj_per_byte") * volt * out["sram_bank_energy_ratio"]
    energy = energy_t * operand * volt
    bf16 = dict(zip(precisions, peaks))["bf16"]
    headline = np.where(bf16 > 0, bf16, peaks.max(axis=0))
    bw = np.where(out["mem_bw_tbps"] > 0, out["mem_bw_tbps"], out["sram_tbps"])
    ok = bw > 1e-9
    out["knee_flop_per_byte"] = np.where(ok, headline / np.where(ok, bw, 1.0), 0.0)
    out["peak_tflops_headline"] = headline
    return out, over, peaks, energy


def _derived_compiled(dk, san, values, node_t, mem_i, n_mem, mem_t, link_i, n_link, link_t, is_cache, registers,
                      speedups, energy_t, precisions, tech) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """`_derived` in one pass of `design_kernel.rows_kernel` (`_rows_kernel`): the same values, to the bit."""
    n = san.shape[1]
    sb = tech.sram_banks
    e = float(sb.exponent)
    # numpy's power of an array by these scalars is another ufunc (its fast path), the rest libm's pow
    form = {0.5: 0.0, 2.0: 1.0, -1.0: 3.0, 1.0: 4.0, 0.0: 5.0}.get(e, 2.0)
    sc = np.array([max_clock_ratio(), 1.0 + REGISTER_OPERAND_OVERHEAD, sb.min_bank_mb, sb.reference_bank_mb, e, form,
                   *_DIES_BOUNDS])
    out = np.empty((len(dk.ROWS_OUT), n))
    peaks = np.empty(speedups.shape)
    energy = np.empty(energy_t.shape)
    dk.rows_kernel(san, values[_RAW_ROWS], node_t[_NODE_KROWS], kernel_column(mem_i, n, np.int64), n_mem, mem_t,
                   kernel_column(link_i, n, np.int64), n_link, link_t, kernel_column(is_cache, n, np.bool_),
                   kernel_column(registers, n, np.bool_), kernel_column_2d(speedups), kernel_column_2d(energy_t),
                   precisions.index("bf16"), sc, curve_constants(), out, peaks, energy)
    got = dict(zip(dk.ROWS_OUT, out))
    return got, got.pop("over") != 0.0, peaks, energy


def kernel_column_2d(x: np.ndarray) -> np.ndarray:
    """`x` (2-D float64) as a C-contiguous writable array (itself when it is one)."""
    if type(x) is np.ndarray and x.dtype == np.float64 and x.flags.c_contiguous and x.flags.writeable:
        return x
    return np.array(x, np.float64, order="C")


def _rows_kernel(precisions: tuple[str, ...]):
    """dse.model.design_kernel when `from_columns` derives its columns by `rows_kernel`: the compiled kernels on and
    the voltage curve compiled (`voltage.curve_kernel`: numpy's log and power are libm's), and the technology has a
    bf16 rate (else `_derived` in numpy)."""
    dk = curve_kernel()
    return dk if dk is not None and "bf16" in precisions else None


def _check_knobs(values: np.ndarray, c: dict[str, np.ndarray], names: dict[str, np.ndarray], flags: _Flags,
                 ok_all: np.ndarray | None = None) -> None:
    """Flag numeric knobs (`values`: rows of _NUMERIC_KNOBS) outside their registry bounds (NaN compares False, so
    missing values are caught too) and rows breaking a cross-knob rule; messages only for the flagged rows.
    `ok_all`: `_BOUNDS.in_bounds(values)` when the caller has it."""
    if ok_all is None:
        ok_all = _BOUNDS.in_bounds(values)
    all_in = np.count_nonzero(ok_all) == ok_all.size  # (all in bounds: one check)
    for j in (np.flatnonzero(~ok_all.all(axis=1)) if not all_in else ()):
        k, bad = _NUMERIC_KNOBS[j], ~ok_all[j]
        v = c[k.name]
        msgs = np.full(len(v), "", dtype=object)
        rule = k.rule()
        msgs[bad] = [f"{k.name} must be {rule} (got {x:g})" for x in v[bad].tolist()]
        flags.flag(bad, msgs)
    env = {**c, **names}
    for r in RULES:
        ok = np.asarray(r.ok(env), bool)
        if np.count_nonzero(ok) == ok.size:
            continue
        bad = ~np.broadcast_to(ok, (flags.valid.shape[0],))
        if bad.any():
            msgs = np.full(len(bad), "", dtype=object)
            msgs[bad] = [f"{r.knob}: " + r.message({x: env[x][i] for x in r.reads}) for i in np.flatnonzero(bad)]
            flags.flag(bad, msgs)


# Operand delivery of a register-sourced matrix instruction on a SIMT core (chip.mma_operands = registers:
# Ampere's mma.sync and CDNA 3's MFMA read A, B and the accumulators from the register file on every warp /
# wavefront instruction). Dally (Hot Chips 2023 keynote "Hardware for Deep Learning", 45 nm figures; recalled,
# not in the reference notes): instruction fetch, decode and operand fetch cost ~30 pJ per instruction, against
# 110 pJ of math for Volta's register-sourced HMMA (fp16) and 160 pJ for Turing's IMMA (int8); 30/110 = 0.27 of
# the MAC energy. Bounds 0.16-0.27 (IMMA: 30/160 = 0.19; the slide's percentages read as a share of the total:
# 0.16-0.22). The same relative overhead at every precision: a narrow precision packs more FLOPs into an
# instruction and moves proportionally narrower operands. The node tables' energy per FLOP (ReaLLM fma_fp16,
# Graphcore HC33) is the MAC's. Hopper's wgmma and Blackwell's tcgen05 (chip.mma_operands = shared) take A and B
# from shared memory once per 64×N×16 warpgroup instruction (NVIDIA PTX ISA), 32-128× the FLOPs of a 16×8×16
# mma.sync, which amortises the per-instruction overhead to ≲1 %: taken as 0 (a lower bound: Hopper's
# accumulators still sit in registers). Systolic arrays are fed from SRAM, whose traffic the model charges per
# byte: the knob does not apply to them.
REGISTER_OPERAND_OVERHEAD = 30.0 / 110.0


def _energy_per_flop(tech: Technology, nodes: list, node_i: np.ndarray) -> np.ndarray:
    """pJ per FLOP per precision (of `tech.precision_speedup`, rows of the result) and row: the node's table, whose
    precisions follow the operand width by one rule (technology `mac_energy`: multiplier ∝ significand², plus the
    accumulator's add), whatever rate the design runs them at. A precision the row lacks keeps the table value;
    the model charges an operator the energy of the precision it runs on (`dse.model.perf.run_energy`)."""
    known = tuple(tech.precision_speedup)
    return _table(nodes, ("energy", known), lambda: np.array(
        [[nd.energy_pj_per_flop[p] for nd in nodes] for p in known], dtype=float)).take(node_i, axis=1)


_PRECISION_TABLES: dict[tuple, tuple] = {}


def _precision_table(tech: Technology) -> tuple[tuple[str, ...], np.ndarray, tuple[str, ...]]:
    """Of `tech.precision_speedup`: its precisions, their default speedups as a column and each precision's override
    knob; once per table (keyed on its items)."""
    key = tuple(tech.precision_speedup.items())
    hit = _PRECISION_TABLES.get(key)
    if hit is None:
        if len(_PRECISION_TABLES) > 256:
            _PRECISION_TABLES.clear()
        known = tuple(p for p, _ in key)
        default = np.array([float(x) for _, x in key]).reshape(-1, 1)
        hit = _PRECISION_TABLES[key] = (known, default, tuple(f"chip.precision_speedup.{p}" for p in known))
    return hit


@functools.lru_cache(maxsize=4096)
def _parse_precisions(s: str, known: tuple[str, ...]) -> tuple[tuple[bool, ...], str]:
    """A canonical 'a,b,c' precision set: membership per known precision and the reason it is bad ('' if fine);
    cached, as a study repeats the same few sets."""
    items = [p for p in s.split(",") if p]
    unknown = [p for p in items if p not in known]
    bad = ""
    if unknown:
        bad = "chip.precisions: " + suggest(unknown[0], list(known), "precision")
    if not items:
        bad = "chip.precisions: at least one precision is required"
    return tuple(p in items for p in known), bad


@functools.lru_cache(maxsize=1024)
def _parsed_sets(canon: tuple[str, ...], known: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Of canonical precision sets `canon` (`_parse_precisions` each): membership (set, known precision), the
    reasons (set,), which are bad and whether any is; cached (read-only to callers), as a study repeats the same
    few sets."""
    parsed = [_parse_precisions(s, known) for s in canon]
    members = np.array([m for m, _ in parsed], dtype=bool).reshape(len(parsed), len(known))
    reasons = np.array([b for _, b in parsed] or [""], dtype=object)
    bad_code = reasons != ""
    return members, reasons, bad_code, bool(bad_code.any())


def _speedups(columns: Mapping[str, Any], n: int, tech: Technology, flags: _Flags) -> np.ndarray:
    """Throughput multiplier per precision (of `tech.precision_speedup`, a row each) and design (0 = unsupported),
    with per-row overrides."""
    # the default (a list of names) as one 'a,b,c' string: a bare list of n names would read as one per row
    inv, canon = _precision_sets(columns.get("chip.precisions", ",".join(_default("chip.precisions"))), n)
    known_t, default, override = _precision_table(tech)
    known = list(known_t)
    members, reasons, bad_code, any_bad = _parsed_sets(tuple(canon), known_t)
    if any_bad:
        flags.flag(bad_code[inv], reasons[inv])
    member = members[inv].T  # (precision, row)
    out = np.where(member, default, 0.0)
    for j, (p, key) in enumerate(zip(known, override)):
        if key in columns:
            mult = np.full(n, float(tech.precision_speedup[p]))
            o = np.asarray(_broadcast(columns[key], n), dtype=object)
            o = np.array([np.nan if v is None else float(v) for v in o]) if o.dtype == object else o.astype(float)
            mult = np.where(np.isfinite(o) & (o > 0), o, mult)
            out[j] = np.where(member[j], mult, 0.0)
    return out
