"""Two references a policy's GPU-hours are read against (as ratios, policy ÷ reference).

**The work bound** (``work_bound``): a true lower bound on the GPU-hours a replay window
costs any policy that meets given SLA attainments. In the fluid replay
(``planner.sim.fluid``) a pool of instances of model m serving tier k does θ[m, g, k]
tokens/s per instance of VM type g, so serving x tokens keeps at least
x · min_g gpi[m, g] / θ[m, g, k] GPU-seconds busy, and allocated GPUs are never fewer than
busy ones. The work that must be done inside the window:

* interactive tiers: requests arriving before the window's last minute (a request on time
  has started within its TTFT target; FIFO, so everything queued before it in its pool has
  been served; only the one request in service per pool may still be running: one request
  of the tier's largest mean size per serving region is taken off);
* NIW: requests whose deadline falls inside the window (later ones may be served after it,
  where the replay no longer charges the fleet).

A policy may miss a share ``miss[k]`` of a tier's requests (1 − its SLA target); the bound
takes off the requests of largest work first (the fluid replay gives every request of a
minute bucket that bucket's mean size), so it holds for any choice of which requests miss.
It knows nothing of whole instances, floors, lead or load times: it is far below what any
fleet of whole VMs can reach, by design.

**The clairvoyant fleet** (``clairvoyant_fleet``): the practical target, on the replay's own
calibrated serving model (the latency curves; ``planner.sim.sizing``, the one seam to it). Per
minute, region and model, the fewest whole instances that serve that minute's *true*
interactive demand with every interactive tier at its attainment target (the sweep's SLA
targets) at that minute's utilisation and arrival CV, never below the model's availability
floor; NIW packed earliest-deadline-first into the utilisation the tiers leave (NIW shares the
batch), instances added only at a deadline that spare capacity cannot meet; no lead or load
time, no quota, every request served in its own region. One VM type per region and model over
the window: the cheapest of the types whose curves can meet the targets (the cheapest overall
where none can; ``reachable`` is then False and the fleet meets the targets only as well as
the serving model allows). It sees the future by definition (it is a comparator, not a policy).

Its GPU-hours (``gpu_hours``, what ``vs_bound`` divides by) are those instances **packed by a
relaxation** (:func:`packed_gpus`), not by a placement heuristic: since issue #15 every policy
may put an instance of model m into the idle slots of a VM of any type at least as fast for
every tier (``planner.ilp.packing``, ``planner.sim.policies.packed``), so per minute and
region a policy holding those instances holds at least the GPUs they occupy,
Σ_m n[m] · min_h gpi[m, h] (h: the pool's type or one at least as fast), and, as it holds
whole VMs, at least that rounded up to a multiple of the gcd of the types' GPUs per VM (8 on
both configs). This is ≤ every placement of the same instances, whatever the packing search
(the heuristic ``repack`` can be beaten by another placement; the relaxation cannot), so no
packing, present or future, goes below it. ``unpacked_gpu_hours``: the same instances on their
pool's type in whole VMs (the fleet before issue #15); ``cost``: its dollars (unpacked).

Where it is still not exact (it is a bound for every policy only up to these): the instance
counts are the clairvoyant pool's on one type per pool at the per-minute attainment target, so
a policy that routes across regions (pooling two regions' minutes into fewer instances), mixes
VM types within a pool or serves it on a type slower than the chosen one, or lets some minutes
run below the target and others above (the SLA is a window share) can hold fewer instances
than it in some minutes; the relaxation takes only the placement out of the comparison, not
the sizing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, home_routing
from planner.sim.serving import ServingModel
from planner.sim.sizing import DEFAULT_ATTAINMENT, niw_headroom, pool_instances, reaches

Array = npt.NDArray[np.float64]


def gpu_seconds_per_token(p: FleetParams) -> Array:
    """[m, k]: the fewest GPU-seconds one token of tier k of model m can take, over the VM
    types that run the model (inf where none does)."""
    gpi = p.gpus_per_instance[:, :, None]  # [m, g, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where((p.ipv[:, :, None] > 0) & (p.theta > 0), gpi / p.theta, np.inf)
    return np.asarray(per.min(axis=1), dtype=float)


def _must_serve(p: FleetParams, minutes: int, k: int) -> npt.NDArray[np.bool_]:
    """[T]: minutes whose arrivals of tier k must be served inside the window."""
    t = np.arange(minutes)
    if k == p.deferrable:
        return np.asarray(t + p.deadline_min <= minutes)
    return np.asarray(t < minutes - 1)


def work_bound(p: FleetParams, demand: MinuteDemand, miss: Mapping[str, float]) -> float:
    """GPU-hours below which no policy can serve ``demand`` while missing at most the share
    ``miss[tier]`` of each tier's requests (module docstring)."""
    cost = gpu_seconds_per_token(p)  # [m, k]
    total = 0.0
    for k, tier in enumerate(p.tiers):
        req = demand.requests[:, :, :, k]  # [T, r, m]
        work = demand.tokens[:, :, :, k] * cost[None, None, :, k]  # GPU-s per bucket
        keep = _must_serve(p, demand.minutes, k)
        req, work = req[keep], work[keep]
        live = req > 0
        if not live.any():
            continue
        if not np.isfinite(work[live]).all():
            raise ValueError(f"tier {tier}: demand for a model no VM type can run")
        per_req = np.where(live, work / np.where(live, req, 1.0), 0.0)
        budget = max(float(miss.get(tier, 0.0)), 0.0) * float(demand.requests[..., k].sum())
        order = np.argsort(-per_req[live], kind="stable")
        n, w = req[live][order], per_req[live][order]
        taken = np.minimum(n, np.maximum(budget - (np.cumsum(n) - n), 0.0))
        served = float(work[live].sum() - (taken * w).sum())
        if k != p.deferrable:  # the one request per serving region possibly still running
            served -= len(p.regions) * float(per_req.max())
        total += max(served, 0.0)
    return total / 3600.0


@dataclass(frozen=True)
class Clairvoyant:
    """The clairvoyant fleet's cost and shape over the window."""

    gpu_hours: float  # packed by the relaxation (:func:`packed_gpus`): the bound
    cost: float  # $ of the unpacked fleet (each pool on its type, whole VMs)
    floor_gpu_hours: float  # the availability floors alone, packed by the same relaxation
    instances: Array  # [T, r, m] serving instances per minute
    vm_types: npt.NDArray[np.int64]  # [r, m] the VM type each pool runs on
    reachable: bool = True  # every pool's type can meet the attainment targets
    unpacked_gpu_hours: float = 0.0  # each pool on its type in whole VMs (before issue #15)


def vm_gpu_hours(p: FleetParams, inst: Array, types: npt.NDArray[np.int64]) -> tuple[Array, Array]:
    """Per minute, GPUs and $/min of the whole VMs that hold ``inst`` [T, r, m] (each pool
    on its type ``types`` [r, m])."""
    T, nr, _ = inst.shape
    slots = np.zeros((T, nr, len(p.vm_types)))
    for (a, m), g in np.ndenumerate(types):
        slots[:, a, g] += inst[:, a, m] / p.ipv[m, g]
    vms = np.ceil(slots - 1e-9)
    gpus = (vms * p.gpus_per_vm[None, None]).sum(axis=(1, 2))
    dollars = (vms * p.price[None]).sum(axis=(1, 2)) / 60.0
    return gpus, dollars


def packed_gpus(p: FleetParams, inst: Array, types: npt.NDArray[np.int64]) -> Array:
    """Per minute, the fewest GPUs any placement of ``inst`` [T, r, m] (each pool on its type
    ``types`` [r, m] or moved to a type at least as fast for every tier) can hold in whole
    VMs, relaxed: per region, the GPUs the instances occupy on their smallest allowed
    footprint, rounded up to a multiple of the gcd of the types' GPUs per VM (module
    docstring). ≤ the GPUs of every such placement, whatever the packing."""
    step = float(np.gcd.reduce(p.gpus_per_vm.astype(np.int64)))
    gpi = np.zeros(types.shape)
    for (a, m), g in np.ndenumerate(types):
        ok = (p.ipv[m] > 0) & (p.theta[m] >= p.theta[m, g] - 1e-9).all(axis=1)
        ok[g] = True
        gpi[a, m] = float((p.gpus_per_vm[ok] / p.ipv[m, ok]).min())
    busy = (inst * gpi[None]).sum(axis=2)  # [T, r]
    return np.asarray((np.ceil(busy / step - 1e-9) * step).sum(axis=1), dtype=float)


def _pack_niw(p: FleetParams, niw_tokens: Array, spare_tokens: Array, per_inst: Array) -> Array:
    """Extra instances [T, r, m] so that NIW arrivals ``niw_tokens`` [T, r, m], served FIFO
    (= earliest deadline first: one deadline per tier) from ``spare_tokens`` per minute, each
    finish by their deadline; an added instance serves ``per_inst`` [T, r, m] tokens in its
    minute."""
    T = niw_tokens.shape[0]
    D = int(p.deadline_min)
    arrived = np.zeros(niw_tokens.shape[1:])
    served = np.zeros_like(arrived)
    due = np.zeros_like(arrived)  # cumulative arrivals whose deadline has come
    extra = np.zeros_like(niw_tokens)
    for t in range(T):
        arrived += niw_tokens[t]
        served += np.minimum(arrived - served, spare_tokens[t])
        if t >= D:
            due += niw_tokens[t - D]
        short = due - served
        if (short > 1e-9).any():
            with np.errstate(divide="ignore", invalid="ignore"):
                add = np.where(short > 1e-9, np.ceil(short / per_inst[t] - 1e-9), 0.0)
            extra[t] = add
            served += np.minimum(arrived - served, add * per_inst[t])
    return extra


def home_pool_cv(p: FleetParams, demand: MinuteDemand) -> Array:
    """[T, r, m] CV of the interactive arrivals of a pool serving its own region (the
    replay's :func:`planner.sim.fluid.pool_cv` with every request at home)."""
    from planner.sim.fluid import pool_cv

    cv = np.ones_like(demand.requests) if demand.cv is None else np.nan_to_num(demand.cv, nan=1.0)
    return pool_cv(home_routing(p), demand.requests, cv**2, list(p.interactive))


def _cheapest_type(
    p: FleetParams,
    serving: ServingModel,
    a: int,
    m: int,
    x: Array,
    cv: Array,
    goal: Mapping[int, float],
    floor: float,
) -> tuple[bool, int, Array]:
    """The pool (region ``a``, model ``m``, interactive rates ``x`` [T, k], CV ``cv`` [T]) on
    its cheapest VM type among those that reach ``goal`` (any type when none does): whether
    it is unreachable, the type, and its instances per minute (at least ``floor``)."""
    tiers = list(p.interactive)
    best: tuple[tuple[bool, float], int, Array] | None = None
    for g in range(len(p.vm_types)):
        if p.ipv[m, g] <= 0 or any((m, g, k) not in serving.curves for k in tiers):
            continue
        n = np.maximum(pool_instances(serving, m, g, x, cv, tiers, goal), floor)
        key = (
            not reaches(serving, m, g, tiers, goal),
            float(n.sum() * p.price[a, g] / p.ipv[m, g]),
        )
        if best is None or key < best[0]:
            best = (key, g, n)
    if best is None:
        raise KeyError(f"{p.models[m]}: no VM type with latency curves for every tier")
    (unreachable, _), g, n = best
    return unreachable, g, n


def clairvoyant_fleet(
    p: FleetParams,
    demand: MinuteDemand,
    floor: Array,
    serving: ServingModel | None = None,
    attainment: Mapping[str, float] | None = None,
) -> Clairvoyant:
    """The clairvoyant fleet for ``demand`` (module docstring); ``floor`` [r, m]: the
    instances each region keeps of each model whatever the demand; ``serving``: the replay's
    serving model (default: the stored curves on the demand's token mix); ``attainment``: the
    interactive tiers' per-minute on-time targets by tier id (default 0.99)."""
    if serving is None:
        from planner.sim.fluid import default_serving

        serving = default_serving(p, demand)
    goal = {k: float((attainment or {}).get(p.tiers[k], DEFAULT_ATTAINMENT)) for k in p.interactive}
    T, nr, nm = demand.minutes, len(p.regions), len(p.models)
    tiers = list(p.interactive)
    k_niw = p.deferrable
    rate = demand.tokens / 60.0  # [T, r, m, k] at the source region = serving region
    cv = home_pool_cv(p, demand)
    inst = np.zeros((T, nr, nm))
    spare = np.zeros((T, nr, nm))
    per_inst = np.ones((T, nr, nm))
    types = np.zeros((nr, nm), dtype=np.int64)
    reachable = True
    for a in range(nr):
        for m in range(nm):
            x = rate[:, a, m][:, tiers]
            unreachable, g, n = _cheapest_type(p, serving, a, m, x, cv[:, a, m], goal, floor[a, m])
            reachable &= not (unreachable and bool(x.any()))
            types[a, m], inst[:, a, m] = g, n
            load = (x / serving.theta[m, g, tiers][None, :]).sum(axis=1)
            spare_inst = niw_headroom(serving, m, g, n, load, cv[:, a, m], tiers, goal, (x > 0).T)
            per_inst[:, a, m] = serving.theta[m, g, k_niw] * 60.0
            spare[:, a, m] = spare_inst * per_inst[:, a, m]
    inst = inst + _pack_niw(p, demand.tokens[:, :, :, k_niw], spare, per_inst)
    gpus, dollars = vm_gpu_hours(p, inst, types)
    floor_gpus = packed_gpus(p, np.broadcast_to(floor, (1, nr, nm)), types)
    return Clairvoyant(
        gpu_hours=float(packed_gpus(p, inst, types).sum() / 60.0),
        cost=float(dollars.sum()),
        floor_gpu_hours=float(floor_gpus[0] * T / 60.0),
        instances=inst,
        vm_types=types,
        reachable=reachable,
        unpacked_gpu_hours=float(gpus.sum() / 60.0),
    )
