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
  deadline, dropped only if still queued when the replay (and its drain) ends. A policy with a
  ``niw_cap`` (a utilisation, default none) lets NIW fill the shared pools only up to it: idle
  capacity is filled with deferrable work while the interactive tiers keep the cooler batch
  their latency target needs (NIW shares the batch, below).

**Running hot costs SLA.** The pool's utilisation ρ_t (its served share of the minute's
capacity, NIW included: it shares the batch) and the inter-arrival CV its instances see (the
minute's CV from the log, merged over the interactive streams the pool receives, over √n; 1
where the log has none; NIW waits in its queue, so its bursts are not counted: :func:`pool_cv`)
give each interactive tier's on-time share within the minute from the latency
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


def pool_cv(routing: Array, requests: Array, cv2: Array, tiers: list[int]) -> Array:
    """[..., r, m] CV of the interactive arrivals a pool receives (``requests``, ``cv2``:
    [..., src, m, k]; ``routing`` [src, r, m, k]): the request-weighted root mean square of
    the streams' CVs over the interactive ``tiers`` (superposed independent streams), 1 where
    none arrive. NIW is left out: it waits in its queue and is admitted as capacity frees,
    so its arrival bursts (a batch job's thousands of requests in one second) never reach
    the batch as bursts; its load is in ρ."""
    w = routing[:, :, :, tiers]
    reqs = np.einsum("srmk,...smk->...rm", w, requests[..., tiers])
    sq = np.einsum("srmk,...smk->...rm", w, (requests * cv2)[..., tiers])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.where(reqs > 0, np.sqrt(sq / reqs), 1.0), dtype=float)


@dataclass
class _Books:
    """What the replay records: the queues now, and per minute (the drain's included where
    the first axis is T + D) what was admitted, served, dropped, metered and seen."""

    queue: Array  # [r, m, k] work waiting (tokens)
    admitted: Array  # [T + D, r, m, k]
    served: Array  # [T + D, r, m, k]
    dropped: Array  # [T, r, m, k]
    timeline: Array  # [T + D, 5]: gpus allocated, busy, scaling, $ on-demand, $ spot
    inst_log: Array  # [T, r, m] serving instances
    rho: Array  # [T, r, m] the shared pools' utilisation
    shared_log: Array  # [T, r, m, g] shared instances by VM type
    pool_cv: Array  # [T, r, m] CV of the arrivals a pool receives

    @classmethod
    def empty(cls, p: FleetParams, minutes: int, drain: int) -> _Books:
        nr, nm, nk = len(p.regions), len(p.models), len(p.tiers)
        return cls(
            np.zeros((nr, nm, nk)),
            np.zeros((minutes + drain, nr, nm, nk)),
            np.zeros((minutes + drain, nr, nm, nk)),
            np.zeros((minutes, nr, nm, nk)),
            np.zeros((minutes + drain, 5)),
            np.zeros((minutes, nr, nm)),
            np.zeros((minutes, nr, nm)),
            np.zeros((minutes, nr, nm, len(p.vm_types))),
            np.ones((minutes, nr, nm)),
        )

    def end_drain(self, t: int) -> None:
        """The queues emptied at drain minute ``t``: later minutes are not recorded."""
        self.admitted = self.admitted[: t + 1]
        self.served = self.served[: t + 1]
        self.timeline = self.timeline[: t + 1]


def _serve_interactive(
    p: FleetParams, cap: Array, arr: Array, books: _Books, t: int, in_log: bool
) -> tuple[Array, Array]:
    """Interactive tiers in priority order take what they need of the shared capacity ``cap``
    [r, m, k] (tokens/s) in minute ``t``; a tier's queue beyond what it could serve within
    its drop time is dropped (counted only while ``in_log``). Returns the share of the minute
    still free [r, m] and the pools' pressure (work present over capacity)."""
    nr, nm = cap.shape[:2]
    free = np.ones((nr, nm))
    pressure = np.zeros((nr, nm))
    for k in p.interactive:
        c = cap[:, :, k] * 60.0
        backlog = books.queue[:, :, k] + arr[:, :, k]
        s = np.minimum(backlog, c * free)
        with np.errstate(divide="ignore", invalid="ignore"):
            used = np.where(c > 0, s / c, 0.0)
            pressure += np.where(c > 0, backlog / c, np.where(backlog > 0, np.inf, 0.0))
        free = np.maximum(free - used, 0.0)
        rest = backlog - s
        limit = cap[:, :, k] * p.drop_after_s[k]
        d = np.maximum(rest - limit, 0.0)
        books.queue[:, :, k] = rest - d
        books.served[t, :, :, k] = s
        books.admitted[t, :, :, k] = arr[:, :, k] - (d if in_log else 0.0)
        if in_log:
            books.dropped[t, :, :, k] = d
    return free, pressure


def _serve_niw(
    p: FleetParams,
    cap: Array,
    own: Array,
    arr: Array,
    free: Array,
    share_idle: bool,
    books: _Books,
    t: int,
    niw_cap: float | None = None,
) -> tuple[Array, Array, npt.NDArray[np.bool_]]:
    """NIW in minute ``t``: its own instances' capacity ``own`` [r, m] first, then (if
    ``share_idle``) the shared capacity the interactive tiers left ``free`` (with ``niw_cap``,
    only up to that utilisation of the shared pool: max(0, cap − (1 − free))). Returns the
    shared and own busy shares [r, m] it adds, and where it is stuck (work that nothing can
    ever serve: the only NIW pressure, deferrable work is meant to queue)."""
    k = p.deferrable
    backlog = books.queue[:, :, k] + arr[:, :, k]
    room = free if niw_cap is None else np.clip(free - (1.0 - niw_cap), 0.0, None)
    c_shared = cap[:, :, k] * 60.0 * room if share_idle else np.zeros_like(free)
    c_own = own * 60.0
    s = np.minimum(backlog, c_shared + c_own)
    from_own = np.minimum(s, c_own)
    from_shared = s - from_own
    books.queue[:, :, k] = backlog - s
    books.served[t, :, :, k] = s
    books.admitted[t, :, :, k] = arr[:, :, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        shared_used = np.where(cap[:, :, k] > 0, from_shared / (cap[:, :, k] * 60.0), 0.0)
        own_used = np.where(c_own > 0, from_own / c_own, 0.0)
    stuck = (backlog > 0) & (c_shared + c_own <= 0) & (cap[:, :, k] + own <= 0)
    return shared_used, own_used, stuck


def _meter(
    p: FleetParams,
    fleet: Fleet,
    pools: tuple[Array, Array],
    busy: tuple[Array, Array],
) -> tuple[float, float, float, float, float]:
    """One timeline row: GPUs allocated, GPUs busy (``busy`` shares [r, m] of the shared
    and own ``pools`` [r, m, g]), GPUs scaling, and the minute's on-demand and spot cost."""
    gpi = p.gpus_per_instance[None]
    gpus_busy = sum(
        float((b * (pool * gpi).sum(axis=2)).sum()) for b, pool in zip(busy, pools, strict=True)
    )
    vm_od, vm_spot = fleet.allocated_vms()
    return (
        float((vm_od * p.gpus_per_vm).sum() + (vm_spot * p.gpus_per_vm).sum()),
        gpus_busy,
        fleet.scaling_gpus(),
        float((vm_od * p.price).sum() / 60.0),
        float((vm_spot * p.spot_price).sum() / 60.0),
    )


def _decide(
    policy: Policy, fleet: Fleet, routes: list[tuple[int, Array]], obs: Observation
) -> None:
    """The policy's decision at the start of minute ``obs.minute``, applied to the fleet (a
    routing change is logged), then the fleet's scaling actions advance a minute."""
    decided = policy.decide(obs)
    if decided is not None:
        fleet.set_targets(decided)
        if not np.array_equal(decided.routing, routes[-1][1]):
            routes.append((obs.minute, decided.routing.copy()))
    fleet.step(obs.minute)


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
    T, D = demand.minutes, (int(p.deadline_min) if drain else 0)
    fleet = Fleet(p, policy.initial(p))
    books = _Books.empty(p, T, D)
    niw_cap: float | None = getattr(policy, "niw_cap", None)
    routes: list[tuple[int, Array]] = [(0, fleet.targets.routing.copy())]
    util, last_pressure = np.zeros((nr, nm)), np.zeros((nr, nm))
    last_arr, last_src = np.zeros((nr, nm, nk)), np.zeros((nr, nm, nk))
    cv = demand.cv
    cv2 = np.ones_like(demand.tokens) if cv is None else np.nan_to_num(cv, nan=1.0) ** 2
    for t in range(T + D):
        if t < T:
            obs = Observation(t, last_arr, last_src, util, last_pressure, fleet)
            _decide(policy, fleet, routes, obs)
        od, spot = fleet.serving()
        reserved = fleet.targets.niw_reserved
        reserved = np.zeros_like(od) if reserved is None else np.minimum(reserved, od)
        shared = od - reserved
        cap = _pool_capacity(serving.theta, shared)  # tokens/s
        own = _pool_capacity(serving.theta, reserved + spot)[:, :, p.deferrable]
        routing = routes[-1][1]
        arr = (
            np.einsum("srmk,smk->rmk", routing, demand.tokens[t])
            if t < T
            else np.zeros((nr, nm, nk))
        )
        free, pressure = _serve_interactive(p, cap, arr, books, t, t < T)
        shared_used, own_used, stuck = _serve_niw(
            p, cap, own, arr, free, policy.share_idle, books, t, niw_cap
        )
        pressure = np.where(stuck, np.inf, pressure)
        busy_shared = np.clip(1.0 - free + shared_used, 0.0, 1.0)
        books.timeline[t] = _meter(p, fleet, (shared, reserved + spot), (busy_shared, own_used))
        if t < T:
            books.inst_log[t] = (od + spot).sum(axis=2)
            books.rho[t], books.shared_log[t] = busy_shared, shared
            books.pool_cv[t] = pool_cv(routing, demand.requests[t], cv2[t], list(p.interactive))
            util, last_pressure = busy_shared, pressure
            last_arr, last_src = arr, demand.tokens[t]
        elif not books.queue.any():
            books.end_drain(t)
            break
    return _result(p, demand, policy.name, fleet, books, routes, _within(p, serving, books))


def _within(p: FleetParams, serving: ServingModel, books: _Books) -> Array:
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


def _result(
    p: FleetParams,
    demand: MinuteDemand,
    name: str,
    fleet: Fleet,
    books: _Books,
    routes: list[tuple[int, Array]],
    within: Array,
) -> SimResult:
    """The :class:`SimResult` of a finished replay (drain GPU-hours apart)."""
    T = demand.minutes
    tiers = _outcomes(p, demand, books.admitted, books.served, books.dropped, routes, within)
    run, tail = books.timeline[:T], books.timeline[T:]
    return SimResult(
        policy=name,
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
        instances=_hourly_instances(p, demand.start, books.inst_log),
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
