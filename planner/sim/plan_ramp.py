"""The plan buys ahead of the ramps, the SLO-aware layer holds everything else (``lt-f``).

LT-R (``planner.sim.plan_reactive``) keeps the plan's whole hourly fleet as a floor from the
hour's start to its end, so any capacity the plan holds above the minute's need is paid for
the full hour (+266 GPU-h on the demo day against the same fleet resized every minute, issue
#15's decomposition). Here the plan is a floor only where a reactive scaler cannot be in time:

* **Buy ahead of the ramp.** ``plan_lead_min`` before hour h+1 (when its plan is made), every
  [region, model, VM type] the plan holds more instances of than the fleet does now (the
  floor in force plus the layer's) gets the difference, so a predictable ramp meets capacity
  that has provisioned and loaded by then (VM lead and model load honoured). Where the fleet
  already holds the plan's count nothing is bought, and nothing is ever dropped on the hour.
* **Route by the plan** from the hour's start (its cross-region routing is the plan's).
* **Hand over.** ``release_min`` minutes into the hour the floor's instances become the
  layer's own (left where they run, nothing moved or restarted), and the layer (the
  SLO-aware scaler of ``planner.sim.slo_policy``, the same dials as the ``slo-reactive``
  family) keeps or hands them back minute by minute on observed pressure, never below
  ``min_instances`` per pool (the availability floor the baselines keep).

So between ramps this policy *is* the SLO-aware scaler, with the plan's routing and ramp
purchases on top: the fleet it asks for is never below the floor in force, never below the
plan's count from the purchase to the hand-over, and never below the availability floor
(tested, ``tests/planner/test_plan_ramp.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.sim.fleet import FleetParams, Targets
from planner.sim.plan_reactive import Array, PlanReactive


@dataclass
class PlanRamp(PlanReactive):
    """:class:`PlanReactive` whose floor is the plan's ramp, handed to the layer at
    ``release_min`` (module docstring)."""

    name: str = "lt-f"
    handover: bool = False
    release_min: int = 15
    min_instances: int = 1
    _due: Array | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not 0 <= self.release_min < 60 - self.p.plan_lead_min:
            raise ValueError(
                f"release_min {self.release_min} must be in [0, {60 - self.p.plan_lead_min}) "
                "(before the next hour's plan is bought)"
            )

    def initial(self, p: FleetParams) -> Targets:
        self._due = self.hourly[0].instances.sum(axis=2)
        return super().initial(p)

    def _least(self, floor: Array) -> Array | float:
        """The availability floor, and until the hand-over the plan's count per pool (the
        layer may shed its own instances where the plan's bought ones cover the load)."""
        due = self.min_instances if self._due is None else np.maximum(self._due, self.min_instances)
        return np.maximum(due - floor, 0.0)

    def _move_floor(self, t: int) -> bool:
        h, into = divmod(t, 60)
        cur = self.floor()
        new = cur.copy()
        if into == 60 - self.p.plan_lead_min and h + 1 < len(self.hourly):
            # buy what the next hour's plan holds beyond the fleet now (floor + layer)
            held, plan = cur.instances + self._placed, self._plan(h + 1).instances
            new.instances = cur.instances + np.maximum(plan - held, 0.0)
            self._due = plan.sum(axis=2)
        if into == 0 and t > 0:
            new.routing = self._plan(h).routing.copy()
        if into == self.release_min:
            self._placed = self._placed + cur.instances
            self._extra = self._extra + cur.instances.sum(axis=2)
            new.instances = np.zeros_like(cur.instances)
            new.vms = np.zeros_like(cur.vms)
            self._due = None
        if _same(new, cur):
            return False
        self._floor = new
        return True


def layered(
    a: Mapping[str, Any], p: FleetParams, hourly: list[Targets], label: str
) -> PlanReactive:
    """The sweep's plan point of params ``a``: LT-R (the plan's whole hour as the floor) or
    LT-F (the plan's ramps as the floor, handed to the layer ``release_min`` into the hour),
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
        return PlanRamp(p, hourly, release_min=int(a["release_min"]), **dials)
    return PlanReactive(p, hourly, handover=bool(a.get("handover", True)), **dials)


def _same(a: Targets, b: Targets) -> bool:
    return all(
        np.array_equal(getattr(a, k), getattr(b, k)) for k in ("instances", "vms", "routing")
    )
