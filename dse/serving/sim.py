"""Discrete-event simulator of one continuous-batching engine: the ground truth for `analytic`.

Scheduler (vLLM-style, one iteration at a time):
1. every decoding sequence runs one step (k+1 tokens under speculative decoding, of which
   1 + Geometric-truncated-at-k are accepted); a sequence that needs a new KV block when none is
   free preempts the most recently admitted running request (recompute: its blocks are freed and it
   returns to the head of the queue to prefill its prompt plus the tokens it already generated);
2. the remaining token budget (chunk_tokens − decode tokens) goes to prefill chunks, first of
   requests already being prefilled, then of new requests admitted first-come-first-served while
   fewer than max_batch are running and the free blocks hold their prompt (with `kv_reserve`: their
   prompt and whole output, so they never grow nor are preempted: TensorRT-LLM GUARANTEED_NO_EVICT);
3. the iteration takes EngineCoeffs.iteration_time_s, plus the prefix-cache load of its chunks
   (t_per_cached_token_s × the request's cached tokens × chunk / computed tokens); a request whose
   last prompt chunk ran emits
   its first token at the end of the iteration (TTFT), and decoding sequences emit their tokens.
Requests whose prompt was prefilled elsewhere (disaggregated decode pool) arrive with no prefill work.
A Python loop per iteration, numpy over the decoding batch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dse.serving.engine import DisaggFleet, EngineCoeffs
from dse.workloads.serving import ServingWorkload


@dataclass
class SimResult:
    """Per-request records of a simulation (seconds), and engine-level integrals for Little's law."""

    arrival_s: np.ndarray
    first_token_s: np.ndarray
    finish_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    preemptions: int = 0
    iterations: int = 0
    busy_s: float = 0.0
    in_system_integral: float = 0.0   # ∫ requests in the engine (queued or running) dt
    decode_integral: float = 0.0      # ∫ decoding sequences dt
    end_s: float = 0.0

    @property
    def ttft_s(self) -> np.ndarray:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> np.ndarray:
        """(finish − first token) / (output − 1) of requests with more than one output token."""
        m = self.output_tokens > 1
        return (self.finish_s[m] - self.first_token_s[m]) / (self.output_tokens[m] - 1)

    def steady(self, warmup_fraction: float = 0.1) -> "SimResult":
        """Records without the first `warmup_fraction` of arrivals (the empty-system transient)."""
        k = int(len(self.arrival_s) * warmup_fraction)
        s = slice(k, None)
        return SimResult(self.arrival_s[s], self.first_token_s[s], self.finish_s[s], self.prompt_tokens[s],
                         self.output_tokens[s], self.preemptions, self.iterations, self.busy_s,
                         self.in_system_integral, self.decode_integral, self.end_s)


def _blocks(tokens, block: int):
    return -(-tokens // block)


def simulate_engine(engine: EngineCoeffs, arrival_s: np.ndarray, prompt: np.ndarray, computed: np.ndarray,
                    output: np.ndarray, block_tokens: int, seed: int = 0,
                    closed_loop: bool = False) -> SimResult:
    """Run one engine (design 0 of `engine`) over the given requests, sorted by arrival.

    prompt: prompt tokens (KV held); computed: tokens to prefill (prompt minus prefix-cache hits;
    0 = already prefilled elsewhere: the request joins the decode batch directly and its first token
    time is its arrival); output: tokens to generate (≥ 1). With closed_loop, arrival_s holds only
    the start times of the first requests of each client; the next request of a client arrives when
    its previous one finishes (arrival_s is rewritten).
    """
    e = engine.take(0)
    a, bseq, ctok, dkv = (float(e.t_fixed_s[0]), float(e.t_per_seq_s[0]), float(e.t_per_token_s[0]),
                          float(e.t_per_kv_token_s[0]))
    max_b, budget_max = int(e.max_batch[0]), int(e.chunk_tokens[0])
    k, alpha = int(e.spec_k[0]), float(e.spec_acceptance[0])
    t_load = float(e.t_per_cached_token_s[0])   # prefix-cache KV brought from its tier, per cached token
    xpre = float(e.t_prefill_extra_s[0])        # a prefill token's extra (attention-DP imbalance)
    free = int(e.kv_capacity_tokens[0]) // block_tokens
    reserve = bool(e.kv_reserve[0])   # admission holds the prompt's and the whole output's blocks
    rng = np.random.default_rng(seed)
    n = len(prompt)
    arrival = np.array(arrival_s, dtype=float)
    prompt = np.asarray(prompt, dtype=np.int64)
    computed = np.asarray(computed, dtype=np.int64)
    output = np.asarray(output, dtype=np.int64)
    if np.any(_blocks(prompt + output, block_tokens) > free):
        raise ValueError("a request's prompt + output does not fit in the engine's KV cache alone")
    first = np.full(n, np.nan)
    finish = np.full(n, np.nan)
    # per-request progress: generated tokens, prefill still to do, prefix-cached tokens
    generated = np.zeros(n, dtype=np.int64)
    todo = computed.copy()
    cached = prompt - computed

    waiting: deque[int] = deque()
    prefilling: list[int] = []     # admitted, prefill in progress, in admission order
    admit_no = np.zeros(n, dtype=np.int64)
    held = np.zeros(n, dtype=np.int64)  # KV blocks held
    d_rid = np.zeros(0, dtype=np.int64)  # decoding batch (dense)
    d_ctx = np.zeros(0, dtype=np.int64)
    d_left = np.zeros(0, dtype=np.int64)

    next_client_req = n  # closed loop: the next client request not yet sent
    if closed_loop:
        next_client_req = int(np.sum(np.isfinite(arrival)))
        arrival[next_client_req:] = np.inf
    next_arr = 0
    t = 0.0
    done = 0
    admits = 0
    preempt = 0
    iters = 0
    busy = 0.0
    in_sys_int = 0.0
    dec_int = 0.0
    in_system = 0

    def admit_blocks(r: int) -> int:
        """KV blocks request r takes at admission: its context so far plus the next token, or, reserving,
        its prompt and whole output."""
        return _blocks(int(prompt[r] + (output[r] if reserve else generated[r] + 1)), block_tokens)

    def new_blocks(ctx: np.ndarray) -> np.ndarray:
        """Blocks the decoding sequences need beyond what they hold to reach contexts `ctx`."""
        return np.maximum(_blocks(ctx, block_tokens) - held[d_rid], 0)

    def admit(r: int, need_b: int) -> None:
        """Take request r off the head of the queue with the `need_b` KV blocks it is admitted on."""
        nonlocal free, admits
        waiting.popleft()
        free -= need_b
        held[r] = need_b
        admits += 1
        admit_no[r] = admits

    def start_decoding(r: int) -> None:
        """Put request r, its prompt prefilled, into the decoding batch."""
        nonlocal d_rid, d_ctx, d_left
        d_rid = np.append(d_rid, r)
        d_ctx = np.append(d_ctx, prompt[r] + generated[r])
        d_left = np.append(d_left, output[r] - generated[r])

    def advance(span: float, steps: int) -> None:
        """Run the clock over `steps` iterations that took `span` seconds."""
        nonlocal t, iters, busy, in_sys_int, dec_int
        t += span
        iters += steps
        busy += span
        in_sys_int += in_system * span
        dec_int += d_rid.size * span

    def finished(count: int) -> None:
        """`count` requests finished at t; in a closed loop each one's client sends its next request now."""
        nonlocal done, in_system, next_client_req
        done += count
        in_system -= count
        for _ in range(count if closed_loop else 0):
            if next_client_req < n:
                arrival[next_client_req] = t
                next_client_req += 1

    def decoded(gain) -> None:
        """The decoding sequences gained `gain` tokens each; those with their whole output leave."""
        nonlocal d_rid, d_ctx, d_left, free
        d_ctx = d_ctx + gain
        d_left = d_left - gain
        generated[d_rid] += gain
        fin = d_left <= 0
        if fin.any():
            ids = d_rid[fin]
            finish[ids] = t
            free += int(held[ids].sum())
            held[ids] = 0
            keep = ~fin
            d_rid, d_ctx, d_left = d_rid[keep], d_ctx[keep], d_left[keep]
            finished(ids.size)

    def preempt_one() -> bool:
        """Preempt the most recently admitted running request; False if none is running."""
        nonlocal d_rid, d_ctx, d_left, free, preempt, in_system
        cand_d = int(np.argmax(admit_no[d_rid])) if d_rid.size else -1
        cand_p = max(prefilling, key=lambda r: admit_no[r]) if prefilling else -1
        if cand_d < 0 and cand_p < 0:
            return False
        if cand_p >= 0 and (cand_d < 0 or admit_no[cand_p] > admit_no[d_rid[cand_d]]):
            r = cand_p
            prefilling.remove(r)
        else:
            r = int(d_rid[cand_d])
            keep = np.arange(d_rid.size) != cand_d
            d_rid, d_ctx, d_left = d_rid[keep], d_ctx[keep], d_left[keep]
        free += held[r]
        held[r] = 0
        # recompute: prefill the non-cached prompt plus what was generated (its KV is gone)
        todo[r] = computed[r] + generated[r]
        waiting.appendleft(r)
        preempt += 1
        return True

    while done < n:
        while next_arr < n and arrival[next_arr] <= t:
            waiting.append(next_arr)
            next_arr += 1
            in_system += 1
        if not waiting and not prefilling and d_rid.size == 0:
            if next_arr >= n or not np.isfinite(arrival[next_arr]):
                raise RuntimeError("simulator stalled with no work and no arrivals")  # pragma: no cover
            t = arrival[next_arr]
            continue
        # requests prefilled elsewhere (disaggregated decode pool) join the decode batch at once
        while waiting and todo[waiting[0]] == 0 and d_rid.size + len(prefilling) < max_b:
            r = waiting[0]
            need_b = admit_blocks(r)
            if need_b > free:
                break
            admit(r, need_b)
            if generated[r] == 0:
                first[r] = arrival[r]
                generated[r] = 1
            start_decoding(r)
        nd = d_rid.size
        if nd and not k and not waiting and not prefilling:
            # decode-only stretch: steps are deterministic until the next finish or arrival, so run
            # them at once (same times as stepping one by one)
            jmax = int(d_left.min())
            grow = new_blocks(d_ctx + jmax)
            if jmax > 1 and int(grow.sum()) <= free:
                t0 = a + bseq * nd + ctok * nd + dkv * int(d_ctx.sum())
                cum = np.cumsum(t0 + dkv * nd * np.arange(jmax))
                if next_arr < n and np.isfinite(arrival[next_arr]):
                    jmax = min(jmax, int(np.searchsorted(cum, arrival[next_arr] - t)) + 1)
                span = float(cum[jmax - 1])
                grow = new_blocks(d_ctx + jmax)
                free -= int(grow.sum())
                held[d_rid] += grow
                advance(span, jmax)
                decoded(jmax)
                continue
        # 1. decode step: tokens gained, KV blocks needed, preempt until they fit
        if nd:
            if k:
                gain = np.minimum(rng.geometric(1.0 - alpha, nd) - 1 if alpha > 0 else np.zeros(nd, np.int64), k) + 1
                gain = np.minimum(gain, d_left)
            else:
                gain = np.ones(nd, dtype=np.int64)
            need = new_blocks(d_ctx + gain)
            while int(need.sum()) > free:
                before = d_rid.copy()
                if not preempt_one():
                    break
                if d_rid.size != before.size:
                    keep = np.isin(before, d_rid)
                    gain, need = gain[keep], need[keep]
            nd = d_rid.size
            free -= int(need.sum())
            held[d_rid] += need
        budget = budget_max - nd * (k + 1)
        # 2. prefill chunks: running prefills first, then admit FCFS
        chunks: list[tuple[int, int]] = []
        kv_pref = 0
        for r in prefilling:
            if budget <= 0:
                break
            take = min(int(todo[r]), budget)
            chunks.append((r, take))
            budget -= take
        while waiting and nd + len(prefilling) < max_b:
            r = waiting[0]
            need_b = admit_blocks(r)
            if need_b > free or todo[r] == 0 or budget <= 0:
                break
            admit(r, need_b)
            prefilling.append(r)
            take = min(int(todo[r]), budget)
            chunks.append((r, take))
            budget -= take
        ptok = 0
        load = 0.0
        for r, take in chunks:
            ptok += take
            kv_pref += int(prompt[r] + generated[r] - todo[r] + take)
            load += cached[r] * take / max(int(computed[r]), 1)
        dt = (a + bseq * nd + ctok * (nd * (k + 1) + ptok) + xpre * ptok + dkv * (int(d_ctx.sum()) + kv_pref)
              + t_load * load)
        if nd == 0 and ptok == 0:
            # nothing runnable (head of queue waits for blocks or slots): wait for the next arrival
            if next_arr < n and np.isfinite(arrival[next_arr]):
                t = max(t, arrival[next_arr])
                continue
            raise RuntimeError("simulator deadlock: KV cache too small for the queued request")  # pragma: no cover
        advance(dt, 1)
        # 3. results of the iteration
        if nd:
            decoded(gain)
        for r, take in chunks:
            todo[r] -= take
            if todo[r] == 0:
                prefilling.remove(r)
                if generated[r] == 0:
                    first[r] = t
                    generated[r] = 1
                if generated[r] >= output[r]:
                    finish[r] = t
                    free += int(held[r])
                    held[r] = 0
                    finished(1)
                else:
                    start_decoding(r)
    return SimResult(arrival, first, finish, prompt, output, preempt, iters, busy, in_sys_int, dec_int, t)


def requests(workload: ServingWorkload, num_requests: int, seed: int = 0,
             rate_rps: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(arrival_s, prompt, computed, output) of `num_requests` Poisson arrivals drawn from the workload."""
    rng = np.random.default_rng(seed)
    rate = rate_rps if rate_rps is not None else workload.arrival_rate_rps
    if rate is None:
        raise ValueError("open-loop requests need an arrival rate")
    arrival = np.cumsum(rng.exponential(1.0 / rate, num_requests))
    prompt = workload.prompt_tokens.sample(rng, num_requests)
    output = workload.output_tokens.sample(rng, num_requests)
    return arrival, prompt, workload.computed_prompt(prompt), output


def simulate(engine: EngineCoeffs, workload: ServingWorkload, num_requests: int = 2000, seed: int = 0,
             rate_rps: float | None = None, replicas: int = 1) -> SimResult:
    """Simulate design 0 of `engine` serving the workload (one of `replicas` engines behind a random
    router, i.e. at rate / replicas); closed loop when the workload gives a concurrency."""
    if workload.concurrency is not None and rate_rps is None:
        rng = np.random.default_rng(seed)
        prompt = workload.prompt_tokens.sample(rng, num_requests)
        output = workload.output_tokens.sample(rng, num_requests)
        clients = max(1, round(workload.concurrency / replicas))
        arrival = np.full(num_requests, np.inf)
        arrival[:clients] = 0.0
        return simulate_engine(engine, arrival, prompt, workload.computed_prompt(prompt), output,
                               workload.kv_block_tokens, seed + 1, closed_loop=True)
    rate = (rate_rps if rate_rps is not None else workload.arrival_rate_rps) / replicas
    arr, prompt, computed, output = requests(workload, num_requests, seed, rate)
    return simulate_engine(engine, arr, prompt, computed, output, workload.kv_block_tokens, seed + 1)


def simulate_disagg(fleet: DisaggFleet, workload: ServingWorkload, num_requests: int = 2000, seed: int = 0,
                    rate_rps: float | None = None, design: int = 0) -> SimResult:
    """Simulate a disaggregated fleet (design `design`): random routing to prefill engines, KV transfer,
    random routing to decode engines; one record per request across the fleet."""
    rate = rate_rps if rate_rps is not None else workload.arrival_rate_rps
    arr, prompt, computed, output = requests(workload, num_requests, seed, rate)
    rng = np.random.default_rng(seed + 7)
    n_p, n_d = int(fleet.prefill_engines[design]), int(fleet.decode_engines[design])
    first = np.empty(num_requests)
    pre_e, dec_e = fleet.prefill.take(design), fleet.decode.take(design)
    route = rng.integers(0, n_p, num_requests)
    for i in range(n_p):
        m = route == i
        if m.any():
            r = simulate_engine(pre_e, arr[m], prompt[m], computed[m], np.ones(m.sum(), np.int64),
                                workload.kv_block_tokens, seed + 11 + i)
            first[m] = r.first_token_s
    ready = first + (fleet.link_latency_s[design] + fleet.prefill.kv_bytes_per_token[design] * prompt
                     / (fleet.link_gbps[design] * 1e9))
    finish = first.copy()
    route = rng.integers(0, n_d, num_requests)
    preempt = 0
    for i in range(n_d):
        m = (route == i) & (output > 1)
        if m.any():
            idx = np.flatnonzero(m)
            order = idx[np.argsort(ready[idx], kind="stable")]
            # the decode engine receives the prompt's KV and the first token: output − 1 tokens to go
            r = simulate_engine(dec_e, ready[order], prompt[order], np.zeros(order.size, np.int64),
                                output[order], workload.kv_block_tokens, seed + 101 + i)
            finish[order] = r.finish_s
            preempt += r.preemptions
    return SimResult(arr, first, finish, prompt, output, preempt)
