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

A warm-up (``metered_from``) is replayed like any minute but left out of every figure, so a
policy's metered window starts from the fleet its own decisions built, not from its first
packing. After the last minute of the log the fleet is frozen and the queues drain for up to the NIW
deadline; GPU-hours of that drain are reported apart (``drain_gpu_hours``), not in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from planner.sim.demand import MinuteDemand
from planner.sim.fleet import Fleet, FleetParams, Targets
from planner.sim.outcomes import SimResult as SimResult  # re-exported: the replay's result
from planner.sim.outcomes import result
from planner.sim.service import Books, meter, serve_interactive, serve_niw
from planner.sim.serving import ServingModel, serving_model

Array = npt.NDArray[np.float64]


@dataclass
class Observation:
    """What a policy sees at the start of minute ``minute``: the last minute's arrivals
    (tokens) per serving region, model and tier; each shared pool's utilisation (the busy
    fraction of its serving instances, NIW included: what a GPU or KV-cache gauge shows, at
    most 1) and pressure (interactive work present, queued included, over capacity; inf when
    work, NIW included, waits on no capacity at all); and the fleet."""

    minute: int
    arrivals: Array  # [r, m, k] tokens in the last minute, at the serving region
    utilisation: Array  # [r, m]
    pressure: Array  # [r, m]
    fleet: Fleet


class Policy(Protocol):
    name: str
    share_idle: bool

    def initial(self, p: FleetParams) -> Targets: ...

    def decide(self, obs: Observation) -> Targets | None: ...


def _pool_capacity(theta: Array, inst: Array) -> Array:
    """[r, m, k] tokens/s of ``inst`` [r, m, g] at ``theta`` [m, g, k]."""
    return np.asarray(np.einsum("rmg,mgk->rmk", inst, theta), dtype=float)


def _pools(fleet: Fleet) -> tuple[Array, Array, Array]:
    """The serving instances [r, m, g] of the shared pools and NIW's own (its reserved
    on-demand instances and spot), and all serving instances per pool [r, m]."""
    od, spot = fleet.serving()
    reserved = fleet.targets.niw_reserved
    reserved = np.zeros_like(od) if reserved is None else np.minimum(reserved, od)
    return od - reserved, reserved + spot, (od + spot).sum(axis=2)


def default_serving(p: FleetParams, demand: MinuteDemand) -> ServingModel:
    """The serving model from the stored latency curves, on ``demand``'s token mix."""
    from planner.sim.capacity import load_latency_curves

    return serving_model(p, load_latency_curves(), p.shares(demand.input_share(p)))


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
    metered_from: int = 0,
) -> SimResult:
    """Replay ``demand`` against ``policy`` on the fleet ``p`` (see the module docstring).
    ``serving``: capacity and latency curves of the placements (default: the stored curves,
    :func:`default_serving`). ``metered_from``: minutes of warm-up, replayed but not metered
    (GPU-hours, cost and the tiers' requests count from this minute on)."""
    if not 0 <= metered_from < demand.minutes:
        raise ValueError(f"metered_from {metered_from} outside the {demand.minutes} minutes")
    serving = serving or default_serving(p, demand)
    T, D = demand.minutes, (int(p.deadline_min) if drain else 0)
    fleet = Fleet(p, policy.initial(p))
    books = Books.empty(p, T, D)
    routes: list[tuple[int, Array]] = [(0, fleet.targets.routing.copy())]
    shape = (len(p.regions), len(p.models), len(p.tiers))
    # what the policy sees next: the last minute's arrivals, utilisation and pressure
    seen = (np.zeros(shape), np.zeros(shape[:2]), np.zeros(shape[:2]))
    cv2 = _cv_squared(demand)
    for t in range(T + D):
        if t < T:
            _decide(policy, fleet, routes, Observation(t, *seen, fleet))
        routing = routes[-1][1]
        arr = np.einsum("srmk,smk->rmk", routing, demand.tokens[t]) if t < T else np.zeros(shape)
        busy_shared, pressure, shared, serving_inst = _serve_minute(
            p, policy, fleet, serving, books, arr, t, t < T
        )
        if t < T:
            books.inst_log[t] = serving_inst
            books.rho[t], books.shared_log[t] = busy_shared, shared
            books.pool_cv[t] = pool_cv(routing, demand.requests[t], cv2[t], list(p.interactive))
            seen = (arr, busy_shared, pressure)
        elif not books.queue.any():
            books.end_drain(t)
            break
    return result(p, demand, policy.name, fleet, books, routes, serving, metered_from)


def _cv_squared(demand: MinuteDemand) -> Array:
    """The squared inter-arrival CV per minute, source, model and tier: 1 (Poisson) where the
    log has none."""
    cv = demand.cv
    return np.ones_like(demand.tokens) if cv is None else np.nan_to_num(cv, nan=1.0) ** 2


def _serve_minute(
    p: FleetParams,
    policy: Policy,
    fleet: Fleet,
    serving: ServingModel,
    books: Books,
    arr: Array,
    t: int,
    live: bool,
) -> tuple[Array, Array, Array, Array]:
    """Serve minute ``t``'s arrivals ``arr`` [r, m, k] (``live``: within the log, not its
    drain): the interactive tiers on the shared pools, then NIW on what is left and its own
    instances; the minute metered into ``books``. Returns the shared pools' busy share and
    pressure [r, m] (inf where work waits on no capacity), the shared instances [r, m, g] and
    all serving instances per pool [r, m]."""
    shared, niw_own, serving_inst = _pools(fleet)
    cap = _pool_capacity(serving.theta, shared)  # tokens/s
    own = _pool_capacity(serving.theta, niw_own)[:, :, p.deferrable]
    free, pressure = serve_interactive(p, cap, arr, books, t, live)
    shared_used, own_used, stuck = serve_niw(
        p, cap, own, arr, free, policy.share_idle, books, t, getattr(policy, "niw_cap", None)
    )
    pressure = np.where(stuck, np.inf, pressure)
    busy_shared = np.clip(1.0 - free + shared_used, 0.0, 1.0)
    books.timeline[t] = meter(p, fleet, (shared, niw_own), (busy_shared, own_used))
    return busy_shared, pressure, shared, serving_inst
