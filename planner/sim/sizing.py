"""How many instances a pool needs to meet its tiers' latency targets, on the calibrated serving
model: the one seam between the serving model (:mod:`planner.sim.serving`, built from the
curves :mod:`planner.sim.capacity` loads) and its readers that size fleets (the clairvoyant
fleet of :mod:`planner.sim.bounds`, the sweep's choice of VM type).

It is the replay's own rule read backwards. A pool of n instances of model m on VM type g that
serves interactive token rates x_k (tokens/s) keeps L = Σ_k x_k / θ[m,g,k] instances busy (θ:
what an instance sustains on the tier's mix, ``ServingModel.theta``), runs at ρ = L / n plus
whatever NIW it carries, and its instances see the pool's inter-arrival CV c over √n
(:func:`planner.sim.latency.instance_cv`). The replay gives tier k the on-time share
sla_k(ρ, c/√n) of that minute's requests, so the fewest instances for attainment a_k are

    n*(L, c) = min { n ≥ L : sla_k(L / n, c / √n) ≥ a'_k for every interactive k with demand }

with a'_k = min(a_k, the curve's ceiling): where a type's curve never reaches a_k (its value
at the grid's lowest ρ and CV is below; e.g. Llama-2-70B on A100 under IW-F's 60 ms TPOT
without chunked prefill) no pool of that type meets the target, the pool is sized as well as
the type gets, and :func:`reaches` says so. Each sla_k is non-increasing in ρ and c (the curves
are made monotone), so n* is non-decreasing in L and c and a bisection finds it.

The NIW a pool of n can carry without costing the interactive tiers their target is
n · ρ* − L instances' worth of work, ρ*(n, c) = max { ρ ≤ 1 : sla_k(ρ, c/√n) ≥ a'_k ∀k }
(:func:`niw_headroom`): NIW shares the batch, so it raises ρ like any other work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from planner.sim.latency import Curve, instance_cv
from planner.sim.serving import ServingModel

Array = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
DEFAULT_ATTAINMENT = 0.99  # the sweep's SLA targets for the interactive tiers
MAX_INSTANCES = 100_000
_BISECT = 30


def ceiling(curve: Curve) -> float:
    """The best on-time share the curve reaches (lowest ρ, CV 0: it is non-increasing)."""
    return float(curve(curve.rhos[0], 0.0))


def _goals(
    serving: ServingModel, m: int, g: int, tiers: Sequence[int], attainment: Mapping[int, float]
) -> list[tuple[Curve, float]]:
    out = []
    for k in tiers:
        curve = serving.curves.get((m, g, k))
        if curve is None:
            raise KeyError(f"no latency curve for model {m}, VM type {g}, tier {k}")
        out.append((curve, min(float(attainment[k]), ceiling(curve))))
    return out


def reaches(
    serving: ServingModel, m: int, g: int, tiers: Sequence[int], attainment: Mapping[int, float]
) -> bool:
    """Whether some pool of type g meets every tier's attainment (module docstring)."""
    return all(
        (m, g, k) in serving.curves and ceiling(serving.curves[(m, g, k)]) >= attainment[k] - 1e-9
        for k in tiers
    )


def _meets(
    goals: Sequence[tuple[Curve, float]], active: BoolArray, rho: Array, cv: Array
) -> BoolArray:
    """[T]: every active tier (``active`` [k, T]) on target at ``rho``, ``cv`` (per instance)."""
    ok = rho <= 1.0 + 1e-9
    for (curve, goal), live in zip(goals, active, strict=True):
        ok = ok & (~live | (curve(rho, cv) >= goal - 1e-9))
    return np.asarray(ok)


def _smallest(meets: Callable[[Array], BoolArray], lo: Array) -> Array:
    """Per element, the smallest integer n ≥ ``lo`` with ``meets(n)`` (non-decreasing in n);
    ``MAX_INSTANCES`` where none up to it does."""
    hi = lo.copy()
    ok = meets(hi)
    while not ok.all():  # doubling: [lo, hi] brackets the answer where ok
        lo = np.where(ok, lo, hi + 1)
        hi = np.where(ok, hi, np.minimum(2 * hi, MAX_INSTANCES))
        ok = ok | meets(hi) | (hi >= MAX_INSTANCES)
    while (lo < hi).any():
        mid = (lo + hi) // 2
        mid_ok = meets(mid)
        hi = np.where(mid_ok, mid, hi)
        lo = np.where(mid_ok, lo, np.minimum(mid + 1, hi))
    return hi


def pool_instances(
    serving: ServingModel,
    m: int,
    g: int,
    tokens_per_s: Array,
    pool_cv: Array,
    tiers: Sequence[int],
    attainment: Mapping[int, float],
) -> Array:
    """n* [T] of the module docstring for one pool of model ``m`` on VM type ``g``:
    ``tokens_per_s`` [T, len(tiers)] the interactive tiers' token rates, ``pool_cv`` [T] the CV
    of the pool's arrivals; 0 where there is no demand."""
    x = np.asarray(tokens_per_s, dtype=float)
    load = (x / serving.theta[m, g, list(tiers)][None, :]).sum(axis=1)  # instances busy
    active = (x > 0).T
    goals = _goals(serving, m, g, tiers, attainment)
    busy = load > 0

    def meets(n: Array) -> BoolArray:
        return _meets(goals, active, load / n, instance_cv(pool_cv, n))

    lo = np.maximum(np.ceil(load - 1e-9), 1.0)
    n = _smallest(meets, lo)
    return np.where(busy, n, 0.0)


def niw_headroom(
    serving: ServingModel,
    m: int,
    g: int,
    instances: Array,
    load: Array,
    pool_cv: Array,
    tiers: Sequence[int],
    attainment: Mapping[int, float],
    active: BoolArray | None = None,
) -> Array:
    """[T] instances' worth of NIW work a pool of ``instances`` [T] of (m, g) busy with ``load``
    [T] interactive instances can add while its tiers stay on target (module docstring);
    ``active`` [len(tiers), T]: which tiers have demand (default: all)."""
    n = np.maximum(np.asarray(instances, float), 1.0)
    c = instance_cv(pool_cv, n)
    goals = _goals(serving, m, g, tiers, attainment)
    live = np.ones((len(tiers), len(n)), dtype=bool) if active is None else active
    lo, hi = np.minimum(load / n, 1.0), np.ones_like(n)
    top = _meets(goals, live, hi, c)
    for _ in range(_BISECT):  # ρ* in [lo, hi]: the largest ρ still on target
        mid = 0.5 * (lo + hi)
        ok = _meets(goals, live, mid, c)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    rho = np.where(top, 1.0, lo)
    return np.where(np.asarray(instances) > 0, np.maximum(n * rho - load, 0.0), 0.0)
