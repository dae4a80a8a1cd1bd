"""The plan buys ahead of the ramps, the SLO-aware layer holds everything else (``lt-f``).

LT-R (``planner.sim.plan_reactive``) keeps the plan's whole hourly fleet as a floor from the
hour's start to its end, so any capacity the plan holds above the minute's need is paid for
the full hour (+266 GPU-h on the demo day against the same fleet resized every minute, issue
#15's decomposition). Here the plan is a floor only where a reactive scaler cannot be in time:

* **Buy ahead of the ramp.** ``plan_lead_min`` before hour h+1 (when its plan is made), every
  pool [region, model] whose plan rises from hour h to h+1 grows by that rise, up to the next
  hour's plan count (``delta``, the default; without it every pool is grown to the next
  hour's plan count, which buys wherever the plan is more generous than the layer, every
  hour, and measured dearer on the demo day), so a predictable ramp meets capacity that has
  provisioned and loaded by then (VM lead and model load honoured). The plan gives the
  *count*; the instances are placed as the layer places its own (``policies.packed``: idle
  slots of held VMs of a type at least as fast, else the pool's preferred type), so the
  plan's and the layer's placements never disagree (a plan instance on a slower type, e.g.
  Bloom on A100 in a cheap hour, would otherwise be kept while the layer sheds its faster
  ones). Nothing is dropped on the hour.
* **Hold the plan's count until the hand-over**: ``release_min`` minutes into the hour the
  layer may go below it; until then it may not (it may shed where its own scale-outs
  exceed it). The purchase is no step of the layer's (``buy_is_step`` off): it holds the
  layer's next scale-out until it serves, but does not restart its scale-in window, so a
  ramp that did not come goes back at the hand-over, not ``cooldown_in_min`` after the
  purchase (on ServeGen's 180-min windows: three hours).
* **Only the rise the band supports** (``lower``: the plans of a lower quantile of the same
  forecasts, the sweep point's ``rise_quantile``): each purchase is the smaller of the two
  plans' rises. Off by default: on ServeGen (q 0.05) it buys nothing and ties the SLO-aware
  scaler (4,078 → 3,476 GPU-h), on the demo it costs 26 GPU-h (README, issue #15).
* **Routing**: every request served in its region (as the baselines), or with
  ``plan_routing`` the plan's cross-region routing from each hour's start (measured dearer on
  the demo day: 1,633 against 1,682 GPU-h at the same dials, before ``delta``).

Everything else is the SLO-aware scaler of ``planner.sim.slo_policy`` (the layer of LT-R, the
same dials as the ``slo-reactive`` family), down to ``min_instances`` per pool (the
availability floor the baselines keep). So between ramps this policy *is* the SLO-aware
scaler; the fleet it asks for is never below one instance per pool, and from the purchase to
the hand-over it holds what was bought (the rise, capped at the plan's count; with ``lower``,
the smaller rise of the lower quantile's plans) on top of what it held (tested,
``tests/planner/test_plan_ramp.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.sim.fleet import FleetParams, Targets, home_routing
from planner.sim.plan_reactive import Array, PlanReactive


@dataclass
class PlanRamp(PlanReactive):
    """:class:`PlanReactive` with no floor but the plan's counts from each purchase to
    ``release_min`` into the hour (module docstring)."""

    name: str = "lt-f"
    handover: bool = False
    release_min: int = 15
    min_instances: int = 1
    plan_routing: bool = False
    delta: bool = True
    buy_is_step: bool = False
    lower: list[Targets] | None = None
    _due: Array = field(init=False)
    _late: tuple[Array, Array] | None = field(init=False, default=None)  # re-plan: (base, count)

    def __post_init__(self) -> None:
        if not 0 <= self.release_min < 60 - self.p.plan_lead_min:
            raise ValueError(
                f"release_min {self.release_min} must be in [0, {60 - self.p.plan_lead_min}) "
                "(before the next hour's plan is bought)"
            )

    def initial(self, p: FleetParams) -> Targets:
        super().initial(p)
        plan = self.hourly[0]
        self._floor = _empty(plan, plan.routing if self.plan_routing else home_routing(p))
        self._due = np.maximum(plan.instances.sum(axis=2), self.min_instances)
        self._extra = self._due.copy()
        return self.targets()

    @property
    def held(self) -> Array:
        """The count [r, m] the pools may not go below now (the purchase until the
        hand-over, the availability floor after it)."""
        return self._due.copy()

    def _least(self, floor: Array) -> Array | float:
        """Until the hand-over, what the purchase set (the next hour's plan count, or with
        ``delta`` what the layer held plus the plan's rise, up to that count); the
        availability floor after it."""
        return self._due

    def rise(self, h: int) -> Array:
        """[r, m] the instances bought ahead of hour ``h``: the plan's rise from hour h-1,
        and with ``lower`` (the plans of a lower quantile of the same forecasts) no more than
        they rise: the part of the rise the forecast's band supports."""
        up = _rise(self.hourly, h)
        if self.lower is not None:
            up = np.minimum(up, _rise(self.lower, h))
        return up

    def replan(self, h: int, plan: Targets) -> Array:
        """Hour ``h``'s plan replaced after its purchase minute: its increase [r, m] over the
        plan it replaces is bought at the next minute decided (grown on what the pools hold, up
        to the new count, held until the next hand-over), and the next hour's rise is measured
        from the new count. Returns the increase."""
        count = plan.instances.sum(axis=2)
        # what was bought: a re-plan before any minute ran replaces one not bought yet
        base = self.hourly[h].instances.sum(axis=2) if self._late is None else self._late[0]
        self.hourly[h] = plan
        self._late = (base, count)
        up: Array = np.maximum(count - base, 0.0)
        return up

    def _buy_late(self, t: int) -> bool:
        """The increase of a re-plan (:meth:`replan`), bought at minute ``t``."""
        if self._late is None:
            return False
        base, count = self._late
        self._late = None
        up = np.maximum(count - base, 0.0)
        due = np.maximum(np.minimum(self._extra + up, count), self._due)
        grow = self._extra < due
        self._due, self._extra = due, np.maximum(self._extra, due)
        self._last_buy[grow] = t
        return bool(grow.any())

    def _move_floor(self, t: int) -> bool:
        h, into = divmod(t, 60)
        moved = self._buy_late(t)
        if into == 60 - self.p.plan_lead_min and h + 1 < len(self.hourly):
            plan = self._plan(h + 1).instances.sum(axis=2)
            if self.delta:  # the forecast rise on top of what the layer holds, up to the plan
                plan = np.minimum(self._extra + self.rise(h + 1), plan)
            self._due = np.maximum(plan, self.min_instances)
            grow = self._extra < self._due
            self._extra = np.maximum(self._extra, self._due)
            # no step of the layer's until the purchase serves; with ``buy_is_step`` the
            # purchase also restarts the layer's scale-in window (the hold then outlasts the
            # hand-over by up to ``cooldown_in_min``)
            (self._last_out if self.buy_is_step else self._last_buy)[grow] = t
            moved = moved or bool(grow.any())
        if into == 0 and t > 0 and self.plan_routing:
            self._floor = _empty(self.floor(), self._plan(h).routing)
            moved = True
        if into == self.release_min:
            self._due = np.full_like(self._due, float(self.min_instances))
        return moved


def layered(
    a: Mapping[str, Any],
    p: FleetParams,
    hourly: list[Targets],
    label: str,
    lower: list[Targets] | None = None,
) -> PlanReactive:
    """The sweep's plan point of params ``a``: LT-R (the plan's whole hour as the floor) or
    LT-F (the plan's ramps as the floor, handed to the layer ``release_min`` into the hour;
    with ``lower``, the plans at the point's ``rise_quantile``, only the rise they support),
    the SLO-aware layer at the point's dials."""
    target = float(a.get("target", 0.85))
    dials: dict[str, Any] = {
        "name": label,
        "target": target,
        "up": float(a.get("up", round(min(target + 0.1, 0.98), 2))),
        "down": float(a.get("down", round(0.7 * target, 2))),
        "cooldown_in_min": int(a.get("cooldown_in_min", 15)),
        "niw_cap": a.get("niw_cap"),
    }
    if a["mode"] == "lt-f":
        dials.update(release_min=int(a["release_min"]), delta=bool(a.get("delta", True)))
        routing = bool(a.get("plan_routing", False))
        return PlanRamp(p, hourly, plan_routing=routing, lower=lower, **dials)
    return PlanReactive(p, hourly, handover=bool(a.get("handover", True)), **dials)


def _rise(hourly: list[Targets], h: int) -> Array:
    """[r, m] how many instances the plan sequence ``hourly`` adds from hour h-1 to hour h."""
    at = [hourly[min(max(k, 0), len(hourly) - 1)].instances.sum(axis=2) for k in (h - 1, h)]
    up: Array = np.maximum(at[1] - at[0], 0.0)
    return up


def _empty(like: Targets, routing: Array) -> Targets:
    """No instance, no VM, ``routing``: the floor of LT-F (the layer holds every instance)."""
    out = like.copy()
    for k in ("vms", "spot_vms", "instances", "spot_instances"):
        setattr(out, k, np.zeros_like(getattr(like, k)))
    out.routing = routing.copy()
    return out
