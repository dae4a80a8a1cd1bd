"""The minute queue of a round-robin pool whose instances hold uneven backlogs.

The pool-wide fluid queue (:func:`planner.sim.pool.minute_queue`) serves 60 n κ busy seconds a
minute while any work waits, as if every instance held the same share of the backlog. Round
robin hands every instance the same *number* of requests, not the same work: an instance that
stays busy through an overload carries the sum of its requests' busy seconds less κ per second,
so its backlog departs from the pool's mean by the spread of that sum, (N / n) Var(b) busy s²
per minute (N requests of busy seconds b arriving at the pool, n instances). In the recovery
the instances with less backlog empty first and idle while the others still drain: the pool
serves less than 60 n κ, and the requests routed to an emptied instance wait for nothing.

Per minute t, an instance's backlog B at the minute's start is a Gamma of mean μ_t and
variance V_t (0 while nothing is carried; the moments of what an instance carries, not a
fitted shape). It receives a_t = w_t / n busy seconds, serves at most C = 60 κ, and carries
B' = (B − (C − a_t))⁺. So the pool serves n (μ_t + a_t − E[B']), and μ_{t+1} = E[B'] and
V_{t+1} = Var(B') + P(B' > 0) (N_t / n) Var_t(b) (the truncated Gamma's moments, through the
regularised incomplete gamma function): an instance that empties forgets its spread; one that
stays busy adds the minute's. With V = 0 (a deterministic backlog) the seconds served are the
pool-wide queue's (to ~1e-12); the waits are not: here the carried backlog is served first on
its instance (FIFO) at the full C while the minute's arrivals queue behind it, where the
pool-wide queue spreads the minute's service over carried and new work alike. A reviewer's
ablation on the slow agreement test's trace (IW-F at utilisation 0.7): pool-wide queue +0.87
point, this read-out with V = 0 +1.22, with κ per minute +1.35, with the spread +1.36, so most
of that test's move is the read-out, not the spread.

A request arriving at position u of minute t on an instance whose backlog at the minute's start
was b waits (b − (C − a_t) u)⁺ / κ seconds (FIFO on its instance, the minute's arrivals even
within it). The waits are returned at ``QUADRATURE`` positions times ``SPREAD_POINTS``
quantiles of B, each point equally likely, as :func:`planner.sim.pool.minute_queue`'s are at
its positions alone.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import gammaincc, gammaincinv

Array = npt.NDArray[np.float64]
SPREAD_POINTS = 8  # quantiles of an instance's backlog the waits are read at
EMPTY = 1e-9  # a mean backlog below this share of a minute's capacity counts as none


def carry(mu: float, var: float, room: float) -> tuple[float, float, float]:
    """What an instance whose backlog B is a Gamma of mean ``mu`` and variance ``var`` carries
    after serving ``room`` busy seconds more than it receives (room > 0): the mean and
    variance of (B − room)⁺ and P(B > room)."""
    if var <= 0.0:
        return max(mu - room, 0.0), 0.0, float(mu > room)
    k, theta = mu * mu / var, var / mu
    x = room / theta
    p0, p1, p2 = (float(gammaincc(k + i, x)) for i in range(3))
    e1 = k * theta * p1 - room * p0
    e2 = k * (k + 1.0) * theta * theta * p2 - 2.0 * room * k * theta * p1 + room * room * p0
    return max(e1, 0.0), max(e2 - e1 * e1, 0.0), p0


def backlog_moments(
    work_s: Array, work_var: Array, instances: int, capacity: float | Array, drain: int
) -> tuple[Array, Array, Array]:
    """Per minute (the replay's T and ``drain`` more) the busy seconds the pool serves, and
    the mean and variance of an instance's backlog at the minute's start [T] (module
    docstring). ``work_var``: [T] the variance of the busy seconds one instance receives in
    the minute, (N / n) Var(b); ``capacity``: κ, one or per minute [T] (the drain at the
    last minute's)."""
    T, n = len(work_s), instances
    caps = 60.0 * np.broadcast_to(np.asarray(capacity, float), (T,))
    served = np.zeros(T + drain)
    mus, variances = np.zeros(T), np.zeros(T)
    mu = var = 0.0
    for t in range(T + drain):  # a scalar recursion over minutes, as the pool queue's
        cap = float(caps[min(t, T - 1)])
        a = float(work_s[t]) / n if t < T else 0.0
        spread = float(work_var[t]) if t < T else 0.0
        if t < T:
            mus[t], variances[t] = mu, var
        elif mu == 0.0:
            break
        if mu == 0.0:  # nothing carried: every instance holds the minute's mean
            nxt, nvar = max(a - cap, 0.0), spread if a > cap else 0.0
        elif a >= cap:  # every instance stays busy
            nxt, nvar = mu + a - cap, var + spread
        else:
            nxt, nvar, busy = carry(mu, var, cap - a)
            nvar += busy * spread
        if nxt < EMPTY * cap:
            nxt, nvar = 0.0, 0.0
        served[t] = n * (mu + a - nxt)
        mu, var = nxt, nvar
    return served, mus, variances


def spread_waits(
    work_s: Array, mus: Array, variances: Array, instances: int, capacity: float | Array, u: Array
) -> Array:
    """[T, len(u) · SPREAD_POINTS] the waits (seconds) of requests at positions ``u`` of each
    minute on instances at the ``SPREAD_POINTS`` quantiles of the backlog (module docstring):
    the time the instance takes to serve the work ahead at the later minutes' κ (the last
    minute's beyond the replay)."""
    T = len(work_s)
    r = (np.arange(SPREAD_POINTS) + 0.5) / SPREAD_POINTS
    spread = variances > 0
    k = np.where(spread, mus * mus / np.where(spread, variances, 1.0), 1.0)
    theta = np.where(spread, variances / np.where(mus > 0, mus, 1.0), 0.0)
    b = np.where(
        spread[:, None], gammaincinv(k[:, None], r[None, :]) * theta[:, None], mus[:, None]
    )
    cap = 60.0 * np.broadcast_to(np.asarray(capacity, float), (T,))  # busy s per minute
    drift = (work_s / instances - cap)[:, None, None] * u[None, :, None]
    ahead = np.maximum(b[:, None, :] + drift, 0.0)  # [T, Q, R] work ahead on arrival
    done = np.concatenate([[0.0], np.cumsum(cap)])  # an instance's service by each minute
    level = done[:-1, None, None] + cap[:, None, None] * u[None, :, None]
    level = level + ahead  # the service level at which the request starts
    j = np.minimum(np.searchsorted(done, level, side="right") - 1, T - 1)
    start = j + (level - done[j]) / cap[j]  # minutes (the last minute's κ beyond the replay)
    wait = (start - (np.arange(T)[:, None, None] + u[None, :, None])) * 60.0
    return np.asarray(np.maximum(wait, 0.0).reshape(T, -1), dtype=float)
