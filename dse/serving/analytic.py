"""Fast analytical model of a continuous-batching engine (and of a disaggregated fleet), vectorized over designs.

Approximations (each checked against `sim` in tests/test_serving_analytic.py):
- Decode batch. A decoding sequence sees N others, Poisson(N) as in an M/G/∞ system (exact for
  Poisson arrivals and independent lengths), plus itself. A step costs a + β·(N+1), β = t_per_seq +
  t_per_token·(k+1) + t_per_kv_token·K̄ (K̄ = mean context of a decoding sequence), and prefill work
  arriving at rate λ fills a fraction φ = λ·((t_per_token + t_prefill_extra)·E[prefill tokens] + t_per_kv_token·E[prefill
  KV reads] + t_per_cached_token·E[prefix-cached tokens]) of the time, spread over the steps:
  T_step = (a + β(N+1)) / (1 − φ). Little's law
  N = λ·E[steps per request]·T_step closes it: N = λD(a + β) / (1 − φ − λDβ), saturated when ≤ 0.
- TPOT of a request of O tokens = T_step/τ (τ = tokens per speculative step) plus fluctuations:
  prefill arrivals during its life (compound Poisson: variance and skew from the prompt
  distribution), the batch averaged over its life (M/D/∞ window variance), speculative acceptance;
  summed as a shifted gamma matched to mean, variance and skew, mixed over the output lengths.
- TTFT = wait + own prefill. The prefill queue is M/G/1 in the fluid work X(P) = P_c·t_b/m + t_per_token·P_c
  + t_per_kv_token·(prefill KV reads) (t_b = step time without prefill, m = token budget left after
  decode): P(wait > 0) = ρ = λE[X], wait | > 0 ~ exponential with the Pollaczek–Khinchine mean
  λE[X²]/(2(1 − ρ))/ρ. Without a prefill backlog a request still waits for the running decode step,
  uniform on [0, t_b], when any sequence is decoding (probability 1 − e^(−N)); the P-K mean
  drops the in-service first chunk that residual already covers (λE[x1²]/2). Own prefill:
  ceil(P_c/m) steps of t_b plus its tokens and KV reads. Mixed over the prompt lengths.
- Capacity: the batch (N + 3√N + prefilling) must fit max_batch and the paged KV (blocks of the
  block size, mean + 3σ of the resident tokens) the KV capacity; otherwise the design counts as
  saturated at that rate (the model does not queue for slots or blocks; the simulator does).
- Disaggregated: prefill engines are the model above with no decoding; decode engines with no
  prefill, each request paying the KV transfer and the residual of the running step once.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from dse._lazy import lazy_function
from dse.serving.engine import DisaggFleet, EngineCoeffs
from dse.workloads.serving import ServingWorkload

gammainc = lazy_function("scipy.special", "gammainc")  # imported on first call: only SLO percentiles need it
ndtr = lazy_function("scipy.special", "ndtr")

_BISECT_STEPS = 48
# prefill steps an arrival may find running are grouped by the prompt they carry into at most this many
# length classes (a speed/accuracy trade-off: the residual's tail follows the long prompts)
_STEP_GROUPS = 12


@dataclass
class LatencyModel:
    """Distributions of TTFT and TPOT per design (arrays (n,) or (n, support)); see module docstring."""

    saturated: np.ndarray          # (n,) bool: queue unstable or capacity exceeded at this rate
    rate_rps: np.ndarray           # (n,) per engine
    decode_batch: np.ndarray       # (n,) mean decoding sequences N
    step_s: np.ndarray             # (n,) mean decode step seen by a decoding sequence
    # TTFT: mixture over prompt support of (exp wait | uniform wait | no wait) + own prefill s_own
    p_prompt: np.ndarray           # (m,)
    s_own: np.ndarray              # (n, m)
    w_exp: np.ndarray              # (n,)
    theta_exp: np.ndarray          # (n,) gamma scale of the backlog wait given it is positive
    shape_w: np.ndarray            # (n,) gamma shape of that wait
    r_w: np.ndarray                # (n, 2) probabilities of waiting for a running step (uniform residual)
    r_h: np.ndarray                # (n, 2) ... of that step's (length-biased) duration
    # TPOT: mixture over output support (O ≥ 2) of shifted gammas
    p_output: np.ndarray           # (k,)
    tpot_mean: np.ndarray          # (n, k)
    tpot_var: np.ndarray           # (n, k)
    tpot_m3: np.ndarray            # (n, k) third central moment

    def ttft_cdf(self, x_s) -> np.ndarray:
        """P(TTFT ≤ x) per design; x broadcasts against (n,)."""
        x = np.asarray(x_s, dtype=float).reshape(-1, 1)
        y = x - self.s_own                                   # (n, m): time left for waiting
        th = np.maximum(self.theta_exp, 1e-300)[:, None]
        k = self.shape_w[:, None]
        we = self.w_exp[:, None]

        def g(t):     # gamma CDF of the backlog wait
            return gammainc(k, np.maximum(t, 0.0) / th)

        def ig(t):    # ∫0^t g
            t = np.maximum(t, 0.0)
            return t * g(t) - k * th * gammainc(k + 1.0, t / th)

        yp = np.maximum(y, 0.0)
        ig_y = ig(yp)
        c = (1.0 - self.r_w.sum(axis=1))[:, None] * ((1.0 - we) * (y >= 0) + we * g(y))
        for j in range(self.r_w.shape[1]):
            # residual uniform on [0, h] of the running step, then (probability we) the backlog wait
            h = np.maximum(self.r_h[:, j], 1e-300)[:, None]
            part = (1.0 - we) * np.minimum(h, yp) / h + we * (ig_y - ig(yp - h)) / h
            c = c + self.r_w[:, j][:, None] * part
        return np.where(self.saturated, 0.0, np.clip(c, 0.0, 1.0) @ self.p_prompt)

    def tpot_cdf(self, x_s) -> np.ndarray:
        """P(TPOT ≤ x) per design over requests with at least two output tokens."""
        x = np.asarray(x_s, dtype=float).reshape(-1, 1)
        c = _shifted_gamma_cdf(x, self.tpot_mean, self.tpot_var, self.tpot_m3)
        if self.p_output.size == 0:
            return np.where(self.saturated, 0.0, 1.0)
        return np.where(self.saturated, 0.0, c @ self.p_output)

    def ttft_quantile(self, q: float) -> np.ndarray:
        hi = np.max(self.s_own, axis=1) + self.r_h.max(axis=1) + (self.shape_w + 60.0 * np.sqrt(self.shape_w) + 60.0) * self.theta_exp + 1e-9
        return _quantile(self.ttft_cdf, q, hi, self.saturated)

    def tpot_quantile(self, q: float) -> np.ndarray:
        if self.p_output.size == 0:
            return np.zeros(self.saturated.size)
        hi = np.max(self.tpot_mean + 12.0 * np.sqrt(self.tpot_var), axis=1) + 1e-9
        return _quantile(self.tpot_cdf, q, hi, self.saturated)

    def ttft_mean(self) -> np.ndarray:
        w = self.w_exp * self.shape_w * self.theta_exp + (self.r_w * self.r_h).sum(axis=1) / 2
        return np.where(self.saturated, np.inf, w + self.s_own @ self.p_prompt)

    def tpot_mean_s(self) -> np.ndarray:
        m = self.tpot_mean @ self.p_output if self.p_output.size else np.zeros(self.saturated.size)
        return np.where(self.saturated, np.inf, m)


def _shifted_gamma_cdf(x, mean, var, m3):
    sd = np.sqrt(np.maximum(var, 1e-300))
    skew = np.maximum(m3, 0.0) / sd ** 3
    normal = ndtr((x - mean) / sd)
    g = np.maximum(skew, 1e-6)
    shape = 4.0 / g ** 2
    scale = sd * g / 2.0
    shift = mean - shape * scale
    gam = gammainc(np.minimum(shape, 1e6), np.maximum(x - shift, 0.0) / scale)
    return np.where(skew < 0.05, normal, gam)


def _quantile(cdf, q: float, hi: np.ndarray, saturated: np.ndarray) -> np.ndarray:
    """Vectorized bisection of cdf(x) = q on [0, hi] per design; inf where saturated."""
    lo = np.zeros_like(hi)
    hi = hi.copy()
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        ok = cdf(mid) >= q
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    return np.where(saturated, np.inf, hi)


@dataclass
class _Lengths:
    """Discrete supports of the workload's lengths (shared by all designs)."""

    prompt: np.ndarray
    computed: np.ndarray
    p_prompt: np.ndarray
    output: np.ndarray
    p_output: np.ndarray

    @classmethod
    def of(cls, w: ServingWorkload) -> "_Lengths":
        pv, pp = _support(w.prompt_tokens)
        ov, po = _support(w.output_tokens)
        pc = np.maximum(1.0, np.rint((1.0 - w.prefix_cache_hit_rate) * pv))
        return cls(pv, pc, pp, ov, po)


@lru_cache(maxsize=256)
def _support(dist) -> tuple[np.ndarray, np.ndarray]:
    """A length distribution's discrete table, cached (the distributions are frozen models)."""
    return dist.support()


def _prefill_kv_reads(prompt, computed, m):
    """KV tokens read by the prefill chunks of a prompt: Σ over chunks of the context at the chunk's end.

    prompt, computed: (m_support,); m: (n,) tokens per chunk. Returns (n, m_support)."""
    nch = np.ceil(computed[None, :] / np.maximum(m, 1.0)[:, None])
    cached = (prompt - computed)[None, :]
    return nch * cached + computed[None, :] * (nch + 1.0) / 2.0


def _decode_stats(e: EngineCoeffs, L: _Lengths):
    """Per-design decode constants: steps per request D, β, mean context K̄, tokens/step moments."""
    tau = e.tokens_per_step()
    o1 = np.maximum(L.output - 1.0, 0.0)
    eo1 = o1 @ L.p_output
    ep = L.prompt @ L.p_prompt
    kbar = (eo1 * ep + (o1 * L.output / 2.0) @ L.p_output) / max(eo1, 1e-300)
    beta = e.t_per_seq_s + e.t_per_token_s * (e.spec_k + 1) + e.t_per_kv_token_s * kbar
    # second moment of tokens gained per step G = 1 + min(Geometric failures, k)
    a, k = e.spec_acceptance, e.spec_k
    eg2 = np.zeros(e.n)
    for g in range(1, int(k.max()) + 2):
        pg = np.where(g <= k, a ** (g - 1) * (1 - a), np.where(g == k + 1, a ** k, 0.0))
        eg2 += g * g * pg
    var_g = np.maximum(eg2 - tau ** 2, 0.0)
    return eo1 / tau, beta, kbar, tau, var_g


# steps of a prefill-only engine's busy period followed explicitly before a geometric tail (the chain
# settles within a few steps below ~70 % load)
_BUSY_STEPS = 24


def _steps_per_busy_period(tb, wpre, L: "_Lengths", m, lam) -> np.ndarray:
    """G, the mean number of steps in a busy period of a prefill-only engine (n,), for its busy fraction
    (λ·E[w] + λ·t_b·G) / (1 + λ·t_b·G) — renewal: busy time = t_b per step + the prompts' work, one idle
    period (mean 1/λ) per busy period. Mean-field chain over the token backlog b, started by each prompt
    of the support: a step carries c = min(b, m) tokens and lasts T = t_b + ω·c (ω: mean work per computed
    token); the period ends after it with probability [b ≤ m]·e^(−λT) (no arrival), else b' = b − c +
    λT·E[P_c] / (1 − P(end)) (arrivals given at least one). Mean-field: b is its conditional mean."""
    pc = L.computed[None, :]
    omega = ((wpre @ L.p_prompt) / max(float(L.computed @ L.p_prompt), 1e-300))[:, None]
    mean_pc = float(L.computed @ L.p_prompt)
    b = np.broadcast_to(pc, wpre.shape).astype(float)
    lam_, m_, tb_ = lam[:, None], m[:, None], tb[:, None]
    alive = np.ones_like(b)
    g = np.zeros_like(b)
    p_end = np.zeros_like(b)
    for _ in range(_BUSY_STEPS):
        g += alive
        carried = np.minimum(b, m_)
        t = tb_ + omega * carried
        p_end = np.where(b <= m_, np.exp(-lam_ * t), 0.0)
        alive = alive * (1.0 - p_end)
        b = b - carried + lam_ * t * mean_pc / np.maximum(1.0 - p_end, 1e-12)
    g += alive * (1.0 - p_end) / np.maximum(p_end, 1e-3)      # geometric tail at the last step's end rate
    return g @ L.p_prompt


def _window_var_factor(window, service):
    """Var of the time-average of an M/D/∞ occupancy over `window`, as a fraction of its mean."""
    r = window / np.maximum(service, 1e-300)
    return np.where(r <= 1.0, 1.0 - r / 3.0, (1.0 / np.maximum(r, 1e-300)) * (1.0 - 1.0 / (3.0 * np.maximum(r, 1.0))))


def _model(e: EngineCoeffs, w: ServingWorkload, lam: np.ndarray, *, prefill: bool, decode: bool,
           extra_s=None) -> LatencyModel:
    """The engine at per-engine arrival rate lam (n,). prefill/decode: which phases this engine runs.
    extra_s: (n, m_prompt) time added once to a request's decode (disaggregated KV transfer)."""
    L = _Lengths.of(w)
    a, c, d = e.t_fixed_s, e.t_per_token_s, e.t_per_kv_token_s
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (e.n,)).astype(float)
    D, beta, kbar, tau, var_g = _decode_stats(e, L)
    if not decode:
        D = np.zeros(e.n)
    # chunk budget left after decode and prefill KV reads depend on N: two fixed-point rounds
    N = np.zeros(e.n)
    for _ in range(3):
        m = np.maximum(e.chunk_tokens - (e.spec_k + 1) * N, 0.0)
        pk = _prefill_kv_reads(L.prompt, L.computed, np.maximum(m, 1.0)) if prefill else np.zeros((e.n, L.prompt.size))
        pc = L.computed[None, :] if prefill else np.zeros((1, L.prompt.size))
        wpre = (c + e.t_prefill_extra_s)[:, None] * pc + d[:, None] * pk   # prefill time added to steps, per prompt
        if prefill and np.any(e.t_per_cached_token_s > 0):   # prefix-cache KV brought from its tier
            wpre = wpre + e.t_per_cached_token_s[:, None] * (L.prompt - L.computed)[None, :]
        phi = lam * (wpre @ L.p_prompt)
        den = 1.0 - phi - lam * D * beta
        N = np.where(den > 0, lam * D * (a + beta) / np.maximum(den, 1e-12), np.inf)
        N = np.where(decode, N, 0.0)
    sat = ~(den > 0) | ((m < 1) & prefill) | ~np.isfinite(N)
    Nf = np.where(np.isfinite(N), N, 0.0)
    phi_c = np.minimum(phi, 0.999)
    step = (a + beta * (Nf + 1.0)) / (1.0 - phi_c)

    # TTFT = own prefill + residual of the running step + fluid M/G/1 wait for the prefill backlog
    tb = a + beta * Nf
    mm = np.maximum(m, 1.0)[:, None]
    r_w = np.zeros((e.n, 3))
    r_h = np.zeros((e.n, 3))
    if prefill:
        nch = np.ceil(L.computed[None, :] / mm)
        s_own = nch * tb[:, None] + wpre
        # the running step an arrival waits for (uniform residual of a length-biased step): a full
        # chunk of a multi-chunk prompt, a step of the "bulk" chain T' = t_b + Σ w1 over the prompts
        # (≤ one chunk each) that arrived during the previous step T — stationary moments
        # μ1 = t_b/(1 − φ1), μ2 = (t_b² + 2 t_b φ1 μ1 + λE[w1²]μ1)/(1 − φ1²) — or a decode-only step.
        rem = L.computed[None, :] - (nch - 1.0) * mm
        share = wpre / L.computed[None, :]
        t_full = tb[:, None] + share * mm
        f_full = np.minimum(lam * (((nch - 1.0) * t_full) @ L.p_prompt), 1.0)
        w1 = share * np.minimum(L.computed[None, :], mm)
        phi1 = np.minimum(lam * (w1 @ L.p_prompt), 0.95)
        mu1 = tb / (1.0 - phi1)
        mu2 = (tb ** 2 + 2.0 * tb * phi1 * mu1 + lam * ((w1 ** 2) @ L.p_prompt) * mu1) / (1.0 - phi1 ** 2)
        p0 = np.exp(-lam * mu1)                       # no prompt arrived during the previous step
        h_pre = np.maximum(mu2 - p0 * tb ** 2, 0.0) / np.maximum(mu1 - p0 * tb, 1e-300)
        if decode:
            busy = 1.0 - np.exp(-Nf) * (1.0 - np.minimum(lam * (s_own @ L.p_prompt), 1.0))
        else:   # prefill only: idle between busy periods, whose steps share t_b among co-scheduled prompts
            g = _steps_per_busy_period(tb, wpre, L, mm[:, 0], lam)
            busy = np.minimum(lam * (wpre @ L.p_prompt + tb * g) / (1.0 + lam * tb * g), 1.0)
        busy = np.maximum(busy, f_full)
        # every step of a prefill-only engine carries prompts: none of its busy time is decode-only steps
        # tb / mu1 = 1 - phi1 where the engine runs; a saturated engine with no fixed step time has tb = mu1 = 0
        # and p0 = 1, so the term is 0 there (not 0/0)
        run_frac = np.divide(tb, mu1, out=np.zeros_like(tb), where=mu1 > 0)
        f_pre = np.minimum((1.0 - p0) * run_frac + phi1, busy - f_full) if decode else busy - f_full
        # prefill steps by the (largest) prompt they carry: groups of the prompt support, weighted by
        # time (probability × length); each keeps the chain's extra length from co-scheduled prompts
        order = np.argsort(L.computed, kind="stable")
        groups = np.array_split(order, min(_STEP_GROUPS, order.size))
        tl = tb[:, None] + w1                                    # (n, m) step carrying prompt j
        lb = (tl * L.p_prompt[None, :])                          # time weight
        mean_lb = (tl * lb).sum(axis=1) / np.maximum(lb.sum(axis=1), 1e-300)
        extra = np.maximum(h_pre - mean_lb, 0.0)
        ng = len(groups)
        r_w = np.zeros((e.n, ng + 2))
        r_h = np.zeros((e.n, ng + 2))
        r_w[:, 0] = f_full
        r_h[:, 0] = (t_full * ((nch - 1.0) * t_full) @ L.p_prompt) / np.maximum(((nch - 1.0) * t_full) @ L.p_prompt, 1e-300)
        tot = np.maximum(lb.sum(axis=1), 1e-300)
        for gi, g in enumerate(groups):
            wg = lb[:, g].sum(axis=1)
            r_w[:, 1 + gi] = f_pre * wg / tot
            r_h[:, 1 + gi] = (tl[:, g] * lb[:, g]).sum(axis=1) / np.maximum(wg, 1e-300) + extra
        r_w[:, -1] = busy - f_full - f_pre
        r_h[:, -1] = tb
        # prefill backlog: M/G/1 on the fluid prefill work X = own tokens' time + a full chunk's
        # t_b per m tokens; the wait given it is positive is a gamma matched to the
        # Pollaczek–Khinchine and Takács moments (exponential for exponential X).
        x = tb[:, None] * L.computed[None, :] / mm + wpre
        rho = lam * (x @ L.p_prompt)
        sat |= rho >= 1.0
        rho_c = np.clip(rho, 0.0, 0.999)
        ex2, ex3 = (x ** 2) @ L.p_prompt, (x ** 3) @ L.p_prompt
        ew = lam * ex2 / (2.0 * (1.0 - rho_c))
        ew2 = 2.0 * ew ** 2 + lam * ex3 / (3.0 * (1.0 - rho_c))
        # the Pollaczek–Khinchine mean counts the residual of the prompt in service, λE[X²]/2; the
        # part of it that is the running step (the first chunk's work x1) is already charged as the
        # residual r_w·r_h above, so the mean drops λE[x1²]/2 while the second moment (the tail:
        # queues behind long prompts) keeps Takács' value
        x1 = np.minimum(x, t_full)
        ew = np.maximum(ew - lam * ((x1 ** 2) @ L.p_prompt) / 2.0, 0.0)
        m1 = ew / np.maximum(rho_c, 1e-300)
        var_w = np.maximum(ew2 / np.maximum(rho_c, 1e-300) - m1 ** 2, 1e-30)
        # prompts arriving during the rest of the running step queue behind the arrival but share
        # its first step: compound Poisson over the mean residual, added to the backlog wait; the
        # sum, positive with probability 1 − (1 − ρ)·P(no such prompt), is fitted by a gamma
        # only what fits in the budget the arrival's own first chunk leaves, m − min(P_c, m), shares that
        # step (FCFS: the rest waits for the next one): the co-scheduled work, in mean, is capped there
        # per prompt and the compound Poisson thinned by the same ratio
        k_co = lam * (r_w * r_h).sum(axis=1) / 2.0
        c1_all = k_co * (w1 @ L.p_prompt)
        room = share * np.maximum(mm - L.computed[None, :], 0.0)
        fit = (np.minimum(c1_all[:, None], room) @ L.p_prompt) / np.maximum(c1_all, 1e-300)
        k_co = k_co * np.where(c1_all > 0, fit, 1.0)
        c1 = k_co * (w1 @ L.p_prompt)
        c2 = k_co * ((w1 ** 2) @ L.p_prompt) + c1 ** 2
        e1 = rho_c * m1 + c1
        e2 = rho_c * (var_w + m1 ** 2) + 2.0 * rho_c * m1 * c1 + c2
        w_exp = 1.0 - (1.0 - rho_c) * np.exp(-k_co)
        cm1 = e1 / np.maximum(w_exp, 1e-300)
        cvar = np.maximum(e2 / np.maximum(w_exp, 1e-300) - cm1 ** 2, 1e-30)
        theta = cvar / np.maximum(cm1, 1e-300)                  # gamma scale
        shape_w = np.clip(cm1 / np.maximum(theta, 1e-300), 1e-3, 1e4)
    else:
        s_own = np.zeros((e.n, L.prompt.size))
        rho_c = np.zeros(e.n)
        theta, w_exp, shape_w = np.zeros(e.n), np.zeros(e.n), np.ones(e.n)

    # TPOT over outputs with O ≥ 2
    keep = L.output >= 2
    O = L.output[keep]
    po = L.p_output[keep] / max(L.p_output[keep].sum(), 1e-300) if keep.any() else np.zeros(0)
    steps_o = (O[None, :] - 1.0) / tau[:, None]
    life = steps_o * step[:, None]
    mean_life = D[:, None] * step[:, None]
    if prefill and decode:
        w2 = (wpre ** 2) @ L.p_prompt
        w3 = (wpre ** 3) @ L.p_prompt
    else:
        w2 = w3 = np.zeros(e.n)
    inflate = 1.0 / (1.0 - phi_c)[:, None]
    denom = O[None, :] - 1.0
    # prompts that arrived while this request waited and prefilled queue behind it and are prefilled
    # during its first steps: the window of prefill interference is its decode life plus its TTFT
    # beyond one step (in the fluctuations; the mean is the mean-field step)
    if prefill and decode:
        ttft_mean = shape_w * theta * w_exp + (r_w * r_h).sum(axis=1) / 2.0 + s_own @ L.p_prompt
        behind = np.maximum(ttft_mean - step, 0.0)
    else:
        behind = np.zeros(e.n)
    window = life + behind[:, None]
    var_pre = lam[:, None] * window * w2[:, None] * (inflate / denom) ** 2
    m3_pre = lam[:, None] * window * w3[:, None] * (inflate / denom) ** 3
    var_batch = (beta * inflate[:, 0] / tau)[:, None] ** 2 * Nf[:, None] * _window_var_factor(life, mean_life)
    var_spec = (step / tau)[:, None] ** 2 * (var_g / tau)[:, None] / denom
    mean = np.broadcast_to((step / tau)[:, None], life.shape).copy()
    var = var_pre + var_batch + var_spec
    if extra_s is not None:
        # once per request: KV transfer (over prompts) and the residual of the step it joins
        busy_d = -np.expm1(-Nf)
        ex_mean = extra_s @ L.p_prompt + busy_d * step / 2.0
        ex_var = (extra_s ** 2) @ L.p_prompt - (extra_s @ L.p_prompt) ** 2 + busy_d * step ** 2 / 12.0
        mean += ex_mean[:, None] / denom
        var += ex_var[:, None] / denom ** 2

    # capacity: batch slots and paged KV blocks (mean + 3σ)
    blk = w.kv_block_tokens
    pre_in_flight = lam * (s_own @ L.p_prompt) if prefill else np.zeros(e.n)
    seqs = Nf + pre_in_flight
    sat |= seqs + 3.0 * np.sqrt(seqs) > e.max_batch
    ep, ep2 = L.prompt @ L.p_prompt, L.prompt ** 2 @ L.p_prompt
    ctx2 = kbar ** 2 + (ep2 - ep ** 2)
    kv_mean = Nf * (kbar + blk / 2.0) + pre_in_flight * (ep + blk / 2.0)
    kv_sd = np.sqrt(Nf * ctx2 + pre_in_flight * ep2)
    # a reserving runtime (kv_reserve) holds every admitted request's prompt + whole output from admission
    eo = L.output @ L.p_output
    full_var = (ep2 - ep ** 2) + (L.output ** 2 @ L.p_output - eo ** 2)
    reserve = e.kv_reserve == 1
    kv_mean = np.where(reserve, seqs * (ep + eo + blk / 2.0), kv_mean)
    kv_sd = np.where(reserve, np.sqrt(seqs * np.maximum(full_var, 0.0)), kv_sd)
    sat |= kv_mean + 3.0 * kv_sd > e.kv_capacity_tokens

    return LatencyModel(sat, lam, Nf, step, L.p_prompt, s_own, w_exp, theta, shape_w, r_w, r_h, po, mean,
                        np.maximum(var, 1e-30), np.maximum(m3_pre, 0.0))


def _rate(w: ServingWorkload, rate_rps) -> float | np.ndarray:
    r = rate_rps if rate_rps is not None else w.arrival_rate_rps
    if r is None:
        raise ValueError("the workload gives a concurrency, not a rate: use rate_for_concurrency first")
    return np.asarray(r, dtype=float)


def colocated(engine: EngineCoeffs, w: ServingWorkload, rate_rps=None, replicas=1) -> LatencyModel:
    """Latency model of `replicas` co-located engines (random routing) at a fleet arrival rate."""
    return _model(engine, w, _rate(w, rate_rps) / np.asarray(replicas, dtype=float), prefill=True, decode=True)


@dataclass
class DisaggModel:
    """Latency of a disaggregated fleet: TTFT from the prefill pool, TPOT from the decode pool."""

    prefill: LatencyModel
    decode: LatencyModel

    @property
    def saturated(self):
        return self.prefill.saturated | self.decode.saturated

    def ttft_cdf(self, x):
        return np.where(self.saturated, 0.0, self.prefill.ttft_cdf(x))

    def tpot_cdf(self, x):
        return np.where(self.saturated, 0.0, self.decode.tpot_cdf(x))

    def ttft_quantile(self, q):
        return np.where(self.saturated, np.inf, self.prefill.ttft_quantile(q))

    def tpot_quantile(self, q):
        return np.where(self.saturated, np.inf, self.decode.tpot_quantile(q))

    def ttft_mean(self):
        return np.where(self.saturated, np.inf, self.prefill.ttft_mean())

    def tpot_mean_s(self):
        return np.where(self.saturated, np.inf, self.decode.tpot_mean_s())


def disaggregated(fleet: DisaggFleet, w: ServingWorkload, rate_rps=None) -> DisaggModel:
    """Latency model of a disaggregated fleet at a fleet arrival rate."""
    lam = _rate(w, rate_rps)
    L = _Lengths.of(w)
    pre = _model(fleet.prefill, w, lam / fleet.prefill_engines, prefill=True, decode=False)
    extra = fleet.link_latency_s[:, None] + (fleet.prefill.kv_bytes_per_token[:, None] * L.prompt[None, :]
                                             / (fleet.link_gbps[:, None] * 1e9))
    dec = _model(fleet.decode, w, lam / fleet.decode_engines, prefill=False, decode=True, extra_s=extra)
    return DisaggModel(pre, dec)


def _attainment(model, w: ServingWorkload) -> np.ndarray:
    """Fraction of requests within the loosest stated TTFT and TPOT limits (independence assumed)."""
    p = np.ones(model.saturated.size)
    for which, cdf in (("ttft", model.ttft_cdf), ("tpot", model.tpot_cdf)):
        slo = w.slo_quantiles(which)
        if slo:
            p = p * cdf(slo[-1][1])
    return p


def slo_met(model, w: ServingWorkload) -> np.ndarray:
    """Every stated percentile within its limit (P(X ≤ limit) ≥ q), and not saturated."""
    ok = ~model.saturated
    for which, cdf in (("ttft", model.ttft_cdf), ("tpot", model.tpot_cdf)):
        for q, lim in w.slo_quantiles(which):
            ok &= cdf(lim) >= q
    return ok


def max_rate_rps(build, w: ServingWorkload, n: int, hi_rps: np.ndarray | float = None,
                 steps: int = _BISECT_STEPS // 2 + 8) -> np.ndarray:
    """Largest fleet arrival rate at which `build(rate) → model` meets every SLO, by vectorized bisection.

    The upper bracket starts at `hi_rps` (default: doubled from 1 req/s until every design fails);
    `steps` halvings of the bracket follow (relative precision ~2^-steps).
    0 where even a vanishing rate misses the SLOs (e.g. one prompt alone exceeds the TTFT limit)."""
    lo = _largest_rate(lambda lam: slo_met(build(lam), w), n, steps, hi_rps, doublings=40)
    feasible0 = slo_met(build(np.maximum(lo, 1e-9)), w)
    return np.where(feasible0, lo, 0.0)


def rate_for_concurrency(build, w: ServingWorkload, n: int) -> np.ndarray:
    """Fleet arrival rate λ with λ·E[end-to-end latency](λ) = concurrency (Little's law, closed loop)."""
    ov, po = w.output_tokens.support()
    eo1 = np.maximum(ov - 1.0, 0.0) @ po

    def excess(lam):
        m = build(lam)
        e2e = m.ttft_mean() + m.tpot_mean_s() * eo1
        return lam * e2e - w.concurrency
    return _largest_rate(lambda lam: excess(lam) < 0, n, _BISECT_STEPS)


def saturation_rate_rps(build, n: int, steps: int = 30) -> np.ndarray:
    """Largest fleet arrival rate the model does not flag as saturated (queue stable, capacity held),
    to a relative precision of 2^-steps."""
    return _largest_rate(lambda lam: ~build(lam).saturated, n, steps)


def _largest_rate(ok, n: int, steps: int, hi_rps: np.ndarray | float | None = None,
                  doublings: int = 60) -> np.ndarray:
    """Largest fleet rate per design at which `ok(rate)` (a boolean per design, true below some rate) holds,
    by vectorized bisection: the upper bracket starts at `hi_rps` or doubles from 1 req/s until `ok` fails for
    every design (at most `doublings` times); `steps` halvings of [0, bracket] follow."""
    if hi_rps is None:
        hi = np.ones(n)
        for _ in range(doublings):
            grow = ok(hi)
            if not grow.any():
                break
            hi = np.where(grow, hi * 2.0, hi)
    else:
        hi = np.broadcast_to(np.asarray(hi_rps, dtype=float), (n,)).copy()
    lo = np.zeros(n)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        good = ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good, hi, mid)
    return lo


def summary(build, w: ServingWorkload, n: int) -> dict[str, np.ndarray]:
    """Serving metrics per design from `build(fleet rate) → latency model`, at the workload's load.

    goodput_rps: requests/s that meet both the TTFT and the TPOT limit of their highest stated
    percentile (every request, at the offered rate; 0 when saturated); max_rate_rps: the largest rate
    at which every stated percentile holds; percentiles in ms (inf when saturated); rate_rps: the
    offered rate (from the concurrency by Little's law for a closed-loop workload)."""
    rate = (np.full(n, float(w.arrival_rate_rps)) if w.arrival_rate_rps is not None
            else rate_for_concurrency(build, w, n))
    m = build(rate)
    return {
        "rate_rps": rate,
        "goodput_rps": np.where(m.saturated, 0.0, rate * _attainment(m, w)),
        "max_rate_rps": max_rate_rps(build, w, n),
        "slo_met": slo_met(m, w),
        "ttft_p50_ms": m.ttft_quantile(0.5) * 1e3,
        "ttft_p99_ms": m.ttft_quantile(0.99) * 1e3,
        "tpot_p50_ms": m.tpot_quantile(0.5) * 1e3,
        "tpot_p99_ms": m.tpot_quantile(0.99) * 1e3,
    }


def colocated_summary(engine: EngineCoeffs, w: ServingWorkload, replicas=1) -> dict[str, np.ndarray]:
    """`summary` of `replicas` co-located engines per design."""
    return summary(lambda r: colocated(engine, w, r, replicas), w, engine.n)


def disagg_summary(fleet: DisaggFleet, w: ServingWorkload) -> dict[str, np.ndarray]:
    """`summary` of a disaggregated prefill/decode fleet per design."""
    return summary(lambda r: disaggregated(fleet, w, r), w, max(fleet.prefill.n, fleet.decode.n))
