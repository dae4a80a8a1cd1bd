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

**The clairvoyant fleet** (``clairvoyant_fleet``): the practical target. Per minute, region
and model, the fewest whole instances of the model's preferred VM type (the one every
policy scales on, lowest $ per token) that serve that minute's true interactive demand within
its latency targets (``planner.sim.sizing.instances_needed``: the one seam to the serving
model), never below the model's availability floor; NIW packed earliest-deadline-first into
the spare capacity, instances added only at a deadline that spare capacity cannot meet;
instances packed into whole VMs; no lead or load time, no quota, every request served in its
own region. Policies that route across regions or use another VM type can beat it; it is not
a bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.sizing import instances_needed

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

    gpu_hours: float
    cost: float
    floor_gpu_hours: float  # the availability floors alone, in whole VMs
    instances: Array  # [T, r, m] serving instances per minute

    @property
    def utilisation_floor_share(self) -> float:
        return self.floor_gpu_hours / self.gpu_hours if self.gpu_hours else 0.0


def _vm_gpu_hours(p: FleetParams, inst: Array) -> tuple[Array, Array]:
    """Per minute, GPUs and $/min of the whole VMs that hold ``inst`` [T, r, m] (each model
    on its preferred type in the region, ``p.preferred``)."""
    T, nr, _ = inst.shape
    slots = np.zeros((T, nr, len(p.vm_types)))
    for (a, m), g in np.ndenumerate(p.preferred):
        slots[:, a, g] += inst[:, a, m] / p.ipv[m, g]
    vms = np.ceil(slots - 1e-9)
    gpus = (vms * p.gpus_per_vm[None, None]).sum(axis=(1, 2))
    dollars = (vms * p.price[None]).sum(axis=(1, 2)) / 60.0
    return gpus, dollars


def _pack_niw(p: FleetParams, niw_tokens: Array, spare_tokens: Array, per_inst: Array) -> Array:
    """Extra instances [T, r, m] so that NIW arrivals ``niw_tokens`` [T, r, m], served FIFO
    (= earliest deadline first: one deadline per tier) from ``spare_tokens`` per minute, each
    finish by their deadline; an instance adds ``per_inst`` [r, m] tokens per minute."""
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
                add = np.where(short > 1e-9, np.ceil(short / per_inst - 1e-9), 0.0)
            extra[t] = add
            served += np.minimum(arrived - served, add * per_inst)
    return extra


def clairvoyant_fleet(p: FleetParams, demand: MinuteDemand, floor: Array) -> Clairvoyant:
    """The clairvoyant fleet for ``demand`` (module docstring); ``floor`` [r, m]: the
    instances each region keeps of each model whatever the demand."""
    T, nr, nm = demand.minutes, len(p.regions), len(p.models)
    rate = demand.tokens / 60.0  # [T, r, m, k] at the source region = serving region
    req_rate = demand.requests / 60.0
    need = np.zeros((T, nr, nm))
    for (a, m), g in np.ndenumerate(p.preferred):
        for k in p.interactive:
            need[:, a, m] += instances_needed(
                p, m, int(g), k, rate[:, a, m, k], req_rate[:, a, m, k]
            )
    inst = np.maximum(np.ceil(need - 1e-9), floor[None])
    k = p.deferrable
    theta_niw = p.theta[np.arange(nm)[None, :], p.preferred, k]  # [r, m]
    per_inst = theta_niw * 60.0
    spare = np.maximum(inst - need, 0.0) * per_inst[None]
    inst = inst + _pack_niw(p, demand.tokens[:, :, :, k], spare, per_inst)
    gpus, dollars = _vm_gpu_hours(p, inst)
    floor_gpus, _ = _vm_gpu_hours(p, np.broadcast_to(floor, (1, nr, nm)).copy())
    return Clairvoyant(
        gpu_hours=float(gpus.sum() / 60.0),
        cost=float(dollars.sum()),
        floor_gpu_hours=float(floor_gpus[0] * T / 60.0),
        instances=inst,
    )
