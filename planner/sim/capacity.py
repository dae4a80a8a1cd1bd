"""Capacity curves: how many instances a tier needs, as a function of arrival rate and burstiness.

The stable entry point for the planner and the evaluation is :func:`instances_needed`. It reads
the latency curves (:mod:`planner.sim.latency`, measured with the iteration-level instance model
and stored in ``configs/capacity/latency_curves.csv``) and returns the smallest pool that meets
the tier's attainment target:

    n*(λ, c) = min { n ≥ 1 : sla_k(ρ = λ · b / (n κ),  c / √n) ≥ a_k }

with λ the request rate (requests/s), b the mean busy seconds of one request on one instance at
its best rates (the measured mix's, or the caller's own), κ the share of those rates an instance
sustains on the mix (:func:`planner.sim.latency.saturation`), c the coefficient of variation of
the inter-arrival times at the pool (ServeGen publishes one per window; measured from request
rows where there are rows; 1 for Poisson traffic) and a_k the attainment target (0.95: the
tiers' targets are p95 latencies). Because each sla_k is non-increasing in ρ and c, n* is non-
decreasing in λ and c. The table ``configs/capacity/capacity_curves.csv`` holds n* on a grid of
(λ, c) per (model, VM type, tier), for readers that want data rather than code; a test re-
derives it.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from planner.sim.latency import LatencyCurves, instance_cv

ROOT = Path(__file__).resolve().parents[2]
LATENCY_CURVES = ROOT / "configs" / "capacity" / "latency_curves.csv"
CAPACITY_CURVES = ROOT / "configs" / "capacity" / "capacity_curves.csv"
DEFAULT_ATTAINMENT = 0.95
MAX_INSTANCES = 100_000
RATE_GRID = tuple(float(x) for x in np.geomspace(0.01, 100.0, 17))  # requests/s
CV_GRID = (0.5, 1.0, 2.0, 4.0)
CAPACITY_COLUMNS = ["model", "vm_type", "tier", "rate_rps", "cv", "attainment", "instances"]


@cache
def load_latency_curves(path: Path | str = LATENCY_CURVES) -> LatencyCurves:
    """The stored latency curves (cached per path)."""
    return LatencyCurves.load(path)


def instances_needed(
    model: str,
    vm_type: str,
    tier: str,
    rate_rps: float,
    cv: float = 1.0,
    *,
    attainment: float = DEFAULT_ATTAINMENT,
    busy_s_per_request: float | None = None,
    curves: LatencyCurves | None = None,
) -> int:
    """Smallest number of round-robin-fed instances of ``model`` on ``vm_type`` for which tier
    ``tier`` meets ``attainment`` of its requests on time, at ``rate_rps`` requests/s whose
    inter-arrival CV is ``cv``.

    ``busy_s_per_request``: mean seconds one request occupies an instance at its best rates
    (:meth:`planner.sim.profile.InstanceProfile.busy_s` of the caller's token mix); default:
    the mix the curves were measured with. 0 for ``rate_rps`` = 0. Raises ``KeyError`` for a
    (model, VM type, tier) without a curve and ``ValueError`` when no pool up to
    ``MAX_INSTANCES`` meets the target (e.g. a TPOT target below what batch 1 achieves)."""
    if rate_rps < 0 or cv < 0:
        raise ValueError(f"rate_rps and cv must be ≥ 0 (got {rate_rps}, {cv})")
    if rate_rps == 0:
        return 0
    lc = curves or load_latency_curves()
    curve = lc.curve(model, vm_type, tier)
    busy = busy_s_per_request if busy_s_per_request is not None else lc.busy_s[(model, vm_type)]
    load = rate_rps * busy / lc.capacity[(model, vm_type)]  # instances kept busy

    def meets(n: int) -> bool:  # non-decreasing in n: both ρ and c/√n fall as n grows
        return bool(curve(load / n, instance_cv(cv, n)) >= attainment)

    lo = max(1, math.ceil(load / float(curve.rhos[-1]) - 1e-9))
    hi = lo
    while not meets(hi):
        if hi >= MAX_INSTANCES:
            break
        lo, hi = hi + 1, min(2 * hi, MAX_INSTANCES)
    else:
        while lo < hi:  # smallest n in [lo, hi] that meets the target
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if meets(mid) else (mid + 1, hi)
        return hi
    raise ValueError(
        f"{model} on {vm_type}, tier {tier}: no pool up to {MAX_INSTANCES} instances meets "
        f"{attainment:.0%} at {rate_rps} requests/s (cv {cv})"
    )


def capacity_table(
    curves: LatencyCurves,
    rates: tuple[float, ...] = RATE_GRID,
    cvs: tuple[float, ...] = CV_GRID,
    attainment: float = DEFAULT_ATTAINMENT,
) -> pd.DataFrame:
    """n*(λ, c) per (model, VM type, tier) on a grid (``CAPACITY_COLUMNS``); -1 where no pool
    meets the target."""
    rows = []
    for model, vm, tier in sorted(curves.curves):
        for c in cvs:
            for rate in rates:
                try:
                    n = instances_needed(
                        model, vm, tier, rate, c, attainment=attainment, curves=curves
                    )
                except ValueError:
                    n = -1
                rows.append((model, vm, tier, rate, c, attainment, n))
    return pd.DataFrame(rows, columns=CAPACITY_COLUMNS)
