"""The serving model of the fleet replay: what a pool of instances sustains, and how the share
of its requests on time falls as it runs hot. Calibrated to the iteration-level reference
(:mod:`planner.sim.instances`) through the latency curves (:mod:`planner.sim.latency`).

Per model m and VM type g, from the stored curves (``configs/capacity/latency_curves.csv``):

* **capacity**: an instance sustains κ[m, g] busy seconds per second, a busy second being its
  best prefill rate P or decode rate D; on tier k's token mix (input share φ[m, k]) that is
  θ[m, g, k] = κ / (φ / P + (1 − φ) / D) tokens/s. This replaces the config's per-tier
  throughput in the replay, the clairvoyant fleet (:mod:`planner.sim.sizing`) and the plan's
  latency sizing (:mod:`planner.ilp.sizing`; its headroom mode still sizes on the config's);
* **latency**: a pool at utilisation ρ (its served load over that capacity, NIW included: it
  shares the batch) whose instances each see inter-arrival CV c (the pool's CV over √n,
  :func:`planner.sim.latency.instance_cv`) has tier k's on-time share ``sla[m, g, k](ρ, c)``
  (:func:`planner.sim.latency.minute_attainment`, the formula the pool replay uses too).
  A pool of mixed VM types takes each type's curve weighted by its share of the capacity (the
  router loads every instance to the same ρ).

Overload across minutes is the fluid minute queue's business (:mod:`planner.sim.fluid`); the
curve is read at ρ up to its last grid row below 1 (:func:`planner.sim.latency.minute_attainment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.fleet_index import blend
from planner.sim.fleet import FleetParams
from planner.sim.latency import Curve, LatencyCurves, instance_cv, minute_attainment

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ServingModel:
    """Capacity and latency curves of every placement of a fleet (module docstring)."""

    theta: Array  # [m, g, k] tokens/s an instance sustains on tier k's mix (0: no placement)
    curves: dict[tuple[int, int, int], Curve]  # (m, g, k) for interactive k

    def on_time(self, m: int, k: int, instances: Array, rho: Array, pool_cv: Array) -> Array:
        """Tier k's on-time share in pools of model m: ``instances`` [..., g] serving (by VM
        type), ``rho`` [...] their utilisation, ``pool_cv`` [...] the CV of the pool's
        arrivals. 1 where nothing serves (no request is served there anyway)."""
        cap = instances * self.theta[m, :, k]
        total = cap.sum(axis=-1)
        n = instances.sum(axis=-1)
        c = instance_cv(pool_cv, n)
        out = np.zeros(np.shape(rho))
        for g in range(instances.shape[-1]):
            if not cap[..., g].any():
                continue
            curve = self.curves.get((m, g, k))
            if curve is None:
                raise KeyError(f"no latency curve for model {m}, VM type {g}, tier {k}")
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(total > 0, cap[..., g] / total, 0.0)
            out += w * minute_attainment(curve, rho, c)
        return np.where(total > 0, out, 1.0)


def serving_model(p: FleetParams, curves: LatencyCurves, share: Array) -> ServingModel:
    """The :class:`ServingModel` of fleet ``p`` from measured ``curves``; ``share`` [m, k]:
    the input share of each model's and tier's tokens. Raises ``KeyError`` naming a placement
    of the fleet the curves do not cover."""
    nm, ng, nk = p.ipv.shape[0], p.ipv.shape[1], len(p.tiers)
    theta = np.zeros((nm, ng, nk))
    table: dict[tuple[int, int, int], Curve] = {}
    for m, model in enumerate(p.models):
        for g, vm in enumerate(p.vm_types):
            if p.ipv[m, g] <= 0:
                continue
            if (model, vm) not in curves.capacity:
                raise KeyError(
                    f"no latency curves for {model} on {vm}: measure them "
                    "(bench/calibrate.py) before replaying this fleet"
                )
            prefill, decode = curves.rates[(model, vm)]
            kappa = curves.capacity[(model, vm)]
            phi = share[m]
            theta[m, g] = kappa * blend(phi, prefill, decode)
            for k in p.interactive:
                table[(m, g, k)] = curves.curve(model, vm, p.tiers[k])
    return ServingModel(theta, table)


def ideal(p: FleetParams) -> ServingModel:
    """An instance that serves the config's throughput θ and never slows down below
    saturation (every request of a minute that fits is on time): the limit case used by the
    hand-computed tests of the replay's accounting, not a model of a real server."""
    flat = Curve(np.array([0.0, 1.0]), np.array([0.0, 1.0]), np.ones((2, 2)))
    table = {
        (m, g, k): flat
        for m in range(len(p.models))
        for g in range(len(p.vm_types))
        for k in p.interactive
    }
    return ServingModel(np.asarray(p.theta, dtype=float), table)
