"""How many instances a tier needs to meet its latency target: the one seam between the
serving model and the clairvoyant fleet (``planner.sim.bounds``).

Today it is the fluid replay's own rule (``planner.sim.fluid``): a pool serves Σ instances ×
θ[m, g, k] tokens/s and, within a minute whose work fits in that capacity, nothing queues, so
the tier meets its TTFT target (prefill and network time are fixed). The instances a tier
needs for a minute's demand are therefore its token rate over θ, fractional (tiers share a
pool; the pool rounds up once). The arrival rate and its variability (``requests_per_s``,
``cv``) do not enter: the fluid model has no sub-minute queueing.

When the calibrated capacity curves of issue #13 land (``planner.sim.capacity``), the body
of ``instances_needed`` becomes one call to them; the signature already carries what they
need (request rate and inter-arrival CV per minute).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from planner.sim.fleet import FleetParams

Array = npt.NDArray[np.float64]


def instances_needed(
    p: FleetParams,
    model: int,
    vm_type: int,
    tier: int,
    tokens_per_s: Array,
    requests_per_s: Array | None = None,
    cv: Array | None = None,
) -> Array:
    """Instances of ``model`` on ``vm_type`` that serve ``tokens_per_s`` (any shape) of
    ``tier`` within its latency target, as a fractional instance load (0 where no demand;
    inf where the type cannot run the model)."""
    del requests_per_s, cv  # the fluid model has no sub-minute queueing (module docstring)
    theta = float(p.theta[model, vm_type, tier])
    rate = np.asarray(tokens_per_s, dtype=float)
    if theta <= 0:
        return np.where(rate > 0, np.inf, 0.0)
    return rate / theta
