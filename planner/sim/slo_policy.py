"""An SLO-aware reactive scaler (the Chiron paper's idea): scale on backpressure, not on the
utilisation gauge.

A utilisation gauge stops at 1 and counts deferrable work that is meant to queue, so a
threshold scaler on it either runs cold (low thresholds) or cannot see how far behind a pool
is (high ones). This scaler reads, per region and model, the pool's interactive *pressure*:
interactive work present in the minute, queued included, over the minute's capacity
(``Observation.pressure``; above 1 the excess is queueing delay, (pressure − 1) minutes of
it). It sizes the pool to carry that work at ``target`` pressure plus the NIW arrival rate of
the last hour (so deferred work keeps up on average), scales out at once when pressure passes
``up`` (no smoothing: a queue is already an SLO risk; but not again while the last step's
capacity is still provisioning or loading) and in, after ``cooldown_in_min`` quiet
minutes, when pressure is below ``down``, to the largest size wanted over those minutes.
Every request is served in its region, on each model's preferred VM type, like ``Reactive``.
``niw_cap`` (default none): NIW fills the shared pools only up to this utilisation
(``planner.sim.fluid``), so a NIW backlog does not run the interactive tiers' batch hot.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from planner.sim.fleet import FleetParams, Targets
from planner.sim.fluid import Observation
from planner.sim.policies import Reactive, instance_equivalents

Array = npt.NDArray[np.float64]


@dataclass
class SloReactive(Reactive):
    """:class:`Reactive`'s pools, scaled on pressure (module docstring)."""

    target: float = 0.85
    up: float = 0.95
    down: float = 0.6
    cooldown_out_min: int = 1
    cooldown_in_min: int = 15
    niw_window_min: int = 60
    name: str = "slo-reactive"
    _niw: deque[Array] = field(init=False)
    _wants: MaxWindow = field(init=False)  # the sizes wanted over the scale-in window

    def initial(self, p: FleetParams) -> Targets:
        targets = super().initial(p)
        self._niw = deque(maxlen=self.niw_window_min)
        self._wants = MaxWindow(self.cooldown_in_min, self._count.shape)
        return targets

    def decide(self, obs: Observation) -> Targets | None:
        t = obs.minute
        if t == 0:
            return None
        serving, niw_need, arrived, pressure, want = pressure_need(
            self.p, obs, self._niw, self.target
        )
        new = self._count.copy()
        # hot, or too small for the last hour's NIW rate on top of the interactive arrivals
        behind = new < np.ceil(niw_need + arrived - 1e-9)
        hot = (pressure > self.up) | behind
        # capacity already on its way counts: no second step until it serves (a queue grows
        # while a VM provisions; scaling on it again would double the step)
        settled = serving >= self._count - 1e-9
        out = hot & settled & (t - self._last_out >= self.cooldown_out_min) & (want > new)
        new[out] = want[out]
        self._last_out[out] = t
        # scale-in stabilisation (as Kubernetes' HPA): never below the largest size wanted
        # over the last cooldown_in_min minutes, so one quiet minute does not shed capacity
        floor = self._wants.push(np.where(np.isfinite(want), want, new))
        quiet = t - np.maximum(self._last_out, self._last_in) >= self.cooldown_in_min
        down = (pressure < self.down) & quiet & (floor < new)
        new[down] = np.maximum(floor[down], self.min_instances)
        self._last_in[down] = t
        if np.array_equal(new, self._count):
            return None
        self._count = new
        return self._targets()


class MaxWindow:
    """Per pool, the largest of the last ``length`` values pushed (at least one): the scale-in
    stabilisation window of the SLO-aware scaler and of the layer above the plan
    (``planner.sim.plan_reactive``). A ring of ``length`` slots, unset ones -inf, so a push
    costs one max over the window whatever its age."""

    def __init__(self, length: int, shape: tuple[int, ...]) -> None:
        self._ring: Array = np.full((max(length, 1), *shape), -np.inf)
        self._next = 0

    def push(self, values: Array) -> Array:
        """Add this minute's ``values``; the largest per pool over the window."""
        self._ring[self._next] = values
        self._next = (self._next + 1) % len(self._ring)
        return np.asarray(self._ring.max(axis=0), dtype=float)


def pressure_need(
    p: FleetParams, obs: Observation, niw_window: deque[Array], target: float
) -> tuple[Array, Array, Array, Array, Array]:
    """Per pool [r, m], from the minute's observation: the serving instances, the NIW need
    (the mean NIW arrival rate over ``niw_window``, which this minute's joins), the
    interactive arrivals and the pressure (inf where nothing serves), in instances, and
    the instances wanted to carry that load at ``target`` pressure plus the NIW need."""
    serving = obs.fleet.serving()[0].sum(axis=2)
    niw = np.zeros_like(obs.arrivals)
    niw[:, :, p.deferrable] = obs.arrivals[:, :, p.deferrable] / 60.0
    niw_window.append(instance_equivalents(p, niw))
    niw_need = np.mean(np.stack(niw_window), axis=0)
    inter = obs.arrivals.copy()
    inter[:, :, p.deferrable] = 0.0
    arrived = instance_equivalents(p, inter / 60.0)
    finite = np.isfinite(obs.pressure)
    # an infinite pressure (no instance serving) is zeroed before the product: inf × 0
    # would be evaluated in the discarded branch too
    load = np.where((serving > 0) & finite, np.where(finite, obs.pressure, 0.0) * serving, arrived)
    pressure = np.where(finite, obs.pressure, np.inf)
    return serving, niw_need, arrived, pressure, np.ceil(load / target + niw_need - 1e-9)
