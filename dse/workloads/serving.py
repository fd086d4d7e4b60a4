"""A request-level serving workload: arrivals, prompt/output length distributions, prefix caching, SLOs.

Every length distribution offers `sample(rng, n)` (for the simulator) and `support()` — a discrete
(values, probabilities) table of at most `SUPPORT_POINTS` points — from which the analytical model
takes its expectations and percentiles, so both models see the same distribution.
"""

from __future__ import annotations

import re
from statistics import NormalDist
from typing import Annotated, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Points of the discrete table that stands in for a continuous distribution in the analytical model:
# quantile midpoints, so the error of E[f(L)] is O(1/64²) for smooth f (midpoint rule).
SUPPORT_POINTS = 64


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def support(self) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def mean(self) -> float:
        v, p = self.support()
        return float(v @ p)


class Fixed(_Dist):
    """Every request has the same length."""

    kind: Literal["fixed"] = "fixed"
    tokens: int = Field(ge=1)

    def support(self):
        return np.array([float(self.tokens)]), np.array([1.0])

    def sample(self, rng, n):
        return np.full(n, self.tokens, dtype=np.int64)


class Uniform(_Dist):
    """Lengths uniform over the integers min_tokens..max_tokens (inclusive)."""

    kind: Literal["uniform"] = "uniform"
    min_tokens: int = Field(ge=1)
    max_tokens: int = Field(ge=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens {self.min_tokens} > max_tokens {self.max_tokens}: swap them")
        return self

    def support(self):
        lo, hi = self.min_tokens, self.max_tokens
        if hi - lo + 1 <= SUPPORT_POINTS:
            v = np.arange(lo, hi + 1, dtype=float)
            return v, np.full(v.size, 1.0 / v.size)
        q = (np.arange(SUPPORT_POINTS) + 0.5) / SUPPORT_POINTS
        return lo - 0.5 + q * (hi - lo + 1), np.full(SUPPORT_POINTS, 1.0 / SUPPORT_POINTS)

    def sample(self, rng, n):
        return rng.integers(self.min_tokens, self.max_tokens + 1, size=n)


class LogNormal(_Dist):
    """Lengths exp(N(ln median, sigma²)), rounded and clipped to [min_tokens, max_tokens]."""

    kind: Literal["lognormal"] = "lognormal"
    median_tokens: float = Field(gt=0)
    sigma: float = Field(gt=0, le=3)
    min_tokens: int = Field(1, ge=1)
    max_tokens: int = Field(1_000_000, ge=1)

    @model_validator(mode="after")
    def _order(self):
        if self.min_tokens > self.max_tokens:
            raise ValueError(f"min_tokens {self.min_tokens} > max_tokens {self.max_tokens}: swap them")
        return self

    def _clip(self, x):
        return np.clip(np.rint(x), self.min_tokens, self.max_tokens)

    def support(self):
        q = (np.arange(SUPPORT_POINTS) + 0.5) / SUPPORT_POINTS
        z = np.array([NormalDist().inv_cdf(float(x)) for x in q])
        return self._clip(self.median_tokens * np.exp(self.sigma * z)), np.full(q.size, 1.0 / q.size)

    def sample(self, rng, n):
        return self._clip(self.median_tokens * np.exp(self.sigma * rng.standard_normal(n))).astype(np.int64)


class Histogram(_Dist):
    """An empirical histogram: `tokens: [128, 512, 2048]` with `weights: [0.5, 0.3, 0.2]` (normalised)."""

    kind: Literal["histogram"] = "histogram"
    tokens: tuple[int, ...] = Field(min_length=1)
    weights: tuple[float, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self):
        if len(self.tokens) != len(self.weights):
            raise ValueError(f"tokens has {len(self.tokens)} entries but weights has {len(self.weights)}: "
                             "give one weight per length")
        if min(self.tokens) < 1:
            raise ValueError("tokens must be ≥ 1")
        if min(self.weights) < 0 or sum(self.weights) <= 0:
            raise ValueError("weights must be ≥ 0 with a positive sum")
        return self

    def support(self):
        w = np.asarray(self.weights, dtype=float)
        return np.asarray(self.tokens, dtype=float), w / w.sum()

    def sample(self, rng, n):
        v, p = self.support()
        return rng.choice(v, size=n, p=p).astype(np.int64)


LengthDist = Annotated[Union[Fixed, Uniform, LogNormal, Histogram], Field(discriminator="kind")]

_PCT = re.compile(r"^p(\d{1,2}(\.\d+)?)$")


def percentile_of(key: str) -> float:
    """`"p99"` → 0.99, `"p99.9"` → 0.999; anything else is an error naming the accepted form."""
    m = _PCT.match(key)
    if not m or not 0 < float(m.group(1)) < 100:
        raise ValueError(f"SLO key {key!r} is not a percentile: write p50, p90, p99 or p99.9")
    return float(m.group(1)) / 100.0


class Disaggregation(BaseModel):
    """Serve with separate prefill and decode pools (DistServe / Splitwise): the dp replicas of the
    chosen plan are split, the mapping trying each prefill share (and co-location) and keeping the
    split with the highest rate in SLO; the KV cache crosses a link between the pools."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 400 Gb/s RDMA NIC per replica (ConnectX-7 class) = 50 GB/s; a few-µs RDMA plus software ≈ 1 ms
    link_gbps: float = Field(50.0, gt=0, description="KV transfer bandwidth between pools (GB/s)")
    link_latency_ms: float = Field(1.0, ge=0, description="fixed latency of one KV transfer (ms)")
    prefill_shares: tuple[float, ...] = Field((0.25, 0.5, 0.75), min_length=1,
                                              description="fractions of the fleet tried as the prefill pool: of "
                                              "the design's replicas, or (with a pool design) of the fleet's chips")
    prefill_design: str | None = Field(None, description="a prefill pool of its own chip: a catalog design name "
                                       "(`dse catalog`) or a design YAML file; the fleet is then the design's "
                                       "system decoding plus replicas of this design prefilling (shares: the "
                                       "fraction of the fleet's chips that prefill). A study may instead "
                                       "search it with `prefill.chip.*` / `prefill.system.*` knobs")

    @field_validator("prefill_shares")
    @classmethod
    def _shares(cls, v):
        if not all(0 < x < 1 for x in v):
            raise ValueError(f"prefill_shares {list(v)} must each be strictly between 0 and 1")
        return v


class Speculation(BaseModel):
    """Speculative decoding with MTP-style draft heads (a one-layer copy of the model, sharing its LM
    head): the mapping tries each draft length k (and none) and keeps the one with the highest rate in
    SLO. Each drafted token is accepted with probability `acceptance` (tokens per verification step
    (1 − α^(k+1))/(1 − α))."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: tuple[int, ...] = Field((1, 2, 3), min_length=1, description="draft lengths tried")
    acceptance: float = Field(gt=0, lt=1, description="per-token acceptance probability α")

    @field_validator("k")
    @classmethod
    def _k(cls, v):
        if not all(1 <= x <= 16 for x in v):
            raise ValueError(f"k {list(v)}: draft lengths must be 1..16")
        return v


class ContextParallel(BaseModel):
    """Context parallelism for long prompts: the mapping tries running groups of `cp` replicas as one
    ring-attention engine (a prompt prefilled cp× faster, fewer engines) and keeps what serves more."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cp: tuple[int, ...] = Field((2, 4, 8), min_length=1, description="context-parallel ranks tried")

    @field_validator("cp")
    @classmethod
    def _cp(cls, v):
        if not all(2 <= x <= 64 for x in v):
            raise ValueError(f"cp {list(v)}: ranks must be 2..64 (1 = no context parallelism is always tried)")
        return v


class KvOffload(BaseModel):
    """A host-memory tier for the prefix cache (LMCache / vLLM CPU offload, CXL memory): the mapping may
    keep the workload's `prefix_cache_tokens` there instead of in device memory — the device keeps its
    whole KV room for running sequences (a larger feasible batch), and each request brings its cached
    prefix's KV over the host link (transfer time in its prefill). Per chip of a replica (a tp × pp ×
    ep replica has that many host links and shares of host memory)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # DGX H100: 2 TB of system memory for 8 GPUs (NVIDIA DGX H100 datasheet) = 256 GB per GPU; a capacity, so
    # GB of 2^30 bytes like every memory capacity (dse.units.MEMORY_GB_BYTES)
    host_gb_per_chip: float = Field(256.0, gt=0, description="host memory for the prefix cache per chip "
                                    "(GB of 2^30 bytes: memory capacities are binary, JEDEC)")
    # PCIe 5.0 x16: 32 GT/s × 16 lanes, 128b/130b ≈ 63 GB/s per direction (PCI-SIG); CXL 2.0 x16 the same
    link_gbps_per_chip: float = Field(63.0, gt=0, description="host link bandwidth per chip (GB/s)")


class ServingWorkload(BaseModel):
    """Requests offered to a serving fleet, and the service levels they must get.

    Give `arrival_rate_rps` (open loop, Poisson arrivals) or `concurrency` (closed loop: that many
    clients, each sending its next request when the previous one finishes). SLOs are percentiles in
    milliseconds, e.g. `ttft_ms: {p50: 300, p99: 2000}`, `tpot_ms: {p99: 50}`; TPOT of a request is
    (end-to-end latency − TTFT) / (output tokens − 1).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arrival_rate_rps: float | None = Field(None, gt=0, description="Poisson arrival rate (requests/s)")
    concurrency: int | None = Field(None, ge=1, description="closed-loop clients (instead of a rate)")
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    prefix_cache_hit_rate: float = Field(0.0, ge=0, lt=1, description="prompt fraction served from cache")
    ttft_ms: dict[str, float] = Field(default_factory=dict)
    tpot_ms: dict[str, float] = Field(default_factory=dict)
    kv_block_tokens: int = Field(16, ge=1, le=4096, description="paged-KV block size (tokens)")
    disaggregation: Disaggregation | None = Field(None, description="let the mapping split prefill and decode pools")
    speculation: Speculation | None = Field(None, description="let the mapping choose a speculative draft length")
    prefix_cache_tokens: int = Field(0, ge=0, description="tokens of shared prefixes kept cached (system prompts, "
                                     "conversation history): KV room they take in the tier that holds them; "
                                     "0 = hits cost neither room nor transfer")
    kv_offload: KvOffload | None = Field(None, description="let the mapping keep the prefix cache in host memory")
    context_parallel: ContextParallel | None = Field(None, description="let the mapping run replicas as "
                                                     "context-parallel groups (long prompts)")

    @model_validator(mode="after")
    def _load(self):
        if (self.arrival_rate_rps is None) == (self.concurrency is None):
            raise ValueError("give exactly one of arrival_rate_rps (open loop) or concurrency (closed loop)")
        if self.kv_offload is not None and not (self.prefix_cache_tokens > 0 and self.prefix_cache_hit_rate > 0):
            raise ValueError("kv_offload places the prefix cache in host memory: give prefix_cache_tokens > 0 "
                             "and prefix_cache_hit_rate > 0 too")
        return self

    @field_validator("ttft_ms", "tpot_ms")
    @classmethod
    def _slo(cls, v: dict[str, float]) -> dict[str, float]:
        for k, ms in v.items():
            percentile_of(k)
            if not ms > 0:
                raise ValueError(f"{k}: {ms} ms must be > 0")
        return v

    def slo_quantiles(self, which: Literal["ttft", "tpot"]) -> list[tuple[float, float]]:
        """[(quantile, limit_s), ...] of one SLO, e.g. [(0.99, 2.0)] for `ttft_ms: {p99: 2000}`."""
        d = self.ttft_ms if which == "ttft" else self.tpot_ms
        return sorted((percentile_of(k), ms / 1e3) for k, ms in d.items())

    def computed_prompt(self, prompt: np.ndarray) -> np.ndarray:
        """Prompt tokens that must be prefilled after prefix-cache hits (at least one per request)."""
        return np.maximum(1, np.rint((1.0 - self.prefix_cache_hit_rate) * prompt)).astype(np.asarray(prompt).dtype)
