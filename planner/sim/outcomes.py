"""What a fluid replay (:mod:`planner.sim.fluid`) reports: per tier the requests on time,
late and dropped with their latency quantiles (read off the arrival and service curves at
``QUADRATURE`` points per minute) and where the misses fell (per minute and serving pool),
GPU-hours, dollars and the hourly instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.sim.demand import MinuteDemand
from planner.sim.fleet import Fleet, FleetParams, ScalingCounts
from planner.sim.service import Books
from planner.sim.serving import ServingModel

Array = npt.NDArray[np.float64]
QUADRATURE = 8  # evaluation points per minute bucket


@dataclass
class TierOutcome:
    requests: float
    on_time: float
    late: float
    dropped: float
    ttft_s: dict[str, float]
    e2e_s: dict[str, float]
    # [T, r, m]: requests of the tier arriving in minute t that pool (serving region r,
    # model m) served late or dropped; what a diagnosis of an attainment miss reads
    missed: Array = field(default_factory=lambda: np.zeros((0, 0, 0)))

    @property
    def sla_attainment(self) -> float:
        return self.on_time / self.requests if self.requests else 1.0

    def counts(self) -> dict[str, int]:
        """Whole requests; ``dropped`` takes the rounding so the three add up."""
        total = round(self.requests)
        on_time = round(self.on_time)
        late = min(round(self.late), total - on_time)
        return {
            "requests": total,
            "served": on_time,
            "late": late,
            "dropped": total - on_time - late,
        }


@dataclass
class SimResult:
    policy: str
    minutes: int
    tiers: dict[str, TierOutcome]
    gpu_hours: float
    gpu_hours_busy: float
    gpu_hours_scaling: float
    drain_gpu_hours: float
    cost_on_demand: float
    cost_spot: float
    scaling: ScalingCounts
    timeline: pd.DataFrame  # per minute: gpus, busy, scaling
    instances: pd.DataFrame  # per hour, region, model: mean serving instances
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "policy": self.policy,
            "hours": self.minutes / 60,
            "gpu_hours": round(self.gpu_hours, 1),
            "gpu_hours_busy": round(self.gpu_hours_busy, 1),
            "gpu_hours_scaling": round(self.gpu_hours_scaling, 1),
            "utilisation": round(self.gpu_hours_busy / self.gpu_hours, 4) if self.gpu_hours else 0,
            "cost": round(self.cost_on_demand + self.cost_spot, 2),
            "cost_spot": round(self.cost_spot, 2),
            "scaling_actions": round(self.scaling.actions),
            "drain_gpu_hours": round(self.drain_gpu_hours, 1),
        }
        for k, o in self.tiers.items():
            c = o.counts()
            out[f"{k}_sla"] = round(o.sla_attainment, 5)
            out[f"{k}_late"] = c["late"]
            out[f"{k}_dropped"] = c["dropped"]
            for q, v in o.ttft_s.items():
                out[f"{k}_ttft_{q}_s"] = round(v, 3)
            for q, v in o.e2e_s.items():
                out[f"{k}_e2e_{q}_s"] = round(v, 3)
        return out


def _within(p: FleetParams, serving: ServingModel, books: Books) -> Array:
    """[T, r, m, k] on-time share of each minute's requests within the minute (the latency
    curves at the pools' utilisation and CV; 1 for NIW)."""
    T, nr, nm = books.rho.shape
    within = np.ones((T, nr, nm, len(p.tiers)))
    for m in range(nm):
        for k in p.interactive:
            within[:, :, m, k] = serving.on_time(
                m, k, books.shared_log[:, :, m], books.rho[:, :, m], books.pool_cv[:, :, m]
            )
    return within


def result(
    p: FleetParams,
    demand: MinuteDemand,
    name: str,
    fleet: Fleet,
    books: Books,
    routes: list[tuple[int, Array]],
    serving: ServingModel,
    since: int = 0,
) -> SimResult:
    """The :class:`SimResult` of a finished replay (drain GPU-hours apart), metered from
    minute ``since`` on (the minutes before are a warm-up: requests arriving in them, their
    GPU-hours and cost are left out; the fleet's scaling counts are the whole replay's)."""
    T = demand.minutes
    tiers = _outcomes(p, demand, books, routes, _within(p, serving, books), since)
    run, tail = books.timeline[since:T], books.timeline[T:]
    start = demand.start + pd.Timedelta(minutes=since)
    return SimResult(
        policy=name,
        minutes=T - since,
        tiers=tiers,
        gpu_hours=float(run[:, 0].sum() / 60.0),
        gpu_hours_busy=float(run[:, 1].sum() / 60.0),
        gpu_hours_scaling=float(run[:, 2].sum() / 60.0),
        drain_gpu_hours=float(tail[:, 0].sum() / 60.0),
        cost_on_demand=float(run[:, 3].sum()),
        cost_spot=float(run[:, 4].sum()),
        scaling=fleet.counts,
        timeline=pd.DataFrame(
            {
                "minute": start + pd.to_timedelta(np.arange(T - since), unit="min"),
                "gpus": run[:, 0],
                "gpus_busy": run[:, 1],
                "gpus_scaling": run[:, 2],
            }
        ),
        instances=_hourly_instances(p, start, books.inst_log[since:]),
    )


def _hourly_instances(p: FleetParams, start: pd.Timestamp, inst: Array) -> pd.DataFrame:
    hours = max(inst.shape[0] // 60, 1)
    mean = inst[: hours * 60].reshape(hours, -1, *inst.shape[1:]).mean(axis=1)
    h, r, m = np.meshgrid(
        np.arange(hours), np.arange(len(p.regions)), np.arange(len(p.models)), indexing="ij"
    )
    return pd.DataFrame(
        {
            "hour": start + pd.to_timedelta(h.ravel(), unit="h"),
            "region": np.array(p.regions)[r.ravel()],
            "model": np.array(p.models)[m.ravel()],
            "instances": mean.ravel(),
        }
    )


def service_times(admitted: Array, served: Array, points: Array) -> Array:
    """Start of service (minutes) of the admitted work at fractional positions ``points``
    [T, Q] within each minute, FIFO: S⁻¹(A(t) + u · a(t)), inf where never served.
    ``admitted``/``served``: [T'] per-minute arrivals and service (T' ≥ T, the drain)."""
    T = points.shape[0]
    A = np.concatenate([[0.0], np.cumsum(admitted)])
    S = np.concatenate([[0.0], np.cumsum(served)])
    pos = A[:T, None] + points * admitted[:T, None]
    tol = 1e-9 * max(S[-1], 1.0)
    i = np.searchsorted(S, pos - tol, side="left")  # first boundary with S ≥ pos
    i = np.clip(i, 1, len(S) - 1)
    lo, hi = S[i - 1], S[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(hi > lo, (pos - lo) / (hi - lo), 0.0)
    tau = (i - 1) + np.clip(frac, 0.0, 1.0)
    return np.where(pos > S[-1] + tol, np.inf, tau)


def _weighted_quantiles(values: Array, weights: Array, qs: tuple[float, ...]) -> dict[str, float]:
    finite = np.isfinite(values) & (weights > 0)
    if not finite.any():
        return {f"p{int(q * 100)}": float("nan") for q in qs}
    v, w = values[finite], weights[finite]
    order = np.argsort(v)
    v, cw = v[order], np.cumsum(w[order])
    return {f"p{int(q * 100)}": float(v[np.searchsorted(cw, q * cw[-1])]) for q in qs}


def _routing_per_minute(
    routes: list[tuple[int, Array]], T: int
) -> tuple[npt.NDArray[np.int64], Array]:
    starts = np.array([s for s, _ in routes])
    which = np.searchsorted(starts, np.arange(T), side="right") - 1
    return which, np.stack([r for _, r in routes])


@dataclass
class _Tally:
    """One tier's requests on time, late and dropped, and its latencies with their weights."""

    on_time: float = 0.0
    late: float = 0.0
    drop: float = 0.0
    ttft: list[Array] = field(default_factory=list)
    e2e: list[Array] = field(default_factory=list)
    weights: list[Array] = field(default_factory=list)
    missed: Array = field(default_factory=lambda: np.zeros((0, 0, 0)))

    def outcome(self, total: float) -> TierOutcome:
        qs = (0.5, 0.95, 0.99)
        values_t = np.concatenate(self.ttft) if self.ttft else np.zeros(0)
        values_e = np.concatenate(self.e2e) if self.e2e else np.zeros(0)
        weights = np.concatenate(self.weights) if self.weights else np.zeros(0)
        # whatever the routing sent nowhere (weights summing below 1) is dropped too
        drop = self.drop + max(total - (self.on_time + self.late + self.drop), 0.0)
        return TierOutcome(
            requests=total,
            on_time=self.on_time,
            late=self.late,
            dropped=drop,
            ttft_s=_weighted_quantiles(values_t, weights, qs),
            e2e_s=_weighted_quantiles(values_e, weights, qs),
            missed=self.missed,
        )


def _outcomes(
    p: FleetParams,
    demand: MinuteDemand,
    books: Books,
    routes: list[tuple[int, Array]],
    within: Array,
    since: int = 0,
) -> dict[str, TierOutcome]:
    """Per tier: requests on time, late and dropped, and latency quantiles, of the requests
    arriving from minute ``since`` on. ``within`` [T, r, m, k]: the on-time share of the
    minute's requests that the queue does not delay beyond their TTFT target (the latency
    curves; 1 for NIW)."""
    T = demand.minutes
    metered = (np.arange(T) >= since)[:, None]  # [T, 1]: a warm-up minute's requests count 0
    which, stack = _routing_per_minute(routes, T)
    w = stack[which]  # [T, src, dst, m, k]
    prefill_rate = p.theta_in.max(axis=1)  # [m, k] best per-instance prefill rate
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_in = np.where(demand.requests > 0, demand.input_tokens / demand.requests, 0.0)
        mean_out = np.where(demand.requests > 0, demand.output_tokens / demand.requests, 0.0)
    out: dict[str, TierOutcome] = {}
    for k, tier in enumerate(p.tiers):
        tally = _Tally(missed=np.zeros((T, len(p.regions), len(p.models))))
        for r in range(len(p.regions)):  # serving region
            for m in range(len(p.models)):
                reqs = demand.requests[:, :, m, k] * w[:, :, r, m, k] * metered  # [T, src]
                if reqs.any():
                    prefill = mean_in[:, :, m, k] / prefill_rate[m, k]  # [T, src]
                    tokens_s = mean_out[:, :, m, k] * p.tpot_s[k]  # [T, src] decoding
                    _pool(p, books, tally, (r, m, k), reqs, prefill, tokens_s, within)
        out[tier] = tally.outcome(float(demand.requests[since:, :, :, k].sum()))
    return out


def _pool(
    p: FleetParams,
    books: Books,
    tally: _Tally,
    rmk: tuple[int, int, int],
    reqs: Array,
    prefill: Array,
    decode: Array,
    within: Array,
) -> None:
    """Add to ``tally`` the requests ``reqs`` [T, src] that pool (r, m) serves in tier k:
    each minute's queue wait at ``QUADRATURE`` positions, TTFT = wait + ``prefill`` + RTT,
    E2E = TTFT + ``decode`` (seconds, [T, src])."""
    r, m, k = rmk
    T = reqs.shape[0]
    u = (np.arange(QUADRATURE) + 0.5) / QUADRATURE
    points = np.broadcast_to(u, (T, QUADRATURE))
    tau = service_times(books.admitted[:, r, m, k], books.served[:, r, m, k], points)
    wait_s = np.maximum(tau - (np.arange(T)[:, None] + u), 0.0) * 60.0  # [T, Q]
    dropped = books.dropped[:, r, m, k]
    arr = books.admitted[:T, r, m, k] + dropped
    with np.errstate(divide="ignore", invalid="ignore"):
        share_dropped = np.where(arr > 0, dropped / arr, 0.0)
    rtt = p.latency_ms[:, r] / 1000.0  # [src]
    ttft = wait_s[:, None, :] + (prefill + rtt[None, :])[:, :, None]  # [T, src, Q]
    e2e = ttft + decode[:, :, None]
    weight = (reqs * (1 - share_dropped[:, None]))[:, :, None] / QUADRATURE
    never = np.broadcast_to(~np.isfinite(wait_s)[:, None, :], ttft.shape)
    if k == p.deferrable:
        ok = (e2e <= p.deadline_min * 60.0).astype(float)
    else:  # prefill and in-instance queueing are in the curve's share
        queue_ok = wait_s[:, None, :] + rtt[None, :, None] <= p.ttft_s[k]
        ok = queue_ok * within[:, r, m, k][:, None, None]
    weight_b = np.broadcast_to(weight, ttft.shape)
    served_w = np.where(never, 0.0, weight_b)
    late = served_w * (1.0 - ok)
    lost = np.where(never, weight_b, 0.0).sum(axis=(1, 2)) + (reqs * share_dropped[:, None]).sum(1)
    tally.on_time += float((served_w * ok).sum())
    tally.late += float(late.sum())
    tally.drop += float(lost.sum())
    tally.missed[:, r, m] += late.sum(axis=(1, 2)) + lost
    tally.ttft.append(ttft.ravel())
    tally.e2e.append(e2e.ravel())
    tally.weights.append(weight_b.ravel())
