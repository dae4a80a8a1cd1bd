"""The policies compared on the simulator.

* ``Reactive`` (SageServe's baseline): per region and model, scale out when utilisation runs
  above ``up`` and in below ``down``, toward ``target`` utilisation, with cooldowns; every
  tier on one pool, each request served in its region, one VM type per model and region
  (the cheapest per token, ``planner.fleet_index``).
* ``Siloed``: static pools per region and model, one for the interactive tiers sized for
  their peak minute, one for NIW sized for its peak hour; NIW never borrows interactive
  capacity.
* ``PlanFollowing``: the hourly ILP plans carried out three ways (the paper's names):
  ``lt-i`` applies each plan at once (scale-outs ``plan_lead_min`` before the hour, when the
  plan is made; scale-ins on the hour); ``lt-u`` treats the plan's counts as a ceiling and
  scales out to them only when interactive pressure crosses ``up``; ``lt-ua`` is ``lt-u``
  that also scales out early, beyond the plan if need be, when the last ``window`` minutes of
  interactive load run ``ahead`` above what the plan expected. ``oracle`` is ``lt-i`` on
  plans made from the true demand.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.ilp.packing import fill_idle
from planner.sim.fleet import FleetParams, Targets, home_routing, lt_i_targets, vms_for
from planner.sim.fluid import Observation

Array = npt.NDArray[np.float64]


def instance_equivalents(p: FleetParams, tokens_per_s: Array) -> Array:
    """[r, m]: instances of the preferred type that ``tokens_per_s`` [r, m, k] keeps busy."""
    theta = p.theta[np.arange(len(p.models))[None, :], p.preferred, :]  # [r, m, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(theta > 0, tokens_per_s / theta, 0.0)
    return np.asarray(need.sum(axis=2), dtype=float)


def on_preferred(p: FleetParams, counts: Array) -> Array:
    """[r, m] counts placed on each model's preferred VM type in the region → [r, m, g]."""
    out = np.zeros(p.shape_rmg)
    r, m = np.indices(counts.shape)
    out[r, m, p.preferred] = counts
    return out


def count_targets(p: FleetParams, count: Array, held: Array | None = None) -> Targets:
    """``count`` [r, m] instances, placed by :func:`packed` from ``held`` [r, m, g] (none: on
    each model's preferred VM type), on VMs within quota (instances that do not fit are
    trimmed by the fleet), every request served at home."""
    inst = on_preferred(p, count) if held is None else packed(p, held, count)
    vms = np.minimum(vms_for(p, inst), p.quota)
    return Targets(vms, np.zeros_like(vms), inst, np.zeros_like(inst), home_routing(p))


def packing_terms(
    p: FleetParams,
) -> tuple[dict[tuple[str, str], int], Callable[[str, str, str], bool]]:
    """The fleet as ``planner.ilp.packing`` reads it: instances per VM by (model, VM type),
    pairs that fit only, and the move's rule, ``faster(m, g, h)``: type h is at least as fast
    as g for model m in every tier."""
    ipv = {
        (m, g): int(p.ipv[i, j])
        for i, m in enumerate(p.models)
        for j, g in enumerate(p.vm_types)
        if p.ipv[i, j] > 0
    }
    index = {g: j for j, g in enumerate(p.vm_types)}
    model = {m: i for i, m in enumerate(p.models)}

    def faster(m: str, g: str, h: str) -> bool:
        return bool((p.theta[model[m], index[h]] >= p.theta[model[m], index[g]]).all())

    return ipv, faster


def packed(p: FleetParams, held: Array, count: Array, base: Array | None = None) -> Array:
    """``count`` [r, m] instances placed without moving a running one (issue #15): a model
    above its count sheds on its preferred type first; a model below it adds, largest
    instances first, into the idle slots of the VMs already held of a type at least as fast
    for every tier (``planner.ilp.packing.fill_idle``: the small models' floors in the half
    H100 VM Llama2-70B leaves), the rest on its preferred type. The same move the planner's
    search is given, so both families hold the same packed floors. ``base`` [r, m, g]:
    instances held besides (a plan's floor under LT-R's layer), never moved, whose VMs'
    idle slots count."""
    out = held.copy()
    fixed = np.zeros_like(held) if base is None else base
    runs = [(i, j) for i in range(len(p.models)) for j in range(len(p.vm_types)) if p.ipv[i, j]]
    ipv, faster = packing_terms(p)
    index = {g: j for j, g in enumerate(p.vm_types)}
    big_first = sorted(range(len(p.models)), key=lambda i: -p.gpus_per_instance[i].max())
    for r in range(len(p.regions)):
        for i in range(len(p.models)):
            excess = out[r, i].sum() - count[r, i]
            for j in [p.preferred[r, i], *range(len(p.vm_types))]:
                cut = min(max(excess, 0.0), out[r, i, j])
                out[r, i, j] -= cut
                excess -= cut
        both = out[r] + fixed[r]
        cell = {(p.models[i], p.vm_types[j]): both[i, j] for i, j in runs if both[i, j]}
        for i in big_first:
            add = count[r, i] - out[r, i].sum()
            if add <= 0:
                continue
            home = (p.models[i], p.vm_types[p.preferred[r, i]])
            cell[home] = cell.get(home, 0.0) + add
            fill_idle(cell, *home, add, ipv, faster, integer=True)
            for (m, g), n in cell.items():
                if m == p.models[i]:
                    out[r, i, index[g]] = n - fixed[r, i, index[g]]
    return out


@dataclass
class Reactive:
    p: FleetParams
    initial_load: Array  # [r, m, k] tokens/s the fleet starts sized for
    up: float = 0.8
    down: float = 0.3
    target: float = 0.6
    cooldown_out_min: int = 5
    cooldown_in_min: int = 20
    smooth_min: int = 5
    min_instances: int = 1
    name: str = "reactive"
    share_idle: bool = True
    niw_cap: float | None = None  # NIW's ceiling on the shared pools' utilisation (fluid)
    _count: Array = field(init=False)
    _held: Array = field(init=False)
    _last_out: Array = field(init=False)
    _last_in: Array = field(init=False)
    _recent: deque[Array] = field(init=False)

    def initial(self, p: FleetParams) -> Targets:
        need = instance_equivalents(p, self.initial_load) / self.target
        self._count = np.maximum(np.ceil(need), self.min_instances)
        self._held = np.zeros(p.shape_rmg)
        self._last_out = np.full(self._count.shape, -1e9)
        self._last_in = np.full(self._count.shape, -1e9)
        self._recent = deque(maxlen=self.smooth_min)
        return self._targets()

    def _targets(self) -> Targets:
        targets = count_targets(self.p, self._count, self._held)
        self._held = targets.instances
        return targets

    def decide(self, obs: Observation) -> Targets | None:
        t = obs.minute
        if t == 0:  # nothing observed yet
            return None
        self._recent.append(obs.utilisation)
        u = np.mean(np.stack(self._recent), axis=0)
        serving = obs.fleet.serving()[0].sum(axis=2)
        arrived = instance_equivalents(self.p, obs.arrivals / 60.0)
        # load in instances: utilisation × serving, or (nothing serving) what arrived; a
        # full pool (the gauge stops at 1) grows by up/target per step, as autoscalers do
        load = np.where(serving > 0, u * serving, arrived)
        u = np.where(serving > 0, u, np.where(arrived > 0, np.inf, 0.0))
        want = np.ceil(load / self.target - 1e-9)
        new = self._count.copy()
        out = (u > self.up) & (t - self._last_out >= self.cooldown_out_min) & (want > new)
        new[out] = want[out]
        self._last_out[out] = t
        quiet = t - np.maximum(self._last_out, self._last_in) >= self.cooldown_in_min
        down = (u < self.down) & quiet & (want < new)
        new[down] = np.maximum(want[down], self.min_instances)
        self._last_in[down] = t
        if np.array_equal(new, self._count):
            return None
        self._count = new
        return self._targets()


@dataclass
class Siloed:
    p: FleetParams
    interactive_peak: Array  # [r, m, k] peak-minute tokens/s of each interactive tier
    niw_peak: Array  # [r, m] NIW tokens/s in its busiest hour
    headroom: float = 0.2
    name: str = "siloed"
    share_idle: bool = False

    def initial(self, p: FleetParams) -> Targets:
        inter = np.ceil(instance_equivalents(p, self.interactive_peak) / (1 - self.headroom))
        niw_load = np.zeros((*self.niw_peak.shape, len(p.tiers)))
        niw_load[:, :, p.deferrable] = self.niw_peak
        niw = np.ceil(instance_equivalents(p, niw_load) - 1e-9)
        inst = on_preferred(p, inter + niw)
        reserved = on_preferred(p, niw)
        vms = np.minimum(vms_for(p, inst), p.quota)
        z = np.zeros_like(vms)
        return Targets(vms, z, inst, np.zeros_like(inst), home_routing(p), reserved)

    def decide(self, obs: Observation) -> Targets | None:
        return None


@dataclass
class PlanFollowing:
    """Carries out hourly plans: ``hourly[h]`` are the targets plan h sets for hour h, and
    ``expected[h]`` [r, m] the interactive load (instance equivalents) it planned for. 'Hot'
    is interactive pressure above ``up`` (NIW backlog is deferred on purpose, not a signal)."""

    p: FleetParams
    hourly: list[Targets]
    expected: Array  # [H, r, m]
    mode: str = "lt-i"  # lt-i | lt-u | lt-ua
    name: str = "lt-i"
    up: float = 0.75
    target: float = 0.6
    ahead: float = 1.10
    window: int = 10
    share_idle: bool = True
    niw_cap: float | None = None  # NIW's ceiling on the shared pools' utilisation (fluid)
    _current: Targets | None = field(init=False, default=None)
    _recent: deque[Array] = field(init=False)

    def initial(self, p: FleetParams) -> Targets:
        self._recent = deque(maxlen=self.window)
        self._current = self.hourly[0].copy()
        return self._current.copy()

    def _interactive(self, tokens_per_s: Array) -> Array:
        only = tokens_per_s.copy()
        only[:, :, self.p.deferrable] = 0.0
        return instance_equivalents(self.p, only)

    def _plan(self, h: int) -> Targets:
        return self.hourly[min(h, len(self.hourly) - 1)]

    def decide(self, obs: Observation) -> Targets | None:
        t = obs.minute
        h, into = divmod(t, 60)
        if t > 0:  # minute 0 has no observation yet
            self._recent.append(self._interactive(obs.arrivals / 60.0))
        assert self._current is not None
        cur = self._current
        new: Targets | None = None
        if self.mode == "lt-i":
            if into == 60 - self.p.plan_lead_min and h + 1 < len(self.hourly):
                new = lt_i_targets(cur, self._plan(h + 1), self.p.plan_lead_min)
            elif into == 0 and t > 0:
                new = lt_i_targets(cur, self._plan(h), 0)
        else:
            plan = self._plan(h)
            if into == 0 and t > 0:  # the new hour: scale in to the plan, route by it
                new = cur.copy()
                new.instances = np.minimum(cur.instances, plan.instances)
                new.spot_instances = plan.spot_instances.copy()
                new.spot_vms = plan.spot_vms.copy()
                new.routing = plan.routing.copy()
                new.vms = np.minimum(vms_for(self.p, new.instances), self.p.quota)
                cur = new
            hot = obs.pressure > self.up
            if self.mode == "lt-ua" and len(self._recent) == self.window:
                seen = np.mean(np.stack(self._recent), axis=0)
                expected = self.expected[min(h, len(self.expected) - 1)]
                ahead = seen > self.ahead * np.maximum(expected, 1e-9)
                hot |= ahead
                with np.errstate(divide="ignore", invalid="ignore"):
                    factor = np.where(ahead & (expected > 0), seen / expected, 1.0)
            else:
                factor = np.ones_like(obs.utilisation)
            want = np.ceil(plan.instances * factor[:, :, None] - 1e-9)
            grow = hot[:, :, None] & (want > cur.instances)
            if grow.any():
                new = cur.copy()
                new.instances = np.where(grow, want, cur.instances)
                new.vms = np.minimum(vms_for(self.p, new.instances), self.p.quota)
        if new is None:
            return None
        self._current = new
        return new.copy()
