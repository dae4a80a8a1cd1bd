"""A per-minute latency model built from the instance profile: the within-minute attainment of
each tier from the minute's load, its request-size mix and its burstiness, instead of one
measured curve read at ρ / κ.

Per minute, one of a pool's n round-robin instances serves λ requests/s whose inter-arrival
gaps have CV c; prompts p and outputs o follow the minute's size histogram
(:mod:`planner.sim.size_mix`: per tier, requests and token sums per prompt bin and per output
bin; the pool's mix for the state, each tier's own for its attainment; within a bin, sizes at
``POINTS`` points of the linear density with the bin's mean). With chunked prefill (budget B,
:mod:`planner.sim.instances`) an iteration carrying C chunk tokens beside D decodes lasts
``max(prefill_s(C + D), t_d)``, t_d = decode_s(D), the profile's two measured regimes.

**What a prompt costs the decodes** (:func:`prompt_costs`): alone, its whole chunks of B − D
tokens lengthen their iterations by prefill_s(B) − t_d each and its last chunk (r tokens) by
max(prefill_s(r + D), t_d) − t_d; packed behind other prompts (a share ρ_p of the time, the
prompt queue's utilisation) every token adds (prefill_s(B) − t_d) / (B − D).

**State (mean values, a fixed point, vectorised over minutes)** (:func:`minute_state`): every
prompt rides in some iteration, so the mean iteration time is ``τ = t_d / (1 − λ E[cost])``;
the decode batch is Little's law over the decode iterations, ``D = λ E[(o − 1)⁺] τ`` (below
the largest batch).

**TTFT** (:func:`ttft_ok`) of a request with prompt p: its own prefill S(p) (its iterations'
whole length) plus half an iteration, after the wait W for the prompts ahead: a G/G/1 queue
in **token time**: a queued prompt waits for the prompt tokens ahead of it, served B − D per
full iteration, so each prompt holds the queue for S_q = p · max(prefill_s(B), t_d) / (B − D)
(not for its iterations' whole length: short prompts share an iteration's budget); ρ_q =
λ E[S_q], Kingman's mean wait ρ_q / (1 − ρ_q) · (c² + c_s²) / 2 · E[S_q], capped by the mean
wait a driftless queue reaches within a minute from empty, and the tail P(W > x) = ρ_q
exp(−ρ_q x / E[W]); the fluid minute queue's wait (overload across minutes) adds to it.

**TPOT** (:func:`tpot_ok`) of a request with n = o − 1 ≥ 1 decodes: ``t_d + X / n``, X the
cost of the prompts arriving over its n τ seconds (then one prompt's exact cost distribution
or a Gamma for several). Their count J is a renewal count with gaps of CV c₀, over-dispersed
by the local rate's variation within the minute: Var J = m c₀² + m² v(n τ), v(L) the
variance of the pool's arrival rate over L-second windows relative to the minute's
(measured per minute from the rows at :data:`BURST_WINDOWS_S`, :func:`burst_at`), i.e. a
renewal count with squared CV c₀² + m v. c₀ is the gap CV c measured over the minute less the
local rate's variation at the gap's own span, which v already carries
(:func:`local_gap_cv2`). With probability ``BACKLOG_WEIGHT`` · ρ_q its decodes
also start behind queued prompt work (exponential, the prompt queue's conditional wait). 1
where the target is at least a full iteration, 0 where it is below t_d; a one-token output
has no TPOT.

A tier's on-time share is the share of its prompts whose TTFT is met times the share of its
outputs whose TPOT is met (taken as independent). One constant is fitted
(``BACKLOG_WEIGHT``), on the calibration day; everything else comes from the profile and
the minute's aggregates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import gammainc

from planner.sim.profile import InstanceProfile
from planner.sim.size_mix import MinuteMix, SizeBins, bin_points

Array = npt.NDArray[np.float64]

FIXED_POINT_STEPS = 40
MANY = 8.0  # expected prompts over a request's decodes above which X is one Gamma
# the share of ρ_q with which a request's decodes start behind queued prompt work: the one
# fitted constant of the model, fitted on the calibration day (ServeGen m-mid day 2, the
# latency curves' day), never on the agreement traces (README, "Serving model"). Mean
# absolute error over day 2's 8 interactive rows with the token-time queue, the overdispersed
# arrivals and the minute queue at κ measured on the rows' sizes: 1.37 points at 0, 1.34 at
# 0.05, 1.31 at 0.1, 1.28 at 0.15, 1.25 at 0.2, 1.25 at 0.3, 1.46 at 0.4 (kept at 0.2; the
# first fit, before those three changes: 2.36 at 0, 1.84 at 0.2, 2.16 at 0.3). Refitted on
# day 2 when P(X ≤ y) became 0 below y = 0 (:func:`_arrivals_cdf`; before, a backlog larger
# than a request's slack still left it P(J = 0), so the term barely touched short outputs):
# 1.52 at 0, 1.49 at 0.025, 1.475 at 0.05, 1.472 at 0.075, 1.469 at 0.1, 1.474 at 0.125, 1.49
# at 0.15, 1.52 at 0.2, 1.60 at 0.3 (0.1; day 2's error with it, 1.47, is above the 1.35 it
# had with the defect, which the old weight had been fitted around). Refitted on day 2 when
# the count's dispersion stopped counting the local rate's variation twice
# (:func:`local_gap_cv2`): 1.48 at 0, 1.42 at 0.05, 1.39 at 0.075, 1.361 at 0.1, 1.353 at
# 0.125, 1.350 at 0.15, 1.365 at 0.175, 1.38 at 0.2, 1.44 at 0.3 (0.15)
BACKLOG_WEIGHT = 0.15
# quantiles of the queued prompt work at a request's first decode (8 moves no row by > 0.03 point)
BACKLOG_POINTS = 4
MANY_TERMS = 24  # counts 0 .. MANY_TERMS − 1 summed exactly below it
# window lengths (s) over which the minute aggregates carry the local arrival rate's variance
BURST_WINDOWS_S = (1.0, 2.0, 5.0, 10.0)


def burst_at(burst: Array, span_s: Array) -> Array:
    """The local rate's relative variance over ``span_s`` [T, ...] seconds, from the minute's
    variances at :data:`BURST_WINDOWS_S` [T, W] (linear in log span; held beyond the ends)."""
    x = np.log(np.asarray(BURST_WINDOWS_S))
    s = np.log(np.clip(np.asarray(span_s, float), BURST_WINDOWS_S[0], BURST_WINDOWS_S[-1]))
    i = np.clip(np.searchsorted(x, s, side="right") - 1, 0, len(x) - 2)
    f = (s - x[i]) / (x[i + 1] - x[i])
    b = np.asarray(burst, float).reshape(len(burst), *([1] * (s.ndim - 1)), -1)
    lo = np.take_along_axis(np.broadcast_to(b, (*s.shape, b.shape[-1])), i[..., None], -1)[..., 0]
    hi = np.take_along_axis(np.broadcast_to(b, (*s.shape, b.shape[-1])), i[..., None] + 1, -1)[
        ..., 0
    ]
    return np.asarray(lo + f * (hi - lo), dtype=float)


@dataclass(frozen=True)
class MinuteState:
    """The mean-value state of one instance per minute (module docstring)."""

    decode_batch: Array  # [T] D
    iteration_s: Array  # [T] τ
    decode_s: Array  # [T] t_d(D)
    full_s: Array  # [T] a full iteration, max(prefill_s(B), t_d)
    backlog: Array  # [T] ρ_p: share of time a prompt is being prefilled
    pool_cost: Array  # [T, 2] E[c], E[c²] of what the pool's prompts add to iterations
    pool_prefill: Array  # [T, 2] E[S_q], E[S_q²]: how long they hold the prompt queue
    costs: Array  # [T, X] the pool's prompts' costs at the histogram's points
    cost_weights: Array  # [T, X] their probabilities
    context: Array  # [T] the mean context of a decoding request (prompt + half its output)


def chunk_split(profile: InstanceProfile, prompt: Array, D: Array) -> tuple[Array, Array, Array]:
    """How prompts [T, X] are cut beside D [T] decodes: the room B − D [T, 1] of a full
    iteration, the whole chunks before the last (those whose prefill is not done by them), and
    the last chunk's tokens."""
    room = np.maximum(float(profile.token_budget) - D, 1.0)[:, None]
    whole = np.floor(np.maximum(prompt - 1.0, 0.0) / room)
    return room, whole, prompt - whole * room


def prompt_costs(
    profile: InstanceProfile, prompt: Array, D: Array, td: Array, backlog: Array | None = None
) -> tuple[Array, Array]:
    """For prompts [T, X] at decode batch D [T] (decode iteration t_d [T]): the time they add
    to the iterations carrying their chunks, and the time their own prefill takes. Alone, whole
    chunks of B − D tokens add prefill_s(B) − t_d each and the last one max(prefill_s(rest +
    D), t_d) − t_d; while other prompts wait (share ``backlog`` of the time) the chunks are
    packed into full iterations, so every token adds (prefill_s(B) − t_d) / (B − D)."""
    room, whole, rest = chunk_split(profile, prompt, D)
    full = np.maximum(float(profile.prefill_s(float(profile.token_budget))), td)[:, None]
    last = np.maximum(profile.prefill_s(rest + D[:, None]), td[:, None])
    alone = whole * (full - td[:, None]) + last - td[:, None]
    packed = prompt * (full - td[:, None]) / room
    pi = np.zeros((len(D), 1)) if backlog is None else np.asarray(backlog, float)[:, None]
    cost = (1.0 - pi) * alone + pi * packed
    return np.asarray(cost, dtype=float), np.asarray(whole * full + last, dtype=float)


def minute_state(
    profile: InstanceProfile,
    rate: Array,
    mix: MinuteMix,
    bins: SizeBins | None = None,
    steps: int = FIXED_POINT_STEPS,
) -> MinuteState:
    """The fixed point (D, τ) of each minute at ``rate`` requests/s per instance."""
    bins = bins or SizeBins()
    B = float(profile.token_budget)
    lam = np.asarray(rate, float)
    T = len(lam)
    cap = float(profile.max_batch) - 1.0
    pc, pt = mix.prompt_count.sum(axis=1), mix.prompt_tokens.sum(axis=1)  # [T, P] the pool's
    n = np.maximum(pc.sum(axis=1), 1.0)
    x, wq = bin_points(pt, pc, bins.prompt_edges)  # [T, P, Q]
    psize = x.reshape(T, -1)
    w = (pc[:, :, None] * wq).reshape(T, -1) / n[:, None]
    oc, ot = mix.output_count.sum(axis=1), mix.output_tokens.sum(axis=1)
    decodes = np.maximum(ot - oc, 0.0).sum(axis=1) / n  # E[(o − 1)⁺]
    ctx = (pt.sum(axis=1) + 0.5 * ot.sum(axis=1)) / n
    D = np.zeros_like(lam)
    busy = np.zeros_like(lam)
    for _ in range(steps + 1):
        td = profile.decode_s(np.maximum(D, 1.0), ctx)
        cost, pre = prompt_costs(profile, psize, D, td, busy)
        load = np.minimum(lam * (w * cost).sum(axis=1), 0.95)
        tau = td / (1.0 - load)
        D = 0.5 * D + 0.5 * np.minimum(lam * decodes * tau, cap)
        busy = np.minimum(lam * (w * pre).sum(axis=1), 1.0)
    ec, ec2 = (w * cost).sum(axis=1), (w * cost**2).sum(axis=1)
    # the prompt queue works in token time: a queued prompt waits for the tokens ahead of it,
    # served B − D per full iteration, not for whole iterations (a short prompt shares one)
    packed = psize * (np.maximum(float(profile.prefill_s(B)), td) / np.maximum(B - D, 1.0))[:, None]
    es, es2 = (w * packed).sum(axis=1), (w * packed**2).sum(axis=1)
    return MinuteState(
        D,
        tau,
        td,
        np.maximum(float(profile.prefill_s(B)), td),
        busy,
        np.stack([ec, ec2], axis=1),
        np.stack([es, es2], axis=1),
        cost,
        w,
        ctx,
    )


def local_gap_cv2(c2: Array, burst: Array, rate: Array) -> Array:
    """[T, 1] the squared CV c₀² of an instance's gaps at its local rate, from c² [T, 1]
    measured over the minute: a gap G = G₀ / Λ at a local rate Λ whose relative variance over
    the gap's own span 1 / λ is v (:func:`burst_at`) has 1 + c² ≈ (1 + c₀²)(1 + v) (to second
    order in the local rate's spread: exact for a lognormal rate, not for every law), so c₀² =
    (c² − v) / (1 + v). The count over a span adds m² v(span) for the local rate's variation
    (:func:`tpot_ok`); with c² itself it counted v twice (index of dispersion at one instance
    over 1 / 2 / 5 / 10 s, day 2 at ρ 0.5: measured 1.30 / 1.65 / 2.41 / 3.25, c² + m v 1.73 /
    2.19 / 3.06 / 4.08, c₀² + m v 1.40 / 1.87 / 2.73 / 3.76)."""
    with np.errstate(divide="ignore"):
        gap = 1.0 / np.maximum(np.asarray(rate, float), 1e-12)
    v = burst_at(burst, np.broadcast_to(gap, np.shape(c2)))
    return np.asarray(np.maximum((c2 - v) / (1.0 + v), 1e-6), dtype=float)


def _count_law(m: Array, c2: Array) -> Array:
    """The count J of prompts over a span holding m of them on average, a renewal process
    with Gamma gaps of squared CV c² (m, c2 [N]): P(J = j) for j < ``MANY_TERMS`` − 1, the
    last column P(J ≥ MANY_TERMS − 1), [N, MANY_TERMS]; each row sums to 1."""
    j = np.arange(MANY_TERMS, dtype=float)
    k = 1.0 / c2[:, None]
    at_least = gammainc(np.maximum(j, 1e-9) * k, k * m[:, None])  # P(J ≥ j) = P(Γ(j/c²) ≤ m/c²)
    at_least[:, 0] = 1.0
    pmf = at_least - np.concatenate([at_least[:, 1:], np.zeros((len(m), 1))], axis=1)
    return np.asarray(pmf, dtype=float)


def _arrivals_cdf(state: MinuteState, m: Array, c2: Array, y: Array) -> Array:
    """P(X ≤ y) [T, O, Y], X the cost of the prompts arriving over a span that holds m [T, O]
    of them on average, at Y levels y [T, O, Y] (c2 [T, O]). The count J is that of a
    renewal process (:func:`_count_law`); X | J = 0 is 0, X | J = 1 one prompt's cost (exact
    over the histogram's points), X | J ≥ 2 a Gamma of J times a cost's mean and variance;
    the tail J ≥ ``MANY_TERMS`` − 1 is taken at its least count (its law's last column: the
    whole mass counted once, where the tail was once added again as the many-prompt Gamma).
    Where m > ``MANY``, X is one Gamma of its mean m E[c] and variance m (Var c + c² E[c]²).
    The count's law is evaluated once per (m, c2) for all Y levels, and only where m ≤
    ``MANY``. Below y = 0 it is 0 (X ≥ 0): a request whose queued backlog alone exceeds its
    slack (:func:`tpot_ok`'s queued levels) cannot meet its TPOT, where the levels were once
    clipped to 0 and got P(J = 0)."""
    ec = state.pool_cost[:, :1, None]  # [T, 1, 1]
    vc = np.maximum(state.pool_cost[:, 1:, None] - ec**2, 0.0)
    level = np.asarray(y, float)
    y = np.maximum(level, 0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        mu, var = m[..., None] * ec, m[..., None] * (vc + c2[..., None] * ec**2)
        shape = np.where(var > 0, mu * mu / var, 1e6)
        scale = np.where(mu > 0, var / mu, 1.0)
        out = np.where(mu > 0, gammainc(np.minimum(shape, 1e6), y / scale), 1.0)  # many
        few = m <= MANY
        row = np.nonzero(few)[0]
        pmf = _count_law(m[few], c2[few])
        yf = y[few][..., None]  # [N, Y, 1]
        weights, costs = state.cost_weights[row][:, None], state.costs[row][:, None]
        e, v = ec[row], vc[row]  # [N, 1, 1]
        jj = np.arange(2.0, MANY_TERMS)
        cdf = np.empty((*yf.shape[:2], MANY_TERMS))
        cdf[..., 0] = 1.0
        cdf[..., 1] = (weights * (costs <= yf)).sum(axis=-1)
        cdf[..., 2:] = np.where(
            v > 0,
            gammainc(
                np.minimum(e * e * jj / np.maximum(v, 1e-18), 1e6), yf * e / np.maximum(v, 1e-18)
            ),
            jj * e <= yf,
        )
        out[few] = (pmf[:, None] * cdf).sum(axis=-1)
    return np.asarray(np.where(level < 0.0, 0.0, out), dtype=float)


def tpot_ok(
    profile: InstanceProfile,
    state: MinuteState,
    rate: Array,
    cv: Array,
    output: Array,
    target_s: float,
    burst: Array | None = None,
) -> Array:
    """[T, O] P(TPOT ≤ target) of a request with ``output`` [T, O] tokens (module docstring):
    P(B₀ + X ≤ n (target − t_d)). X: the cost of the prompts arriving over its n decode
    iterations (m = λ n τ of them on average, :func:`_arrivals_cdf`). B₀: the prompt work
    still queued when its decodes start, whose full iterations add (prefill_s(B) − t_d) per
    prefill_s(B) of it; 0 with probability 1 − ρ_p, else exponential with the prompt queue's
    conditional mean wait (the tail :func:`ttft_ok` reads), taken at ``BACKLOG_POINTS``
    quantiles."""
    if not np.isfinite(target_s):
        return np.ones(np.shape(output))
    n = np.maximum(np.floor(np.asarray(output, float)) - 1.0, 0.0)  # decode iterations
    lam = np.asarray(rate, float)[:, None]
    c2 = np.maximum(np.asarray(cv, float) ** 2, 1e-6)[:, None]
    m = lam * n * state.iteration_s[:, None]  # [T, O] prompts expected meanwhile
    if burst is not None:  # the local rate over the span varies too: Var J = m c₀² + m² v
        c2 = local_gap_cv2(c2, burst, lam) + m * burst_at(burst, n * state.iteration_s[:, None])
    limit = n * (target_s - state.decode_s[:, None])
    rho, mean_wait = prompt_queue(state, rate, cv)  # [T, 1]
    share = (state.full_s - state.decode_s)[:, None] / state.full_s[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        backlog_mean = np.where(rho > 0, mean_wait / rho, 0.0) * share  # [T, 1]
    u = (np.arange(BACKLOG_POINTS) + 0.5) / BACKLOG_POINTS
    b0 = -np.log1p(-u)[None, None, :] * backlog_mean[:, :, None]  # [T, 1, Qb]
    y = np.concatenate([limit[:, :, None], limit[:, :, None] - b0], axis=-1)  # free, queued
    both = _arrivals_cdf(state, m, np.broadcast_to(c2, m.shape), y)
    free, queued = both[..., 0], both[..., 1:].mean(axis=-1)
    a = BACKLOG_WEIGHT * rho
    p = (1.0 - a) * free + a * queued
    p = np.where(limit < 0, 0.0, p)
    p = np.where(target_s >= state.full_s[:, None], 1.0, p)
    return np.asarray(np.where(n > 0, p, 1.0), dtype=float)


def prompt_queue(state: MinuteState, rate: Array, cv: Array) -> tuple[Array, Array]:
    """[T, 1] the prompt queue's utilisation ρ_p and mean wait (module docstring)."""
    es, es2 = state.pool_prefill[:, :1], state.pool_prefill[:, 1:]
    cs2 = np.maximum(es2 / np.maximum(es**2, 1e-12) - 1.0, 0.0)
    rho = np.minimum(np.asarray(rate, float)[:, None] * es, 0.999)
    c2 = (np.asarray(cv, float) ** 2)[:, None]
    steady = rho / (1.0 - rho) * (c2 + cs2) / 2.0 * es
    # a minute is too short for a queue near saturation to reach its steady state: from
    # empty, a driftless queue of variance σ² = ρ E[S] (c² + c_s²) per second has the mean
    # wait σ √(2t/π) at t, i.e. σ · (2/3) √(2 · 60 / π) over the minute on average
    sigma = np.sqrt(rho * es * (c2 + cs2))
    mean_wait = np.minimum(steady, sigma * (2.0 / 3.0) * np.sqrt(2.0 * 60.0 / np.pi))
    return rho, mean_wait


def ttft_ok(
    state: MinuteState,
    rate: Array,
    cv: Array,
    prefill_s: Array,
    target_s: float,
    wait_s: Array | None = None,
) -> Array:
    """[T, P] P(TTFT ≤ target) of requests whose own prefill takes ``prefill_s`` [T, P],
    averaged over the cross-minute waits ``wait_s`` [T, Q] (module docstring)."""
    if not np.isfinite(target_s):
        return np.ones(np.shape(prefill_s))
    own = prefill_s + 0.5 * state.iteration_s[:, None]
    rho, mean_wait = prompt_queue(state, rate, cv)
    w = np.zeros((len(state.iteration_s), 1)) if wait_s is None else np.asarray(wait_s, float)
    slack = target_s - own[:, None, :] - w[:, :, None]  # [T, Q, P]
    r, mw = rho[:, :, None], mean_wait[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        tail = np.where(mw > 0, r * np.exp(-r * np.maximum(slack, 0.0) / mw), 0.0)
    ok = np.where(slack < 0, 0.0, 1.0 - np.minimum(tail, 1.0))
    return np.asarray(ok.mean(axis=1), dtype=float)


def tier_attainment(
    profile: InstanceProfile,
    rate: Array,
    mix: MinuteMix,
    cv: Array,
    ttft_s: Array,
    tpot_s: Array,
    wait_s: Array | None = None,
    bins: SizeBins | None = None,
    burst: Array | None = None,
) -> Array:
    """[T, K] each tier's on-time share per minute: over its histogram, the share of prompts
    whose TTFT is met times the share of outputs whose TPOT is met (module docstring); 1
    where a tier has no request in a minute."""
    bins = bins or SizeBins()
    state = minute_state(profile, rate, mix, bins)
    T, K = mix.prompt_count.shape[:2]
    out = np.ones((T, K))
    px, pw = mix.prompt_points(bins)  # [T, K, P, Q]
    ox, ow = mix.output_points(bins)
    for k in range(K):
        _, pre = prompt_costs(profile, px[:, k].reshape(T, -1), state.decode_batch, state.decode_s)
        hp = (mix.prompt_count[:, k, :, None] * pw[:, k]).reshape(T, -1)
        ho = (mix.output_count[:, k, :, None] * ow[:, k]).reshape(T, -1)
        total = mix.prompt_count[:, k].sum(axis=1)
        out_k = ox[:, k].reshape(T, -1)
        a = ttft_ok(state, rate, cv, pre, float(ttft_s[k]), wait_s)  # [T, P·Q]
        b = tpot_ok(profile, state, rate, cv, out_k, float(tpot_s[k]), burst)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = (hp * a).sum(axis=1) * (ho * b).sum(axis=1) / total**2
        out[:, k] = np.where(total > 0, share, 1.0)
    return out
