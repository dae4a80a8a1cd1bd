"""Latency curves: the per-instance SLA attainment of the iteration-level model as a function
of load and burstiness, measured once and looked up by the fluid replay and the capacity curves.

**What is measured.** For one (model, VM type) instance profile, a grid of independent
instances, one per point (ρ, c): instance i receives its own renewal stream whose gaps have
coefficient of variation c (Gamma with shape 1/c²; evenly spaced for c = 0) at the rate that
makes its utilisation ρ = λ · E[busy_s] (busy seconds at the instance's best prefill and decode
rates, :meth:`InstanceProfile.busy_s`). All points run in one vectorised
:func:`simulate_instances` call (a pinned router sends each stream to its own instance). A
request meets tier k's SLA when TTFT ≤ the tier's TTFT target and its mean time per output
token ≤ the tier's TPOT target (both models of the pool, every tier: under FCFS the tier does
not change how a request is served, only what counts as on time). The first ``WARMUP`` share
of each stream is discarded.

**How it is used.** A pool of n instances fed round-robin by a stream of CV c gives each
instance every n-th arrival; for independent gaps the gap of n arrivals has CV c/√n
(:func:`instance_cv`). So a pool at utilisation ρ with traffic CV c attains
``sla(ρ, c/√n)``. Between grid points the table is interpolated bilinearly; it is made
non-increasing in ρ and in c first (measurement noise is not a speed-up), which is what makes
the capacity curves monotone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.sim.instances import Requests, simulate_instances
from planner.sim.profile import InstanceProfile
from planner.sim.routing import Arrivals, PoolView

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RHO_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
CV_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
WARMUP = 0.1
COLUMNS = ["model", "vm_type", "tier", "rho", "cv", "sla", "requests", "busy_s"]


@dataclass(frozen=True)
class TierTarget:
    tier: str
    ttft_s: float  # inf: no TTFT target
    tpot_s: float  # inf: no TPOT target
    deadline_s: float = float("inf")  # end-to-end deadline (deferrable tiers)


def on_time(
    ttft_s: Array, tpot_s: Array, e2e_s: Array, target: TierTarget
) -> npt.NDArray[np.bool_]:
    """Which requests meet ``target`` (never-served ones: inf latencies, never on time)."""
    return (ttft_s <= target.ttft_s) & (tpot_s <= target.tpot_s) & (e2e_s <= target.deadline_s)


@dataclass
class _Pinned:
    """Routes each request to the instance named by its tenant code (one stream per point)."""

    epoch_s: float = float("inf")

    def route(self, arrivals: Arrivals, view: PoolView) -> IntArray:
        return arrivals.tenant


def renewal_gaps(rng: np.random.Generator, cv: float, mean: float, n: int) -> Array:
    """``n`` gaps of mean ``mean`` and coefficient of variation ``cv`` (Gamma; even for 0)."""
    if cv <= 0:
        return np.full(n, mean)
    shape = 1.0 / cv**2
    return rng.gamma(shape, mean / shape, n)


def measure_curve(
    profile: InstanceProfile,
    targets: list[TierTarget],
    prompt: IntArray,
    output: IntArray,
    requests_per_point: int = 2000,
    rhos: tuple[float, ...] = RHO_GRID,
    cvs: tuple[float, ...] = CV_GRID,
    seed: int = 0,
) -> pd.DataFrame:
    """SLA attainment per (tier, ρ, c) of one instance profile (module docstring); request
    sizes are drawn from the sample ``prompt``/``output`` (pairs kept together). ``busy_s``:
    the sample's mean busy seconds per request (what turns a request rate into ρ)."""
    rng = np.random.default_rng(seed)
    points = [(r, c) for r in rhos for c in cvs]
    n = requests_per_point
    pick = rng.integers(0, len(prompt), (len(points), n))
    p_tok, o_tok = prompt[pick], output[pick]
    mean_busy = float(profile.busy_s(prompt, output).mean())
    arrival = np.empty((len(points), n))
    for i, (rho, cv) in enumerate(points):
        gaps = renewal_gaps(rng, cv, mean_busy / rho, n)
        arrival[i] = np.cumsum(gaps) - gaps[0] * rng.random()
    tenant = np.repeat(np.arange(len(points)), n)
    req = Requests(arrival.ravel(), p_tok.ravel(), o_tok.ravel(), tenant=tenant)
    served = simulate_instances(req, profile, len(points), _Pinned())
    keep = np.tile(np.arange(n) >= int(WARMUP * n), len(points))
    rows = []
    for t in targets:
        ok = on_time(served.ttft_s, served.tpot_s, served.e2e_s, t)
        hits = np.bincount(tenant[keep], weights=ok[keep], minlength=len(points))
        share = hits / np.bincount(tenant[keep], minlength=len(points))
        for i, (rho, cv) in enumerate(points):
            rows.append(
                (t.tier, rho, cv, float(share[i]), int(keep.sum() // len(points)), mean_busy)
            )
    return pd.DataFrame(rows, columns=["tier", "rho", "cv", "sla", "requests", "busy_s"])


def instance_cv(cv: npt.ArrayLike, instances: npt.ArrayLike) -> Array:
    """CV of the gaps one of ``instances`` round-robin instances sees: c / √n."""
    n = np.maximum(np.asarray(instances, float), 1.0)
    return np.asarray(np.asarray(cv, float) / np.sqrt(n), dtype=float)


@dataclass(frozen=True)
class Curve:
    """One (model, VM type, tier) table: sla[i, j] at rhos[i], cvs[j], monotone."""

    rhos: Array
    cvs: Array
    sla: Array

    def __call__(self, rho: npt.ArrayLike, cv: npt.ArrayLike) -> Array:
        """Bilinear interpolation, clamped to the grid (ρ above the last point takes the last
        row: overload beyond it is the fluid minute queue's business)."""
        r = np.clip(np.asarray(rho, float), self.rhos[0], self.rhos[-1])
        c = np.clip(np.asarray(cv, float), self.cvs[0], self.cvs[-1])
        i = np.clip(np.searchsorted(self.rhos, r, side="right") - 1, 0, len(self.rhos) - 2)
        j = np.clip(np.searchsorted(self.cvs, c, side="right") - 1, 0, len(self.cvs) - 2)
        fr = (r - self.rhos[i]) / (self.rhos[i + 1] - self.rhos[i])
        fc = (c - self.cvs[j]) / (self.cvs[j + 1] - self.cvs[j])
        s = self.sla
        low = s[i, j] * (1 - fc) + s[i, j + 1] * fc
        high = s[i + 1, j] * (1 - fc) + s[i + 1, j + 1] * fc
        return np.asarray(low * (1 - fr) + high * fr, dtype=float)


def monotone(sla: Array) -> Array:
    """Make a [ρ, c] table non-increasing along both axes (running minimum)."""
    out = np.minimum.accumulate(sla, axis=0)
    return np.asarray(np.minimum.accumulate(out, axis=1), dtype=float)


@dataclass(frozen=True)
class LatencyCurves:
    """The measured curves of every (model, VM type, tier), keyed by ids."""

    table: pd.DataFrame  # COLUMNS
    curves: dict[tuple[str, str, str], Curve]
    busy_s: dict[tuple[str, str], float]  # mean busy seconds per request of the measured mix

    @classmethod
    def from_frame(cls, table: pd.DataFrame) -> LatencyCurves:
        missing = sorted(set(COLUMNS) - set(table.columns))
        if missing:
            raise ValueError(f"latency curve table: missing columns {missing}")
        curves = {}
        for key, g in table.groupby(["model", "vm_type", "tier"]):
            grid = g.pivot_table(index="rho", columns="cv", values="sla")
            if grid.isna().any().any():
                raise ValueError(f"latency curve {key}: the (rho, cv) grid has holes")
            curves[(str(key[0]), str(key[1]), str(key[2]))] = Curve(
                grid.index.to_numpy(float),
                grid.columns.to_numpy(float),
                monotone(grid.to_numpy(float)),
            )
        first = table.drop_duplicates(["model", "vm_type"])
        busy_s = {
            (str(m), str(g)): float(b)
            for m, g, b in zip(first["model"], first["vm_type"], first["busy_s"], strict=True)
        }
        return cls(table, curves, busy_s)

    @classmethod
    def load(cls, path: Path | str) -> LatencyCurves:
        return cls.from_frame(pd.read_csv(path))

    def curve(self, model: str, vm_type: str, tier: str) -> Curve:
        try:
            return self.curves[(model, vm_type, tier)]
        except KeyError:
            raise KeyError(f"no latency curve for {model} on {vm_type}, tier {tier}") from None
