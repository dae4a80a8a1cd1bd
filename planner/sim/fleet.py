"""The simulated fleet: VMs that serve only after their lead time, model instances that serve
only after their load time, and the bookkeeping of what both cost.

Indices: r region, g VM type, m model, k tier (positions in ``FleetParams``' id lists).
A policy sets ``Targets``; ``Fleet.reconcile`` moves the fleet toward them once per minute:

* VMs (on-demand and spot separately): more wanted → requested now, usable ``lead[g]``
  minutes later; fewer wanted → pending requests cancelled first (newest first), then running
  VMs released. Released VMs take their instances with them (the instances whose model is most
  above its target first).
* Instances: fewer wanted → loading ones stopped first, then serving ones; more wanted → loads
  start on free slots of *usable* VMs (an instance takes 1/ipv[m,g] of a VM) and serve
  ``load[m,g]`` minutes later. Loads that find no free slot retry every minute.

Costs per minute: every VM requested, pending or usable, is paid for (on-demand or spot
price); GPU time lost to scaling is a pending VM's GPUs plus a loading instance's GPUs (the
paper's "scaling overhead").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.config import FleetConfig
from planner.fleet_index import fleet_index

Array = npt.NDArray[np.float64]
DROP_FACTOR = 30.0  # an interactive request waiting this many TTFT targets is dropped


@dataclass(frozen=True)
class FleetParams:
    """The simulator's view of the fleet index (``planner.fleet_index``) as arrays over
    (r, m, g, k): θ at the replay's token mix (no headroom), times rounded to minutes."""

    regions: list[str]
    models: list[str]
    vm_types: list[str]
    tiers: list[str]
    ipv: Array  # [m, g] instances per VM (0: cannot run there)
    gpus_per_vm: Array  # [g]
    price: Array  # [r, g] $/VM-hour on demand
    spot_price: Array  # [r, g]
    lead_min: npt.NDArray[np.int64]  # [g]
    load_min: npt.NDArray[np.int64]  # [m, g]
    theta: Array  # [m, g, k] effective tokens/s per instance (headroom NOT applied)
    theta_in: Array  # [m, g, k] prefill tokens/s per instance
    quota: Array  # [r, g]
    spot_cap: Array  # [r, g]
    latency_ms: Array  # [r, r']
    interactive: list[int]  # tier positions in priority order
    deferrable: int
    ttft_s: Array  # [k] TTFT target (inf for the deferrable tier)
    tpot_s: Array  # [k] time per output token
    deadline_min: float
    drop_after_s: Array  # [k] an interactive request waiting longer is dropped
    plan_lead_min: int  # a plan is made this many minutes before its hour
    preferred: npt.NDArray[np.int64]  # [r, m] each model's cheapest VM type (fleet_index)
    default_input_share: float  # φ where a (model, tier) has no tokens (the config's)

    @property
    def gpus_per_instance(self) -> Array:  # [m, g]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.ipv > 0, self.gpus_per_vm[None, :] / self.ipv, 0.0)

    def shares(self, input_share: dict[tuple[str, str], float]) -> Array:
        """φ [m, k]: ``input_share`` per (model, tier), the config's default elsewhere (as
        :meth:`planner.fleet_index.FleetIndex.shares`)."""
        d = self.default_input_share
        return np.array([[input_share.get((m, k), d) for k in self.tiers] for m in self.models])

    @property
    def shape_rmg(self) -> tuple[int, int, int]:
        return len(self.regions), len(self.models), len(self.vm_types)


def params_from_config(
    cfg: FleetConfig,
    input_share: dict[tuple[str, str], float] | None = None,
) -> FleetParams:
    """Arrays of ``cfg``. ``input_share[(m, k)]``: the share of input tokens in the tier's
    token mix (from the log); θ blends input and output rates with it. A request of an
    interactive tier waiting ``DROP_FACTOR`` × its TTFT target is dropped (the client gave up)."""
    f = fleet_index(cfg)
    theta = f.theta(input_share)
    tier_objs = [cfg.tier(k) for k in f.tiers]
    deferrable = f.deferrable if f.deferrable is not None else 0
    ttft = np.array([t.ttft_p95_s if t.ttft_p95_s else np.inf for t in tier_objs])
    return FleetParams(
        regions=list(f.regions),
        models=list(f.models),
        vm_types=list(f.vm_types),
        tiers=list(f.tiers),
        ipv=f.ipv,
        gpus_per_vm=f.gpus_per_vm,
        price=f.price,
        spot_price=f.spot_price,
        lead_min=np.array([round(x) for x in f.lead_min], dtype=np.int64),
        load_min=np.array([[round(x) for x in row] for row in f.load_min], dtype=np.int64),
        theta=theta,
        theta_in=np.where(f.ipv[:, :, None] > 0, f.theta_in, 0.0),
        quota=f.quota,
        spot_cap=f.spot_available,
        latency_ms=np.array(
            [[cfg.region(a).latency_ms.get(b, 0.0) for b in f.regions] for a in f.regions]
        ),
        interactive=list(f.interactive),
        deferrable=deferrable,
        ttft_s=ttft,
        tpot_s=np.array([(t.tpot_ms or 100.0) / 1000.0 for t in tier_objs]),
        deadline_min=60.0 * float(tier_objs[deferrable].deadline_h or 24.0),
        drop_after_s=np.where(np.isfinite(ttft), DROP_FACTOR * ttft, np.inf),
        plan_lead_min=cfg.planner.plan_lead_min,
        preferred=f.cheapest_vm_type(theta),
        default_input_share=f.default_input_share,
    )


@dataclass
class Targets:
    """What a policy wants running. Arrays: vms/spot_vms [r, g]; instances/spot_instances
    [r, m, g] (spot instances serve NIW only); ``niw_reserved`` [r, m, g]: on-demand
    instances kept for NIW alone (siloed pools); routing [src r, dst r, m, k] weights summing
    to 1 over dst."""

    vms: Array
    spot_vms: Array
    instances: Array
    spot_instances: Array
    routing: Array
    niw_reserved: Array | None = None

    def copy(self) -> Targets:
        return Targets(
            self.vms.copy(),
            self.spot_vms.copy(),
            self.instances.copy(),
            self.spot_instances.copy(),
            self.routing.copy(),
            None if self.niw_reserved is None else self.niw_reserved.copy(),
        )


def lt_i_targets(current: Targets, plan: Targets, minutes_to_hour: int) -> Targets:
    """How a plan is applied to the simulated fleet (LT-I; the simulated executor and the
    evaluation's ``lt-i`` and ``oracle``): from its arrival, ``minutes_to_hour`` > 0 before
    its hour, scale-outs only (every count the larger of ``current``'s and the plan's,
    routing unchanged); from its hour (0), the plan itself."""
    if minutes_to_hour <= 0:
        return plan.copy()
    new = current.copy()
    for name in ("vms", "spot_vms", "instances", "spot_instances"):
        setattr(new, name, np.maximum(getattr(current, name), getattr(plan, name)))
    return new


def home_routing(p: FleetParams) -> Array:
    """Every request served in its own region."""
    nr, nm, nk = len(p.regions), len(p.models), len(p.tiers)
    eye = np.eye(nr)[:, :, None, None]
    return np.broadcast_to(eye, (nr, nr, nm, nk)).copy()


def vms_for(p: FleetParams, instances: Array) -> Array:
    """The fewest VMs [r, g] that hold ``instances`` [r, m, g]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        per_vm = np.where(p.ipv[None] > 0, instances / p.ipv[None], 0.0)
    return np.asarray(np.ceil(per_vm.sum(axis=1) - 1e-9), dtype=float)


@dataclass
class _Pool:
    """One kind of VM (on-demand or spot) and the instances on it."""

    ready: Array  # [r, g] usable VMs
    pending: dict[int, Array] = field(default_factory=dict)  # minute usable → [r, g]
    inst: Array = field(default_factory=lambda: np.zeros(0))  # [r, m, g] serving
    loading: dict[int, Array] = field(default_factory=dict)  # minute serving → [r, m, g]

    def pending_total(self) -> Array:
        return sum(self.pending.values(), np.zeros_like(self.ready))

    def loading_total(self) -> Array:
        return sum(self.loading.values(), np.zeros_like(self.inst))


@dataclass
class ScalingCounts:
    vm_added: float = 0.0
    vm_released: float = 0.0
    loads: float = 0.0
    unloads: float = 0.0

    @property
    def actions(self) -> float:
        return self.vm_added + self.vm_released + self.loads + self.unloads


class Fleet:
    """VMs and instances of one simulated run (see the module docstring)."""

    def __init__(self, p: FleetParams, start: Targets) -> None:
        """The fleet at minute 0 runs ``start`` already (every policy starts warm)."""
        self.p = p
        self.targets = start.copy()
        self.od = _Pool(ready=start.vms.copy(), inst=start.instances.copy())
        self.spot = _Pool(ready=start.spot_vms.copy(), inst=start.spot_instances.copy())
        self.counts = ScalingCounts()

    # --- what serves -------------------------------------------------------------------
    def serving(self) -> tuple[Array, Array]:
        """Serving instances [r, m, g]: on-demand, spot."""
        return self.od.inst, self.spot.inst

    def allocated_vms(self) -> tuple[Array, Array]:
        """VMs paid for [r, g]: on-demand, spot (usable + pending)."""
        return (
            self.od.ready + self.od.pending_total(),
            self.spot.ready + self.spot.pending_total(),
        )

    def scaling_gpus(self) -> float:
        """GPUs not serving because their VM is provisioning or their model loading."""
        g = self.p.gpus_per_vm
        gi = self.p.gpus_per_instance
        pend = (self.od.pending_total() + self.spot.pending_total()) * g[None, :]
        load = (self.od.loading_total() + self.spot.loading_total()) * gi[None]
        return float(pend.sum() + load.sum())

    # --- the minute step ------------------------------------------------------------------
    def set_targets(self, targets: Targets) -> None:
        self.targets = targets.copy()

    def step(self, minute: int) -> None:
        """Bring pending VMs and loads due at ``minute`` into service, then reconcile."""
        for pool in (self.od, self.spot):
            due = pool.pending.pop(minute, None)
            if due is not None:
                pool.ready += due
            done = pool.loading.pop(minute, None)
            if done is not None:
                pool.inst += done
        t = self.targets
        self._reconcile(self.od, t.vms, t.instances, minute)
        self._reconcile(self.spot, t.spot_vms, t.spot_instances, minute)

    def _reconcile(self, pool: _Pool, vms: Array, inst: Array, minute: int) -> None:
        """VMs to ``vms``; instances over ``inst``, or beyond what the usable VMs hold, go;
        instances missing load onto free slots."""
        have = pool.ready + pool.pending_total()
        more = np.maximum(vms - have, 0.0)
        if more.any():
            for j, lead in enumerate(self.p.lead_min):
                col = np.zeros_like(pool.ready)
                col[:, j] = more[:, j]
                if col.any():
                    _arrive(pool.ready, pool.pending, minute + max(int(lead), 0), minute, col)
            self.counts.vm_added += float(more.sum())
        fewer = np.maximum(have - vms, 0.0)
        if fewer.any():
            self.counts.vm_released += float(fewer.sum())
            pool.pending = _cut_newest(pool.pending, fewer)
            pool.ready -= np.minimum(pool.ready, fewer)
        excess = np.maximum(pool.inst + pool.loading_total() - inst, 0.0)
        if excess.any():
            self.counts.unloads += float(excess.sum())
            pool.loading = _cut_newest(pool.loading, excess)
            pool.inst -= np.minimum(pool.inst, excess)
        self._evict_overflow(pool, inst)
        self._load(pool, inst, minute)

    def _load(self, pool: _Pool, inst: Array, minute: int) -> None:
        """Loads onto free slots, the models furthest below ``inst`` first."""
        p = self.p
        want = np.maximum(inst - pool.inst - pool.loading_total(), 0.0)
        if not want.any():
            return
        free = pool.ready - self._slots_used(pool)
        started: dict[int, Array] = defaultdict(lambda: np.zeros_like(pool.inst))
        for a, j in zip(*np.nonzero(free > 1e-9), strict=True):
            room = free[a, j]
            for i in np.argsort(-want[a, :, j]):
                n = want[a, i, j]
                if n <= 0 or p.ipv[i, j] <= 0:
                    continue
                fit = min(n, np.floor(room * p.ipv[i, j] + 1e-9))
                if fit <= 0:
                    continue
                room -= fit / p.ipv[i, j]
                started[minute + int(p.load_min[i, j])][a, i, j] += fit
                self.counts.loads += fit
        for due, arr in started.items():
            _arrive(pool.inst, pool.loading, due, minute, arr)

    def _slots_used(self, pool: _Pool) -> Array:
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(self.p.ipv[None] > 0, 1.0 / self.p.ipv[None], 0.0)
        return np.asarray(((pool.inst + pool.loading_total()) * share).sum(axis=1), dtype=float)

    def _evict_overflow(self, pool: _Pool, target: Array) -> None:
        """Instances beyond what the usable VMs hold go, most-above-target models first."""
        over = self._slots_used(pool) - pool.ready
        for a, j in zip(*np.nonzero(over > 1e-9), strict=True):
            for i in np.argsort(-(pool.inst[a, :, j] - target[a, :, j])):
                if over[a, j] <= 1e-9:
                    break
                if self.p.ipv[i, j] <= 0:
                    continue
                for holder in [*(pool.loading[d] for d in pool.loading), pool.inst]:
                    n = min(holder[a, i, j], np.ceil(over[a, j] * self.p.ipv[i, j] - 1e-9))
                    holder[a, i, j] -= n
                    over[a, j] -= n / self.p.ipv[i, j]
                    self.counts.unloads += n


def _arrive(now: Array, later: dict[int, Array], due: int, minute: int, arr: Array) -> None:
    """``arr`` joins ``now`` (in place) if due by ``minute``, else the schedule ``later``."""
    if due <= minute:
        now += arr
    else:
        later[due] = later.get(due, np.zeros_like(arr)) + arr


def _cut_newest(schedule: dict[int, Array], amount: Array) -> dict[int, Array]:
    """``amount`` taken off the schedule, the latest due first; what the schedule cannot
    give stays in ``amount`` (in place). Returns the schedule's non-empty rest."""
    for due in sorted(schedule, reverse=True):
        cut = np.minimum(schedule[due], amount)
        schedule[due] -= cut
        amount -= cut
    return {d: a for d, a in schedule.items() if a.any()}
