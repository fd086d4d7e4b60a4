"""The on-wafer mesh of a wafer-scale chip (issue 11; technology `wafer_fabric`): a 2-D mesh of routers, one per
tile of the wafer, `hop_cycles` per hop and `link_bytes_per_cycle` per link and direction. `dse.model.perf` adds its
term to each operator of a wafer-scale design (`perf._mesh_terms`); the compiled step kernel restates it term by term
(`step_kernel._time_batch`'s wafer-scale pass). Pure numpy on a `perf.HwView` (duck-typed: this module imports nothing
of dse, so that both perf and the kernel module may import it).

Modelling choices (each keeps "more hardware is never slower" exact, tests/test_wafer_mesh.py):
- The mesh's routers are the wafer's tiles (technology: the wafer-scale package's 46,225 mm² over the 0.05 mm² tile,
  924,500 routers, WSE-3's 900k cores plus spares), not the design's `cores`: a router per core would put more hops
  between the same SRAM when cores are added at the same SRAM (the cores' share of each region's SRAM bandwidth
  falls too), so a design with more cores could be slower. A design's cores and SRAM are spread over the wafer's
  tiles; a small wafer-scale design is charged the whole wafer's distances (it pays for the whole wafer too:
  cost.py prices one die per wafer).
- Regions are chosen per operator and may overlap (a core's SRAM holds slices of many layers' weights; the residency
  check already bounds their sum by the SRAM), and a step's operators run one after the other: the layer pipeline
  at batch 1. Pipelining tokens of several requests through disjoint regions at once (more throughput at a larger
  batch) is not credited.
- A region must hold its operator's weights and KV at the wafer's SRAM density (2^-k ≥ bytes / SRAM), a bound that
  falls with SRAM; weights that stream from off-chip memory are held to the same bound (conservative).
"""

from __future__ import annotations

import numpy as np

# On-wafer mesh (`wafer_mesh`): traversals of its region per kernel of an operator. A matrix operator broadcasts its
# input vector along the region's columns and reduces its partial sums along its rows (two traversals of the side); a
# vector operator passes its vector through the region once (a fused epilogue rides in its host's traversals).
MESH_TRAVERSALS_MATRIX = 2.0
MESH_TRAVERSALS_VECTOR = 1.0


# the ladder of regions (`wafer_mesh`): for k = 1 ... 63, the area 2^-k, its side √(2^-k), 1 / side and 2^k, each computed
# as `wafer_mesh` computes it (halvings, IEEE √ and divisions: the same bits), so that the compiled kernel reads them
LADDER_K = 63
_P = np.array([0.5 ** k for k in range(1, LADDER_K + 1)])  # (exact: powers of two)
LADDER = np.ascontiguousarray(np.stack([_P, np.sqrt(_P), 1.0 / np.sqrt(_P), 1.0 / _P]))


def wafer_split_min(hw, split_k_min: float):
    """The smallest slice of K a core keeps under split-K: `split_k_min` (perf.SPLIT_K_MIN), or on a wafer-scale chip
    its arrays' rows (one array's worth of a weight column: a wafer spreads a matrix over its cores' SRAM, and the
    partial sums' reduction is the mesh's traversal of the region, priced by `wafer_mesh`, not an on-chip reduction
    per slice). A scalar when no design is wafer-scale, else (n,)."""
    if hw.mesh_tiles is None:
        return split_k_min
    return np.where(np.asarray(hw.mesh_tiles) > 0, np.maximum(np.asarray(hw.rows, float), 1.0), float(split_k_min))


def wafer_mesh_constants(hw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per design, (n,) each: (routers of its on-wafer mesh, 0 if not wafer-scale; seconds of one traversal of the
    whole mesh's side, √tiles · hop_cycles / clock; seconds per byte through the links of one edge of the whole mesh,
    1 / (√tiles · link bytes per cycle · clock)). Zeros without a mesh."""
    n = hw.n
    if hw.mesh_tiles is None:
        z = np.zeros(n)
        return z, z, z
    clock = hw.clock_hz if hw.clock_hz is not None else np.full(n, 1e9)
    clock = np.maximum(np.asarray(clock, float), 1.0)
    tiles = np.asarray(hw.mesh_tiles, float)
    side = np.sqrt(tiles)
    wafer = tiles > 0
    hop = np.where(wafer, side * np.asarray(hw.mesh_hop_cycles, float) / clock, 0.0)
    fab = np.where(wafer, 1.0 / np.maximum(side * np.asarray(hw.mesh_link_bytes, float) * clock, 1e-300), 0.0)
    return tiles, hop, fab


def wafer_mesh(local, trav, wkv, act, tiles, hop, fab, sram_bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The on-wafer mesh of a wafer-scale chip: (time s of the operator on its region, the mesh's part of it s, region
    exponent k) of each operator, arrays of the broadcast shape of the arguments (designs on axis 0, operators on
    axis 1); 0 where `trav` is 0 (collectives, fused epilogues: no region of their own).

    Each operator runs on a square region of a fraction 2^-k of the wafer's `tiles` routers (k = 0, 1, ...; regions
    of different operators may overlap: a core's SRAM holds slices of many layers, and a step's operators run one
    after the other). On it, as a roofline (throughput roofs take the larger, latency adds):
        max(local · 2^k,          its on-wafer work (`local`: compute or SRAM time on the whole wafer) on 2^-k of it,
            act · fab · 2^k/2)    its activation bytes streamed through the links of the region's edge (`fab`: s per
                                  byte through the whole wafer's edge), overlapped with the work
      + trav · hop · 2^-k/2       `trav` traversals of the region's side, √(2^-k · tiles) hops (`hop`: the whole
                                  side's): the head of the broadcast and of the reduction, which nothing hides
    The region is the k that minimises it among the regions that hold the operator's weights and KV
    (2^-k ≥ wkv / sram_bytes) and at least one router; the time is convex in k, so the first k that does not improve
    ends the search. A fixed ladder of sizes (halving the area) rather than the continuous optimum ((2A/B)^(2/3) of
    A/c + B√c, within 3 % of it), so that the choice is exact arithmetic (+, ×, /, √, max: the compiled kernel gives
    the same bits) and each candidate's time is non-increasing in every resource (local, hop and fab fall with MACs,
    SRAM bandwidth and clock; the lower bound falls with SRAM): more hardware never makes an operator slower. The
    mesh part is the latency plus the streaming time."""
    local, trav, wkv, act = (np.asarray(x, float) for x in (local, trav, wkv, act))
    H = trav * np.asarray(hop, float)[:, None]
    V = act * np.asarray(fab, float)[:, None]
    lo = wkv / np.maximum(np.asarray(sram_bytes, float), 1.0)[:, None]
    tiles = np.asarray(tiles, float)[:, None]
    best = np.maximum(local, V) + H
    best, H, V, lo = np.broadcast_arrays(best, H, V, lo)
    best = best.copy()
    mesh = H + V
    kstar = np.zeros(best.shape)
    live = np.broadcast_to(trav > 0, best.shape)
    for k in range(1, LADDER_K + 1):
        p, sq, r, m = LADDER[:, k - 1]
        live = live & (p >= lo) & (p * tiles >= 1.0)
        if not live.any():
            break
        b = H * sq
        c = V * r
        t = np.maximum(local * m, c) + b
        better = live & (t < best)
        best = np.where(better, t, best)
        mesh = np.where(better, b + c, mesh)
        kstar = np.where(better, float(k), kstar)
        live = better
    on = np.broadcast_to(trav > 0, best.shape)
    return np.where(on, best, 0.0), np.where(on, mesh, 0.0), kstar
