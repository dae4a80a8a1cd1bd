"""The trace-replay simulator: a fluid queue per serving region, model and tier, stepped
minute by minute, with the latency of each minute from the calibrated serving model.

A continuously batching LLM instance serves tokens at a rate, not requests one at a time, so a
pool of instances of one model is a server of rate Σ instances × θ (tokens/s), θ what an
instance really sustains on the tier's token mix (:mod:`planner.sim.serving`: κ × its best
prefill and decode rates, measured with the iteration-level reference). Per minute t, serving
region r and model m:

* arrivals a[t,r,m,k] = Σ_src w[src→r,m,k] · tokens[t,src,m,k] (the policy's routing);
* interactive tiers in priority order (tighter TTFT first) take what they need of the shared
  instances' capacity, c_k = 60 · θ_k · instances · (share of the minute still free); a tier's
  queue beyond what it could serve within its drop time (``drop_after_s``) is dropped;
* NIW takes what is left (``share_idle``: SageServe, reactive) plus its own instances (spot,
  and the reserved pool of the siloed policy); it queues until served, late after its
  deadline, dropped only if still queued when the replay (and its drain) ends.

**Running hot costs SLA.** The pool's utilisation ρ_t (its served share of the minute's
capacity, NIW included: it shares the batch) and the inter-arrival CV its instances see (the
minute's CV from the log, merged over the streams the pool receives, over √n; 1 where the log
has none) give each interactive tier's on-time share within the minute from the latency
curves, ``sla_k(ρ_t, c_t)`` (batching slows decodes, sub-minute bursts queue, prefill
chunks slow the decodes they share iterations with). Across minutes the fluid queue adds
its wait: arrivals are uniform within their minute, so the cumulative admitted arrivals A(t)
and service S(t) are piecewise linear; a request at position p = A(t) starts service at
S⁻¹(p), FIFO within its tier, read at ``QUADRATURE`` points per bucket. An interactive
request is on time with probability ``sla_k(ρ_t, c_t)`` if its queue wait + network RTT is
within its TTFT target, never otherwise. Reported TTFT = wait + prefill (mean input tokens /
per-instance prefill rate) + RTT, E2E = TTFT + output tokens × the tier's time per output
token: the across-minute part of latency (the within-minute part is in the attainment).

After the last minute of the log the fleet is frozen and the queues drain for up to the NIW
deadline; GPU-hours of that drain are reported apart (``drain_gpu_hours``), not in the totals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.sim.demand import MinuteDemand
from planner.sim.fleet import Fleet, FleetParams, ScalingCounts, Targets
from planner.sim.serving import ServingModel, input_share, serving_model

log = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]
QUADRATURE = 8  # evaluation points per minute bucket


@dataclass
class Observation:
    """What a policy sees at the start of minute ``minute``: the last minute's arrivals
    (tokens) per serving region, model and tier; each shared pool's utilisation (the busy
    fraction of its serving instances, NIW included: what a GPU or KV-cache gauge shows, at
    most 1) and pressure (interactive work present, queued included, over capacity; inf when
    work, NIW included, waits on no capacity at all); and the fleet."""

    minute: int
    arrivals: Array  # [r, m, k] tokens in the last minute, at the serving region
    source_arrivals: Array  # [r, m, k] tokens in the last minute, at the source region
    utilisation: Array  # [r, m]
    pressure: Array  # [r, m]
    fleet: Fleet


class Policy(Protocol):
    name: str
    share_idle: bool

    def initial(self, p: FleetParams) -> Targets: ...

    def decide(self, obs: Observation) -> Targets | None: ...


@dataclass
class TierOutcome:
    requests: float
    on_time: float
    late: float
    dropped: float
    ttft_s: dict[str, float]
    e2e_s: dict[str, float]

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


def _pool_capacity(theta: Array, inst: Array) -> Array:
    """[r, m, k] tokens/s of ``inst`` [r, m, g] at ``theta`` [m, g, k]."""
    return np.asarray(np.einsum("rmg,mgk->rmk", inst, theta), dtype=float)


def default_serving(p: FleetParams, demand: MinuteDemand) -> ServingModel:
    """The serving model from the stored latency curves, on ``demand``'s token mix."""
    from planner.sim.capacity import load_latency_curves

    share = input_share(p, demand.input_tokens, demand.output_tokens)
    return serving_model(p, load_latency_curves(), share)


def _pool_cv(routing: Array, requests: Array, cv2: Array) -> Array:
    """[r, m] CV of the arrivals a pool receives: the request-weighted root mean square of the
    streams' CVs (superposed independent streams), 1 where nothing arrives."""
    reqs = np.einsum("srmk,smk->rm", routing, requests)
    sq = np.einsum("srmk,smk->rm", routing, requests * cv2)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(reqs > 0, np.sqrt(sq / reqs), 1.0), dtype=float)


def simulate(
    p: FleetParams,
    demand: MinuteDemand,
    policy: Policy,
    drain: bool = True,
    serving: ServingModel | None = None,
) -> SimResult:
    """Replay ``demand`` against ``policy`` on the fleet ``p`` (see the module docstring).
    ``serving``: capacity and latency curves of the placements (default: the stored curves,
    :func:`default_serving`)."""
    serving = serving or default_serving(p, demand)
    nr, nm, nk = len(p.regions), len(p.models), len(p.tiers)
    T = demand.minutes
    D = int(p.deadline_min) if drain else 0
    tokens = demand.tokens
    fleet = Fleet(p, policy.initial(p))
    queue = np.zeros((nr, nm, nk))
    admitted = np.zeros((T + D, nr, nm, nk))
    served = np.zeros((T + D, nr, nm, nk))
    dropped = np.zeros((T, nr, nm, nk))
    routes: list[tuple[int, Array]] = [(0, fleet.targets.routing.copy())]
    timeline = np.zeros((T + D, 5))  # gpus allocated, busy, scaling, $ on-demand, $ spot
    inst_log = np.zeros((T, nr, nm))
    gpi = p.gpus_per_instance
    util = np.zeros((nr, nm))
    last_pressure = np.zeros((nr, nm))
    last_arr = np.zeros((nr, nm, nk))
    last_src = np.zeros((nr, nm, nk))
    tier_order = [*p.interactive]
    rho = np.zeros((T, nr, nm))  # the pools' utilisation per minute
    shared_log = np.zeros((T, nr, nm, len(p.vm_types)))
    pool_cv = np.ones((T, nr, nm))
    cv2 = np.ones_like(tokens) if demand.cv is None else np.nan_to_num(demand.cv, nan=1.0) ** 2
    for t in range(T + D):
        if t < T:
            decided = policy.decide(Observation(t, last_arr, last_src, util, last_pressure, fleet))
            if decided is not None:
                fleet.set_targets(decided)
                if not np.array_equal(decided.routing, routes[-1][1]):
                    routes.append((t, decided.routing.copy()))
            fleet.step(t)
        od, spot = fleet.serving()
        reserved = fleet.targets.niw_reserved
        reserved = np.zeros_like(od) if reserved is None else np.minimum(reserved, od)
        shared = od - reserved
        cap = _pool_capacity(serving.theta, shared)  # tokens/s
        own = _pool_capacity(serving.theta, reserved + spot)[:, :, p.deferrable]
        routing = routes[-1][1]
        arr = np.einsum("srmk,smk->rmk", routing, tokens[t]) if t < T else np.zeros((nr, nm, nk))
        free = np.ones((nr, nm))
        pressure = np.zeros((nr, nm))
        for k in tier_order:
            c = cap[:, :, k] * 60.0
            backlog = queue[:, :, k] + arr[:, :, k]
            s = np.minimum(backlog, c * free)
            with np.errstate(divide="ignore", invalid="ignore"):
                used = np.where(c > 0, s / c, 0.0)
                pressure += np.where(c > 0, backlog / c, np.where(backlog > 0, np.inf, 0.0))
            free = np.maximum(free - used, 0.0)
            rest = backlog - s
            limit = cap[:, :, k] * p.drop_after_s[k]
            d = np.maximum(rest - limit, 0.0)
            queue[:, :, k] = rest - d
            served[t, :, :, k] = s
            admitted[t, :, :, k] = arr[:, :, k] - (d if t < T else 0.0)
            if t < T:
                dropped[t, :, :, k] = d
        k = p.deferrable
        backlog = queue[:, :, k] + arr[:, :, k]
        c_shared = cap[:, :, k] * 60.0 * free if policy.share_idle else np.zeros((nr, nm))
        c_own = own * 60.0
        s = np.minimum(backlog, c_shared + c_own)
        from_own = np.minimum(s, c_own)
        from_shared = s - from_own
        queue[:, :, k] = backlog - s
        served[t, :, :, k] = s
        admitted[t, :, :, k] = arr[:, :, k]
        with np.errstate(divide="ignore", invalid="ignore"):
            shared_used = np.where(cap[:, :, k] > 0, from_shared / (cap[:, :, k] * 60.0), 0.0)
            own_used = np.where(c_own > 0, from_own / c_own, 0.0)
            # deferrable work is meant to queue: it adds pressure only where nothing can
            # ever serve it
            stuck = (backlog > 0) & (c_shared + c_own <= 0) & (cap[:, :, k] + own <= 0)
            pressure = np.where(stuck, np.inf, pressure)
        busy_shared = np.clip(1.0 - free + shared_used, 0.0, 1.0)
        busy = (busy_shared * (shared * gpi[None]).sum(axis=2)).sum() + (
            own_used * ((reserved + spot) * gpi[None]).sum(axis=2)
        ).sum()
        vm_od, vm_spot = fleet.allocated_vms()
        timeline[t] = (
            float((vm_od * p.gpus_per_vm).sum() + (vm_spot * p.gpus_per_vm).sum()),
            float(busy),
            fleet.scaling_gpus(),
            float((vm_od * p.price).sum() / 60.0),
            float((vm_spot * p.spot_price).sum() / 60.0),
        )
        if t < T:
            inst_log[t] = (od + spot).sum(axis=2)
            rho[t], shared_log[t] = busy_shared, shared
            pool_cv[t] = _pool_cv(routing, demand.requests[t], cv2[t])
            util = busy_shared
            last_pressure = pressure
            last_arr = arr
            last_src = tokens[t]
        elif not queue.any():
            admitted, served, timeline = admitted[: t + 1], served[: t + 1], timeline[: t + 1]
            break
    within = np.ones((T, nr, nm, nk))
    for m in range(nm):
        for k in p.interactive:
            within[:, :, m, k] = serving.on_time(
                m, k, shared_log[:, :, m], rho[:, :, m], pool_cv[:, :, m]
            )
    tiers = _outcomes(p, demand, admitted, served, dropped, routes, within)
    run, tail = timeline[:T], timeline[T:]
    return SimResult(
        policy=policy.name,
        minutes=T,
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
                "minute": demand.start + pd.to_timedelta(np.arange(T), unit="min"),
                "gpus": run[:, 0],
                "gpus_busy": run[:, 1],
                "gpus_scaling": run[:, 2],
            }
        ),
        instances=_hourly_instances(p, demand.start, inst_log),
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


def _outcomes(
    p: FleetParams,
    demand: MinuteDemand,
    admitted: Array,
    served: Array,
    dropped: Array,
    routes: list[tuple[int, Array]],
    within: Array,
) -> dict[str, TierOutcome]:
    """Per tier: requests on time, late and dropped, and latency quantiles. ``within``
    [T, r, m, k]: the on-time share of the minute's requests that the queue does not delay
    beyond their TTFT target (the latency curves; 1 for NIW)."""
    T = demand.minutes
    u = (np.arange(QUADRATURE) + 0.5) / QUADRATURE
    points = np.broadcast_to(u, (T, QUADRATURE))
    which, stack = _routing_per_minute(routes, T)
    w = stack[which]  # [T, src, dst, m, k]
    minutes = np.arange(T)[:, None]
    prefill_rate = p.theta_in.max(axis=1)  # [m, k] best per-instance prefill rate
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_in = np.where(demand.requests > 0, demand.input_tokens / demand.requests, 0.0)
        mean_out = np.where(demand.requests > 0, demand.output_tokens / demand.requests, 0.0)
    out: dict[str, TierOutcome] = {}
    for k, tier in enumerate(p.tiers):
        deferrable = k == p.deferrable
        on_time = late = drop = 0.0
        ttft_v, e2e_v, wts = [], [], []
        for r in range(len(p.regions)):  # serving region
            for m in range(len(p.models)):
                reqs = demand.requests[:, :, m, k] * w[:, :, r, m, k]  # [T, src]
                if not reqs.any():
                    continue
                tau = service_times(admitted[:, r, m, k], served[:, r, m, k], points)
                wait_s = np.maximum(tau - (minutes + u), 0.0) * 60.0  # [T, Q]
                arr = admitted[:T, r, m, k] + dropped[:, r, m, k]
                with np.errstate(divide="ignore", invalid="ignore"):
                    share_dropped = np.where(arr > 0, dropped[:, r, m, k] / arr, 0.0)
                rtt = p.latency_ms[:, r] / 1000.0  # [src]
                prefill = mean_in[:, :, m, k] / prefill_rate[m, k]  # [T, src]
                ttft = wait_s[:, None, :] + (prefill + rtt[None, :])[:, :, None]  # [T, src, Q]
                e2e = ttft + (mean_out[:, :, m, k] * p.tpot_s[k])[:, :, None]
                weight = (reqs * (1 - share_dropped[:, None]))[:, :, None] / QUADRATURE
                never = np.broadcast_to(~np.isfinite(wait_s)[:, None, :], ttft.shape)
                if deferrable:
                    ok = (e2e <= p.deadline_min * 60.0).astype(float)
                else:  # prefill and in-instance queueing are in the curve's share
                    queue_ok = wait_s[:, None, :] + rtt[None, :, None] <= p.ttft_s[k]
                    ok = queue_ok * within[:, r, m, k][:, None, None]
                weight_b = np.broadcast_to(weight, ttft.shape)
                served_w = np.where(never, 0.0, weight_b)
                on_time += float((served_w * ok).sum())
                late += float((served_w * (1.0 - ok)).sum())
                drop += float(weight_b[never].sum()) + float((reqs * share_dropped[:, None]).sum())
                ttft_v.append(ttft.ravel())
                e2e_v.append(e2e.ravel())
                wts.append(weight_b.ravel())
        total = float(demand.requests[:, :, :, k].sum())
        qs = (0.5, 0.95, 0.99)
        values_t = np.concatenate(ttft_v) if ttft_v else np.zeros(0)
        values_e = np.concatenate(e2e_v) if e2e_v else np.zeros(0)
        weights = np.concatenate(wts) if wts else np.zeros(0)
        # whatever the routing sent nowhere (weights summing below 1) is dropped too
        drop += max(total - (on_time + late + drop), 0.0)
        out[tier] = TierOutcome(
            requests=total,
            on_time=on_time,
            late=late,
            dropped=drop,
            ttft_s=_weighted_quantiles(values_t, weights, qs),
            e2e_s=_weighted_quantiles(values_e, weights, qs),
        )
    return out
