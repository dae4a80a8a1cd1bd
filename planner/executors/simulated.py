"""The simulated executor: the simulator's fleet carries out each plan's first hour.

``apply`` carries the plan out as the evaluation's LT-I does (``planner.sim.fleet.lt_i_targets``:
scale-outs the moment the plan arrives, the plan itself on its hour), advancing the fleet
minute by minute through the hour: VMs become usable only after their lead time and models
only after their load time, so the state it reports is what would really run at the end of
the hour, which can fall short of the plan when the plan came too late.

``serve`` replays one pool's requests of the applied hour through the instances the fleet runs
there (the iteration-level model), spread over them by the config's instance router
(``routing``): for ``learned`` it loads the versioned artifact ``<routers_dir>/<artifact>.json``
the routing scenario trained, and refuses, with the path and the reason, one that is missing,
of another artifact version or feature set, or trained for another instance profile or
routing epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planner.config.models import RoutingSettings
from planner.executors.protocol import AppliedState
from planner.ilp.plan import Plan
from planner.sim import learn_router
from planner.sim.fleet import Fleet, FleetParams, Targets, lt_i_targets
from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.plans import targets_of
from planner.sim.profile import InstanceProfile
from planner.sim.routers import (
    Estimate,
    JoinShortestQueue,
    LeastTokens,
    LinearMix,
    constant_estimate,
)
from planner.sim.routing import RoundRobin, Router


def instance_router(
    settings: RoutingSettings,
    profile: InstanceProfile,
    routers_dir: Path | str | None,
    estimate: Estimate | None = None,
    mean_output: float = 200.0,
) -> Router:
    """The config's instance router for a pool of ``profile`` instances. ``estimate``: the
    requests' predicted output (the length predictor); without it every router uses a flat
    estimate (the learned policy's training mean, else ``mean_output``)."""
    name, epoch = settings.router, settings.epoch_s
    if name == "round-robin":
        return RoundRobin()
    if name == "learned":
        if routers_dir is None:
            raise ValueError("routing.router is learned but no routers folder was given")
        path = Path(routers_dir) / f"{settings.artifact}.json"
        policy = learn_router.load_for(path, profile, epoch)
        return policy.router(profile, estimate or constant_estimate(policy.mean_output), epoch)
    flat = constant_estimate(mean_output)
    if name == "jsq":
        return JoinShortestQueue(profile, flat, epoch)
    if name == "least-tokens":
        return LeastTokens(profile, flat, epoch)
    return LinearMix(profile, estimate or flat, epoch, mean_output=mean_output)  # heuristic


@dataclass
class SimulatedExecutor:
    p: FleetParams
    lead_min: int = 20  # the plan arrives this long before its first hour
    fleet: Fleet | None = None
    minute: int = 0
    history: list[AppliedState] = field(default_factory=list)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    routers_dir: Path | None = None  # <outputs>/routers: where the learned router is saved
    profiles: Mapping[tuple[str, str], InstanceProfile] = field(default_factory=dict)

    def apply(self, plan: Plan) -> AppliedState:
        targets, _ = targets_of(plan, self.p)
        if self.fleet is None:  # the first plan finds the fleet already running it
            self.fleet = Fleet(self.p, targets)
        for k in range(self.lead_min + 60):
            if k in (0, self.lead_min):
                self.fleet.set_targets(lt_i_targets(self.fleet.targets, targets, self.lead_min - k))
            self.fleet.step(self.minute)
            self.minute += 1
        state = AppliedState(plan.plan_id, plan.start, self._reached(), self._shortfall(targets))
        self.history.append(state)
        return state

    def serve(
        self,
        region: str,
        model: str,
        vm_type: str,
        requests: Requests,
        estimate: Estimate | None = None,
    ) -> Served:
        """Replay ``requests`` (one pool's traffic of the hour just applied) through the
        instances of ``model`` on ``vm_type`` the fleet serves in ``region``, routed by the
        config's instance router (module docstring)."""
        if self.fleet is None:
            raise ValueError("no plan applied yet: the fleet serves nothing")
        key = (model, vm_type)
        if key not in self.profiles:
            raise ValueError(f"no instance profile for {model} on {vm_type}")
        a = self.p.regions.index(region)
        i, j = self.p.models.index(model), self.p.vm_types.index(vm_type)
        od, spot = self.fleet.serving()
        n = round(float(od[a, i, j] + spot[a, i, j]))
        if n < 1:
            raise ValueError(f"{region}: no {model} instance serves on {vm_type}")
        router = instance_router(self.routing, self.profiles[key], self.routers_dir, estimate)
        return simulate_instances(requests, self.profiles[key], n, router)

    def _reached(self) -> dict[str, dict[str, Any]]:
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
