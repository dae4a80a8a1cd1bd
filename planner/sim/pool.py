"""The fluid replay of one serving pool, calibrated to the iteration-level model.

Per minute t a pool of n instances (round-robin) receives work w_t (busy seconds at the
instances' best rates, :meth:`InstanceProfile.busy_s`) from requests whose inter-arrival times
reach each instance with coefficient of variation c_t (measured from the request rows of the
minute, :func:`pool_minutes`; ServeGen's per-window CV where there are no rows). Two effects
make latency grow with load:

* **within the minute** (batching and sub-minute bursts): the share of tier k's requests on
  time is the latency curve ``sla_k(ρ_t, c_t)`` measured with the iteration-level model
  (:func:`planner.sim.latency.minute_attainment`, the formula the fleet replay uses too), ρ_t
  = s_t / (60 n κ) the minute's served load over what the instances really sustain on the mix
  (κ, :func:`planner.sim.latency.saturation`);
* **across minutes** (overload): a fluid FIFO queue of busy seconds with capacity 60 n κ per
  minute; the wait of a request at position u of its minute is read off the arrival and
  service curves (:func:`planner.sim.outcomes.service_times`), and an interactive request whose
  wait exceeds its tier's TTFT target is late whatever the curve says.

So tier k's on-time share in minute t is ``sla_k(ρ_t, c_t) · P_u(wait_t(u) ≤ TTFT_k)``.

:func:`pool_sla_model` replaces the curve with the per-minute latency model built from the
profile (:mod:`planner.sim.minute_model`): the minute's served requests per instance, its
size histogram (:func:`planner.sim.size_mix.minute_mix`), CV and local-rate variance
(:func:`minute_burst`) give each tier's TTFT and TPOT shares, the minute queue's waits added
to the TTFT. Its minute queue is :func:`spread_queue` (:mod:`planner.sim.backlog`): the
backlog an overload leaves is uneven across the instances (round robin deals out requests,
not work), so in the recovery the instances that empty first idle and the requests they
receive wait for nothing, while the others still drain. Its κ is the caller's, one or one per
minute: :mod:`planner.sim.agreement` measures it on the replayed rows' own mix
(:mod:`planner.sim.mix_kappa`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.backlog import backlog_moments, spread_waits
from planner.sim.latency import Curve, instance_cv, minute_attainment
from planner.sim.minute_model import BURST_WINDOWS_S, minute_state, tier_attainment
from planner.sim.outcomes import service_times
from planner.sim.profile import InstanceProfile
from planner.sim.request_fluid import Admission, RequestLatency, request_latency
from planner.sim.size_mix import MinuteMix

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
QUADRATURE = 16
MIN_GAPS = 3  # a minute with fewer gaps takes the fallback CV
DRAIN_MINUTES = 240  # minutes the queue runs on after the replay to serve what is left


def minute_starts(t: Array, minutes: int, width: float = 60.0) -> IntArray:
    """[minutes + 1] where each minute's (or window of ``width`` seconds') arrivals start in
    the sorted arrivals ``t``: minute k holds ``t[s[k]:s[k + 1]]``, the rows with ``t //
    width = k`` (the last minute also holds any later ones)."""
    inner = np.searchsorted(t, width * np.arange(1, minutes), side="left")
    return np.concatenate([[0], inner, [len(t)]]).astype(np.int64)


def _is_sorted(t: Array) -> bool:
    return bool(np.all(t[1:] >= t[:-1]))


def minute_index(arrival_s: Array, minutes: int) -> IntArray:
    """``min(t // 60, minutes − 1)`` of each arrival (by :func:`minute_starts` where the
    arrivals are sorted: no division per row)."""
    t = np.asarray(arrival_s, float)
    if not _is_sorted(t):
        return np.minimum((t // 60).astype(np.int64), minutes - 1)
    return np.repeat(np.arange(minutes, dtype=np.int64), np.diff(minute_starts(t, minutes)))


def minute_cv(arrival_s: Array, minutes: int, fallback: float | Array = 1.0, lag: int = 1) -> Array:
    """CV of the gaps spanning ``lag`` arrivals (t[i + lag] − t[i]) within each minute (both
    ends in the minute); ``fallback`` where a minute has fewer than ``MIN_GAPS`` of them. With
    ``lag`` = n this is the CV one of n round-robin instances sees: the pool's own burst
    structure, correlated gaps included (c/√n only holds for independent gaps). Arrivals
    past the last minute count in it. Sorted arrivals: minute k's gaps start at its rows s[k]
    .. s[k + 1] − lag − 1 (:func:`minute_starts`), summed over those index ranges."""
    t = np.asarray(arrival_s, float)
    t = t if _is_sorted(t) else np.sort(t)
    lag = max(int(lag), 1)
    fb = np.broadcast_to(np.asarray(fallback, float), (minutes,))
    if len(t) <= lag:
        return fb.copy()
    s = minute_starts(t, max(minutes, int(t[-1] // 60) + 1))
    start, stop = s[:-1], np.maximum(s[1:] - lag, s[:-1])  # minute k's gaps: g[start:stop]
    g = np.r_[t[lag:] - t[:-lag], 0.0]  # a 0 at len(g): reduceat's ends may point there
    ends = np.minimum(np.stack([start, stop], axis=1).ravel(), len(g) - 1)
    counts = (stop - start).astype(float)
    sums = np.where(counts > 0, np.add.reduceat(np.stack([g, g * g]), ends, axis=1)[:, ::2], 0.0)
    fold = np.minimum(np.arange(len(counts)), minutes - 1)  # later minutes count in the last
    n, s1, s2 = (np.bincount(fold, weights=w, minlength=minutes) for w in (counts, *sums))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s1 / n
        var = np.maximum(s2 / n - mean**2, 0.0) * n / np.maximum(n - 1, 1)
        cv = np.sqrt(var) / mean
    return np.asarray(np.where(n >= MIN_GAPS, cv, fb), dtype=float)


@dataclass(frozen=True)
class PoolMinutes:
    """One pool's traffic as minute aggregates."""

    work_s: Array  # [T] busy seconds arriving
    requests: Array  # [T, K] requests arriving per tier
    cv: Array  # [T] inter-arrival CV at one instance
    burst: Array | None = None  # [T, W] the local rate's variance over BURST_WINDOWS_S
    work_var: Array | None = None  # [T] variance of the busy seconds one instance receives


def minute_burst(arrival_s: Array, minutes: int) -> Array:
    """[T, W] the variance, within each minute, of the pool's arrival rate over windows of
    each length in :data:`planner.sim.minute_model.BURST_WINDOWS_S`, relative to the
    minute's mean rate (the Poisson part of the counts, 1 / the mean count per window,
    removed; 0 where a minute has no arrivals). Round robin hands every instance the same
    share of the pool's arrivals, so it is each instance's local-rate variance too."""
    t = np.asarray(arrival_s, float)
    sorted_t = _is_sorted(t)
    out = np.zeros((minutes, len(BURST_WINDOWS_S)))
    for i, window in enumerate(BURST_WINDOWS_S):
        per = max(round(60.0 / window), 2)
        if sorted_t:  # the windows' counts from where each starts
            c = np.diff(minute_starts(t, minutes * per, 60.0 / per)).astype(float)
        else:
            w = np.minimum((t / (60.0 / per)).astype(np.int64), minutes * per - 1)
            c = np.bincount(w, minlength=minutes * per).astype(float)
        c = c.reshape(minutes, per)
        mean = c.mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            v = c.var(axis=1, ddof=1) / mean**2 - 1.0 / mean
        out[:, i] = np.where(mean > 0, np.maximum(v, 0.0), 0.0)
    return out


def pool_minutes(
    arrival_s: Array,
    tier: npt.NDArray[np.int64],
    busy_s: Array,
    tiers: int,
    minutes: int,
    instances: int,
) -> PoolMinutes:
    """Minute aggregates of request rows (arrival, tier index, busy seconds) for a pool of
    ``instances`` round-robin instances. The per-instance CV of a minute is measured from the
    rows (gaps spanning ``instances`` arrivals); where a minute has too few rows, the pool's
    CV over single gaps scaled by 1/√n; where even that is missing, 1/√n."""
    m = minute_index(arrival_s, minutes)
    work = np.bincount(m, weights=busy_s, minlength=minutes).astype(float)
    req = np.bincount(m * tiers + tier, minlength=minutes * tiers).astype(float)
    req = req.reshape(minutes, tiers)
    pooled = minute_cv(arrival_s, minutes)
    cv = minute_cv(arrival_s, minutes, instance_cv(pooled, instances), lag=instances)
    # round robin: each instance gets N / n of the minute's N requests, so its work varies
    # by (N / n) Var(b) = (Σ b² − (Σ b)² / N) / n
    square = np.bincount(m, weights=np.square(busy_s), minlength=minutes)
    count = req.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(count > 0, np.maximum(square - work * work / count, 0.0) / instances, 0.0)
    return PoolMinutes(work, req, cv, minute_burst(arrival_s, minutes), var)


def minute_queue(traffic: PoolMinutes, instances: int, capacity: float) -> tuple[Array, Array]:
    """The fluid minute queue of a pool (module docstring): per minute the busy seconds served
    [T] and the wait (seconds) at ``QUADRATURE`` positions in the minute [T, Q]."""
    T = len(traffic.work_s)
    cap = 60.0 * instances * capacity
    served = np.zeros(T + DRAIN_MINUTES)
    queue = 0.0
    for t in range(T + DRAIN_MINUTES):  # the minute queue (scalar recursion, T steps)
        backlog = queue + (traffic.work_s[t] if t < T else 0.0)
        served[t] = min(backlog, cap)
        queue = backlog - served[t]
    u = (np.arange(QUADRATURE) + 0.5) / QUADRATURE
    admitted = np.r_[traffic.work_s, np.zeros(DRAIN_MINUTES)]
    tau = service_times(admitted, served, np.broadcast_to(u, (T, QUADRATURE)))
    wait_s = np.maximum(tau - (np.arange(T)[:, None] + u), 0.0) * 60.0  # [T, Q]
    return served[:T], wait_s


def spread_queue(
    traffic: PoolMinutes, instances: int, capacity: float | Array
) -> tuple[Array, Array]:
    """The minute queue with the backlog uneven across the pool's instances
    (:mod:`planner.sim.backlog`): per minute the busy seconds served [T] and the waits
    (seconds) at ``QUADRATURE`` positions times ``SPREAD_POINTS`` backlog quantiles [T, Q · R].
    Without ``traffic.work_var`` every instance holds the mean backlog, served at capacity
    until it empties within the minute."""
    T = len(traffic.work_s)
    served, mus, variances = _backlog(traffic, instances, capacity)
    u = (np.arange(QUADRATURE) + 0.5) / QUADRATURE
    return served[:T], spread_waits(traffic.work_s, mus, variances, instances, capacity, u)


def spread_served(traffic: PoolMinutes, instances: int, capacity: float | Array) -> Array:
    """[T] the busy seconds :func:`spread_queue` serves per minute, without its waits."""
    return _backlog(traffic, instances, capacity)[0][: len(traffic.work_s)]


def _backlog(
    traffic: PoolMinutes, instances: int, capacity: float | Array
) -> tuple[Array, Array, Array]:
    var = np.zeros(len(traffic.work_s)) if traffic.work_var is None else traffic.work_var
    return backlog_moments(traffic.work_s, var, instances, capacity, DRAIN_MINUTES)


def _per_tier(share: Array, weights: Array) -> Array:
    with np.errstate(invalid="ignore", divide="ignore"):
        total = (share * weights).sum(axis=0) / weights.sum(axis=0)
    return np.asarray(np.where(weights.sum(axis=0) > 0, total, 1.0), dtype=float)


def pool_sla(
    traffic: PoolMinutes,
    instances: int,
    curves: list[Curve],
    ttft_s: Array,
    capacity: float = 1.0,
) -> tuple[Array, Array]:
    """Per-tier on-time share over the replay and per-minute [T, K] on-time shares (module
    docstring). ``curves[k]`` and ``ttft_s[k]`` are tier k's latency curve and TTFT target;
    ``capacity``: κ, busy seconds an instance sustains per second on the mix."""
    T = len(traffic.work_s)
    served, wait_s = minute_queue(traffic, instances, capacity)
    rho = served / (60.0 * instances * capacity)
    share = np.zeros((T, len(curves)))
    for k, curve in enumerate(curves):
        in_time = (wait_s <= ttft_s[k]).mean(axis=1)
        share[:, k] = minute_attainment(curve, rho, traffic.cv) * in_time
    return _per_tier(share, traffic.requests), share


def pool_sla_model(
    traffic: PoolMinutes,
    mix: MinuteMix,
    instances: int,
    profile: InstanceProfile,
    ttft_s: Array,
    tpot_s: Array,
    capacity: float | Array = 1.0,
) -> tuple[Array, Array]:
    """As :func:`pool_sla`, the within-minute attainment from the per-minute latency model
    (:func:`planner.sim.minute_model.tier_attainment`) instead of the curves: each minute's
    served requests per instance, its size mix and CV, and the minute queue's waits."""
    served, wait_s = spread_queue(traffic, instances, capacity)
    rate = served_rate(traffic, served, instances)
    share = tier_attainment(
        profile, rate, mix, traffic.cv, ttft_s, tpot_s, wait_s, burst=traffic.burst
    )
    return _per_tier(share, traffic.requests), share


def served_rate(traffic: PoolMinutes, served: Array, instances: int) -> Array:
    """[T] the requests/s an instance serves per minute: the minute queue's served busy
    seconds over the minute's busy seconds per request (the replay's mean in empty minutes)."""
    return np.asarray(served / busy_per_request(traffic) / (60.0 * instances), dtype=float)


def busy_per_request(traffic: PoolMinutes) -> Array:
    """[T] the minute's busy seconds per request, E[b] (the replay's mean in empty minutes)."""
    count = traffic.requests.sum(axis=1)
    overall = traffic.work_s.sum() / max(count.sum(), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(count > 0, traffic.work_s / count, overall), dtype=float)


@dataclass(frozen=True)
class PoolRows:
    """One pool's request rows, sorted by (replayed) arrival; ``minute``: :func:`minute_index`."""

    arrival_s: Array
    prompt: IntArray
    output: IntArray
    tier: IntArray
    minute: IntArray


def pool_sla_requests(
    rows: PoolRows,
    traffic: PoolMinutes,
    mix: MinuteMix,
    instances: int,
    profile: InstanceProfile,
    ttft_s: Array,
    tpot_s: Array,
    capacity: float | Array = 1.0,
) -> tuple[Array, Array]:
    """As :func:`pool_sla_model`, each request's latency from the rows
    (:func:`planner.sim.request_fluid.request_latency`) instead of the minute's aggregates,
    an overload included: each instance's own queue of work at κ (``capacity``, one or one
    per minute) holds its requests back (:func:`admission`). The minute queue
    (:func:`spread_queue`) only sets the rate each minute's state is taken at. A request is
    on time when its TTFT and its TPOT meet its tier's targets; a tier's share in a minute is
    the mean over its requests."""
    served = spread_served(traffic, instances, capacity)
    state = minute_state(profile, served_rate(traffic, served, instances), mix)
    lat = request_latency(
        profile,
        state,
        rows.arrival_s,
        rows.prompt,
        rows.output,
        rows.minute,
        instances,
        admission(rows, traffic, profile, capacity),
    )
    share = on_time_shares(rows, lat, ttft_s, tpot_s, traffic.requests)
    return _per_tier(share, traffic.requests), share


def admission(
    rows: PoolRows, traffic: PoolMinutes, profile: InstanceProfile, capacity: float | Array
) -> Admission:
    """Each request's work in seconds of instance time, b / κ, and the work a full batch of
    its minute's requests holds in service, max_batch · E[b] / (2κ) (half done on average;
    :mod:`planner.sim.request_fluid`, "Overload"), at its minute's κ (``capacity``, one or
    one per minute). E[b] is the minute's busy seconds per request (``traffic``, the rows'
    :func:`pool_minutes`, :func:`busy_per_request`)."""
    T = len(traffic.work_s)
    kappa = np.broadcast_to(np.asarray(capacity, float), (T,))[rows.minute]
    mean = busy_per_request(traffic)[rows.minute]
    work = profile.busy_s(rows.prompt, rows.output) / kappa
    return Admission(work, profile.max_batch * mean / (2.0 * kappa))


def on_time_shares(
    rows: PoolRows,
    latency: RequestLatency,
    ttft_s: Array,
    tpot_s: Array,
    requests: Array,
) -> Array:
    """[T, K] each tier's on-time share per minute (1 where it has no request): the share of
    its requests whose TTFT (from arrival, any wait for admission included) and TPOT meet
    its tier's targets; ``requests`` [T, K] counts the rows per minute and tier."""
    T, K = requests.shape
    m = rows.minute
    ok = (latency.ttft_s <= ttft_s[rows.tier]) & (latency.tpot_s <= tpot_s[rows.tier])
    hits = np.bincount(m * K + rows.tier, weights=ok, minlength=T * K).reshape(T, K)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(np.where(requests > 0, hits / requests, 1.0), dtype=float)
