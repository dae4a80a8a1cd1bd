"""The simulated executor: the simulator's fleet carries out each plan's first hour.

``apply`` carries the plan out as the evaluation's LT-I does (``planner.sim.fleet.lt_i_targets``:
scale-outs the moment the plan arrives, the plan itself on its hour), advancing the fleet
minute by minute through the hour: VMs become usable only after their lead time and models
only after their load time, so the state it reports is what would really run at the end of
the hour, which can fall short of the plan when the plan came too late.

With ``lt_f`` (the config's ``lt_f`` dials, when ``lt_f.executor`` is set) plans are carried
out as LT-F instead, by the replay's own policy (``planner.sim.plan_ramp.PlanRamp``, kept
across plans): the executor's minutes run from one plan's arrival to the next's (60 min,
the first plan found running at minute 0 of its hour), each pool grows by the plan's rise
when the plan arrives and keeps at least that until ``release_min`` into the hour, then the
SLO-aware scaler decides on what ``observe`` reports each minute (default: no traffic, so
the pools hand back down to one instance each). ``notes`` name the pools that did not serve
the held count at the hand-over. LT-I stays the default: LT-F goes below the plan after the
hand-over by design, so it is not never-less-safe than LT-I.

Both place each plan by its hour (``_place``): the hour after the last, or the last again (a
retry or re-plan: it replaces that hour's plan, runs no minute and returns the hour's notes
again); an earlier hour, or a start not a whole number of hours after the first plan's, is an
error. A re-plan comes after its hour's purchase minute (the executor's clock stands at the
next plan's arrival): under LT-F its increase over the plan it replaces is bought at once
(``PlanRamp.replan``; the next rise is then measured from its count, as the webhook's next
document measures it from the re-plan's), under LT-I its hour is over and it is not carried
out; either way its state notes it.

``serve`` replays one pool's requests of the applied hour through the instances the fleet runs
there (the iteration-level model), spread over them by the config's instance router
(``routing``): for ``learned`` it loads the versioned artifact ``<routers_dir>/<artifact>.json``
the routing scenario trained, and refuses, with the path and the reason, one that is missing,
of another artifact version or feature set, or trained for another instance profile or
routing epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from planner.config.models import RoutingSettings
from planner.executors.protocol import AppliedState
from planner.ilp.plan import Plan
from planner.sim import learn_router
from planner.sim.fleet import Fleet, FleetParams, Targets, lt_i_targets
from planner.sim.fluid import Observation
from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.plan_ramp import PlanRamp
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
    p: FleetParams  # its plan_lead_min (the config's): a plan arrives that long before its hour
    fleet: Fleet | None = None
    minute: int = 0
    history: list[AppliedState] = field(default_factory=list)
    routing: RoutingSettings = field(default_factory=RoutingSettings)
    routers_dir: Path | None = None  # <outputs>/routers: where the learned router is saved
    profiles: Mapping[tuple[str, str], InstanceProfile] = field(default_factory=dict)
    lt_f: Mapping[str, Any] | None = None  # LT-F's dials (LtfSettings.dials()); none: LT-I
    observe: Callable[[int, Fleet], Observation] | None = None  # with lt_f: what it sees
    _ramp: PlanRamp | None = field(default=None, init=False)
    _first: datetime | None = field(default=None, init=False)  # the first plan's hour
    _hours: int = field(default=0, init=False)  # hours placed so far
    _last: Targets | None = field(default=None, init=False)  # the last hour's targets
    _notes: list[str] = field(default_factory=list, init=False)  # the last hour's notes

    def apply(self, plan: Plan) -> AppliedState:
        targets, _ = targets_of(plan, self.p)
        again = self._place(plan) < self._hours
        late = self._replaced(plan, targets) if again else []
        if self.lt_f is not None:
            ran = self._apply_lt_f(targets, again)
        else:
            ran = [] if again else self._apply_lt_i(targets)
        if not again:  # a re-plan runs no minute: the hour's notes stay its own
            self._hours, self._notes = self._hours + 1, ran
        self._last = targets
        state = AppliedState(plan.plan_id, plan.start, self._reached(), [*self._notes, *late])
        self.history.append(state)
        return state

    def _apply_lt_i(self, targets: Targets) -> list[str]:
        """Carry ``targets`` out as LT-I, from the plan's arrival to its hour's end."""
        if self.fleet is None:  # the first plan finds the fleet already running it
            self.fleet = Fleet(self.p, targets)
        lead = self.p.plan_lead_min
        for k in range(lead + 60):
            if k in (0, lead):
                self.fleet.set_targets(lt_i_targets(self.fleet.targets, targets, lead - k))
            self.fleet.step(self.minute)
            self.minute += 1
        return self._shortfall(targets)

    def _apply_lt_f(self, targets: Targets, again: bool) -> list[str]:
        """Carry ``targets`` out as LT-F, from its arrival to the next plan's (module
        docstring); a re-plan of the last hour runs no minute (the next plan's arrival is the
        same minute): its increase is bought when the minutes resume."""
        if self._ramp is None:  # the fleet already runs the first plan
            self._ramp = PlanRamp(self.p, [targets], name="lt-f", **self.lt_f or {})
            self.fleet, self.minute = Fleet(self.p, self._ramp.initial(self.p)), 0
        elif again:
            self._ramp.replan(len(self._ramp.hourly) - 1, targets)
        else:
            self._ramp.hourly.append(targets)
        assert self.fleet is not None
        stop = 60 * len(self._ramp.hourly) - self.p.plan_lead_min
        hand_over = 60 * (len(self._ramp.hourly) - 1) + self._ramp.release_min - 1
        notes: list[str] = []
        while self.minute < stop:
            decided = self._ramp.decide(self._observe(self.minute))
            if decided is not None:
                self.fleet.set_targets(decided)
            self.fleet.step(self.minute)
            if self.minute == hand_over:  # the last minute the purchase is held
                notes = self._below(self._ramp.held)
            self.minute += 1
        return notes

    def _place(self, plan: Plan) -> int:
        """``plan``'s hour (0: the first plan's): the hour after the last, or the last again
        (a re-plan of that hour: it replaces it); else an error, as for a start that is not a
        whole number of hours after the first plan's."""
        self._first = self._first or plan.start
        since = plan.start - self._first
        hour = since // timedelta(hours=1)
        if since % timedelta(hours=1):
            raise ValueError(
                f"plan {plan.plan_id} starts at {plan.start:%Y-%m-%d %H:%M:%S}, not a whole "
                f"number of hours after the first plan's {self._first:%Y-%m-%d %H:%M}"
            )
        if hour not in (self._hours - 1, self._hours):
            last = self._first + timedelta(hours=self._hours - 1)
            raise ValueError(
                f"plan {plan.plan_id} is for {plan.start:%Y-%m-%d %H:%M}; the simulated executor "
                f"carries out {last:%Y-%m-%d %H:%M} or the hour after it"
            )
        return hour

    def _replaced(self, plan: Plan, targets: Targets) -> list[str]:
        """A note for a re-plan of the last hour that changes its counts: it came after the
        hour's purchase minute (LT-F: its increase is bought at once; LT-I: the hour is over,
        it is not carried out)."""
        assert self._last is not None
        new, old = (t.instances.sum(axis=2) for t in (targets, self._last))
        if np.array_equal(new, old):
            return []
        what = "not carried out"  # LT-I: the hour is over
        if self.lt_f is not None:
            more = (new > old).any()
            what = "its increase bought at once" if more else "what it drops left to the scaler"
        return [
            f"plan {plan.plan_id} re-plans {plan.start:%Y-%m-%d %H:%M} after its purchase "
            f"minute: {what}"
        ]

    def _observe(self, minute: int) -> Observation:
        assert self.fleet is not None
        if self.observe is not None:
            return self.observe(minute, self.fleet)
        nr, nm, _ = self.p.shape_rmg
        idle = np.zeros((nr, nm))
        return Observation(minute, np.zeros((nr, nm, len(self.p.tiers))), idle, idle, self.fleet)

    def _below(self, held: np.ndarray[Any, np.dtype[np.float64]]) -> list[str]:
        """The pools [r, m] serving fewer instances than ``held``."""
        assert self.fleet is not None
        serving = self.fleet.serving()[0].sum(axis=2)
        short = np.argwhere(serving < held - 1e-9)
        return [f"{self.p.regions[a]}: {self.p.models[i]} below LT-F's hold" for a, i in short]

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
