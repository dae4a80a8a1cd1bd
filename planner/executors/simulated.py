"""The simulated executor: the simulator's fleet carries out each plan's first hour.

``apply`` sets the plan's targets the moment the plan arrives (LT-I), then advances the fleet
minute by minute through the hour: VMs become usable only after their lead time and models
only after their load time, so the state it reports is what would really run at the end of
the hour, which can fall short of the plan when the plan came too late.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planner.executors.protocol import AppliedState
from planner.ilp.plan import Plan
from planner.sim.fleet import Fleet, FleetParams, Targets
from planner.sim.plans import targets_of


@dataclass
class SimulatedExecutor:
    p: FleetParams
    lead_min: int = 20  # the plan arrives this long before its first hour
    fleet: Fleet | None = None
    minute: int = 0
    history: list[AppliedState] = field(default_factory=list)

    def apply(self, plan: Plan) -> AppliedState:
        targets, _ = targets_of(plan, self.p)
        if self.fleet is None:  # the first plan finds the fleet already running it
            self.fleet = Fleet(self.p, targets)
        self.fleet.set_targets(targets)
        for _ in range(self.lead_min + 60):
            self.fleet.step(self.minute)
            self.minute += 1
        state = AppliedState(
            plan.plan_id, plan.start, self._reached(targets), self._shortfall(targets)
        )
        self.history.append(state)
        return state

    def _reached(self, targets: Targets) -> dict[str, dict[str, Any]]:
        assert self.fleet is not None
        od, spot = self.fleet.serving()
        vm_od, vm_spot = self.fleet.od.ready, self.fleet.spot.ready
        out: dict[str, dict[str, Any]] = {}
        for a, r in enumerate(self.p.regions):
            out[r] = {
                "vms": {
                    g: {"on_demand": int(vm_od[a, j]), "spot": int(vm_spot[a, j])}
                    for j, g in enumerate(self.p.vm_types)
                    if vm_od[a, j] or vm_spot[a, j]
                },
                "instances": {
                    m: {
                        g: {"on_demand": int(od[a, i, j]), "spot": int(spot[a, i, j])}
                        for j, g in enumerate(self.p.vm_types)
                        if od[a, i, j] or spot[a, i, j]
                    }
                    for i, m in enumerate(self.p.models)
                    if (od[a, i] + spot[a, i]).any()
                },
            }
        return out

    def _shortfall(self, targets: Targets) -> list[str]:
        assert self.fleet is not None
        od, spot = self.fleet.serving()
        short = np.argwhere(od + spot < targets.instances + targets.spot_instances - 1e-9)
        return [
            f"{self.p.regions[a]}: {self.p.models[i]} on {self.p.vm_types[j]} short of the plan"
            for a, i, j in short
        ]
