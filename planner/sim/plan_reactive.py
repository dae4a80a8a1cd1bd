"""A reactive layer above the plan (``lt-r``): the plan is a floor, backpressure scales above it.

The floor is the hourly plan carried out as LT-I does: the next hour's counts are bought
``plan_lead_min`` before the hour (the larger of this hour's and the next hour's plan, so a
predictable ramp is met with capacity that has provisioned and loaded), and on the hour the
fleet scales in to that hour's plan. Above the floor, per region and model, the SLO-aware
scaler of ``planner.sim.slo_policy`` runs on the pool's interactive pressure: it adds
instances of the model's preferred VM type when pressure passes ``up`` (once the last step
serves), sized to carry the observed work at ``target`` pressure plus the NIW arrival rate of
the last ``niw_window_min`` minutes (as the SLO-aware scaler: NIW fills what the interactive
tiers leave and shares their batch, so a pool sized for interactive pressure alone runs hot
under a NIW backlog, which the pressure signal does not see), and hands them back after
``cooldown_in_min`` quiet minutes below ``down`` to the largest size wanted over that window.

Make before break (``handover``): LT-I drops the last hour's capacity on the hour, but a VM
bought at the plan's making (``planner.plan_lead_min``, 20 min by default) serves only after
its lead time and model load (15 + 13 min for the largest models in the default fleet), so
wherever a new plan moves capacity (another VM type, region or model) the pool is short for minutes
every hour — the more so the more a plan moves, which is how plans at p90/p95 cost more *and*
missed more in issue-14's sweep. With ``handover`` the floor keeps the union of the two
hours' counts of a model, and the last hour's routing of it, until the new hour's
instances of that model serve in every region (at most ``handover_max_min`` minutes),
then drops to the new plan.

``niw_cap`` (default none): NIW fills the capacity the plan holds idle only up to this
utilisation of the shared pools (``planner.sim.fluid``): trough filling in the replay, with
the interactive tiers' batch kept as cool as their latency target needs.

The layer only ever *adds* to the plan: its extra instances are ``max(0, ·)`` and the targets
are the plan's counts plus them, so the fleet this policy asks for is never below the plan's
floor (tested). At an hour boundary the extra is re-expressed against the new floor (a plan
that already covers the observed load absorbs it), so a ramp the plan foresaw does not buy
twice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.sim.fleet import FleetParams, Targets, lt_i_targets, vms_for
from planner.sim.fluid import Observation
from planner.sim.policies import packed
from planner.sim.slo_policy import MaxWindow, pressure_need

Array = npt.NDArray[np.float64]


@dataclass
class PlanReactive:
    p: FleetParams
    hourly: list[Targets]
    name: str = "lt-r"
    target: float = 0.85
    up: float = 0.95
    down: float = 0.6
    cooldown_in_min: int = 15
    settle_min: int = 20
    handover: bool = True
    handover_max_min: int = 30
    share_idle: bool = True
    niw_window_min: int = 60
    niw_cap: float | None = None
    _floor: Targets | None = field(init=False, default=None)
    _extra: Array = field(init=False)
    _placed: Array = field(init=False)
    _last_out: Array = field(init=False)
    _last_in: Array = field(init=False)
    _last_buy: Array = field(init=False)  # the plan's last purchase (LT-F): settles, not a step
    _wants: MaxWindow = field(init=False)
    _niw: deque[Array] = field(init=False)
    _union: Targets | None = field(init=False, default=None)

    def initial(self, p: FleetParams) -> Targets:
        self._floor = self.hourly[0].copy()
        shape = (len(p.regions), len(p.models))
        self._extra = np.zeros(shape)
        self._placed = np.zeros(p.shape_rmg)
        self._last_out = np.full(shape, -1e9)
        self._last_in = np.full(shape, -1e9)
        self._last_buy = np.full(shape, -1e9)
        self._wants = MaxWindow(self.cooldown_in_min, shape)
        self._niw = deque(maxlen=max(self.niw_window_min, 1))
        return self.targets()

    def _least(self, floor: Array) -> Array | float:
        """The layer's extra never goes below this [r, m] (here 0: the plan is the floor)."""
        return 0.0

    def _plan(self, h: int) -> Targets:
        return self.hourly[min(h, len(self.hourly) - 1)]

    def floor(self) -> Targets:
        """The plan's targets in force now (LT-I's schedule)."""
        assert self._floor is not None
        return self._floor

    def targets(self) -> Targets:
        """The floor plus the reactive extra, placed by ``policies.packed`` (new extra
        instances into the idle slots of held VMs of a type at least as fast, else on each
        model's preferred VM type; placed ones stay)."""
        floor = self.floor()
        out = floor.copy()
        self._placed = packed(self.p, self._placed, self._extra, floor.instances)
        out.instances += self._placed
        out.vms = np.minimum(np.maximum(floor.vms, vms_for(self.p, out.instances)), self.p.quota)
        return out

    def _move_floor(self, t: int) -> bool:
        """LT-I's schedule: buy ahead of the next hour, scale in to the plan on the hour."""
        h, into = divmod(t, 60)
        cur = self.floor()
        if into == 60 - self.p.plan_lead_min and h + 1 < len(self.hourly):
            new = lt_i_targets(cur, self._plan(h + 1), self.p.plan_lead_min)
        elif into == 0 and t > 0:
            new = lt_i_targets(cur, self._plan(h), 0)
            if self.handover:
                self._union = cur.copy()
                new = self._held(new, self._union, np.zeros(new.instances.shape[:2], bool))
        else:
            return False
        total = cur.instances.sum(axis=2) + self._extra
        self._floor = new
        self._extra = np.maximum(total - new.instances.sum(axis=2), 0.0)
        return True

    def _held(self, plan: Targets, union: Targets, done: npt.NDArray[np.bool_]) -> Targets:
        """The plan where ``done`` [r, m], the union of the two hours' counts elsewhere."""
        out = plan.copy()
        keep = ~done[:, :, None]
        out.instances = np.where(keep, np.maximum(plan.instances, union.instances), plan.instances)
        need = np.minimum(vms_for(self.p, out.instances), self.p.quota)
        out.vms = np.maximum(plan.vms, need)
        # a model still handing over keeps the last hour's routing (its new pools not serving)
        moving = ~done.all(axis=0)
        out.routing[:, :, moving, :] = union.routing[:, :, moving, :]
        return out

    def _hand_over(self, obs: Observation) -> bool:
        """Drop the last hour's capacity where the new hour's instances serve (or late)."""
        if self._union is None:
            return False
        h, into = divmod(obs.minute, 60)
        plan = self._plan(h)
        # per model: capacity may move between regions, so a model is done once all its
        # new pools serve (a region that only sheds would otherwise count as done at once)
        serves = obs.fleet.serving()[0] >= plan.instances - 1e-9
        ready: npt.NDArray[np.bool_] = np.asarray(serves.all(axis=(0, 2)), dtype=bool)
        done = np.broadcast_to(ready[None, :], plan.instances.shape[:2]).copy()
        if into >= self.handover_max_min or into < 1:
            done[:] = True
        if done.all():
            self._union = None
        cur = self.floor()
        new = plan.copy() if self._union is None else self._held(plan, self._union, done)
        if np.array_equal(new.instances, cur.instances) and np.array_equal(new.vms, cur.vms):
            return False
        self._floor = new
        return True

    def decide(self, obs: Observation) -> Targets | None:
        t = obs.minute
        moved = self._move_floor(t)
        if not moved and t > 0:
            moved = self._hand_over(obs)
        if t == 0:
            return self.targets() if moved else None
        floor = self.floor().instances.sum(axis=2)
        total = floor + self._extra
        serving, niw_need, arrived, pressure, want = pressure_need(
            self.p, obs, self._niw, self.target
        )
        extra = self._extra.copy()
        # capacity on its way counts: no second step until the last one serves
        # (or after ``settle_min``: capacity a quota trims never arrives)
        last = np.maximum(self._last_out, self._last_buy)
        settled = (serving >= total - 1e-9) | (t - last >= self.settle_min)
        # hot, or too small for the last hour's NIW rate on top of the interactive arrivals
        behind = total < np.ceil(niw_need + arrived - 1e-9)
        out = ((pressure > self.up) | behind) & settled & (want > total)
        extra[out] = want[out] - floor[out]
        self._last_out[out] = t
        stable = self._wants.push(np.where(np.isfinite(want), want, total))
        quiet = t - np.maximum(self._last_out, self._last_in) >= self.cooldown_in_min
        down = (pressure < self.down) & quiet & (extra > 0) & (stable < total)
        extra[down] = np.maximum(stable[down] - floor[down], 0.0)
        extra = np.maximum(extra, self._least(floor))
        self._last_in[down & (extra < self._extra)] = t  # a step the hold cancelled is none
        if not moved and np.array_equal(extra, self._extra):
            return None
        self._extra = extra
        return self.targets()
