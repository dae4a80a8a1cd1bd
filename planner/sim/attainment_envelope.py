"""The on-time share per unit of work F_k and its concave envelope F̂_k: steps 1, 3 and 5 of
the relaxation in :mod:`planner.sim.attainment_bound` (the virtual VM type's curve, the queue's
on-time share in an overloaded minute, and the upper hull read on a fine grid), tabulated per
model, interactive tier and CV grid point for the bound's dual."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.fleet import FleetParams
from planner.sim.latency import Curve
from planner.sim.serving import ServingModel

Array = npt.NDArray[np.float64]
QUAD = 8  # the replay's quadrature points per minute (planner.sim.fluid.QUADRATURE)
CV_STEP = 0.05  # c̄ rounded down to this grid
_RHO_STEP = 0.0025
_OVERLOAD_POINTS = 200
TANGENTS = 24  # segments kept of each envelope (_tangents)


def virtual_curve(curves: list[Curve]) -> Curve:
    """The pointwise maximum of tables on one grid (:mod:`planner.sim.attainment_bound`, step 1)."""
    first = curves[0]
    for c in curves[1:]:
        if not (np.array_equal(c.rhos, first.rhos) and np.array_equal(c.cvs, first.cvs)):
            raise ValueError("latency curves on different grids: no virtual type")
    return Curve(first.rhos, first.cvs, np.max([c.sla for c in curves], axis=0))


def _late_share(ttft_s: float) -> float:
    """late_k / 8: the quadrature points whose requests are on time starting next minute."""
    u = (np.arange(QUAD) + 0.5) / QUAD
    return float((60.0 * (1.0 - u) <= ttft_s + 1e-12).sum()) / QUAD


def queue_share(z: Array, ttft_s: float) -> Array:
    """q_k(z) of :mod:`planner.sim.attainment_bound` (step 3): the most of a minute's requests
    that can start within their TTFT when capacity covers a share z < 1 of the arrivals."""
    u = (np.arange(QUAD) + 0.5) / QUAD
    delta = ttft_s / 60.0
    z = np.asarray(z, float)[..., None]
    j = np.arange(1, QUAD + 1, dtype=float)
    beta = np.minimum(np.minimum(1.0, z / u), z * (1.0 + delta / u))
    early = (beta * j / QUAD).max(axis=-1)
    return np.asarray(np.minimum(1.0, early + _late_share(ttft_s)), dtype=float)


def _x_grid(rho_star: float, rho_min: float) -> Array:
    over = np.arange(1, _OVERLOAD_POINTS) / _OVERLOAD_POINTS
    rho_min = max(rho_min, 0.01)  # below it F_k is taken at its supremum (``envelope``)
    rhos = np.arange(1.0, rho_min - 1e-12, -_RHO_STEP)
    rhos = np.unique(np.concatenate([rhos, [rho_star, rho_min]]))[::-1]
    return np.concatenate([[0.0], over, 1.0 / rhos])


def on_time_per_work(curve: Curve, ttft_s: float, cv: float, x: Array) -> Array:
    """F_k(x) of :mod:`planner.sim.attainment_bound` (step 5) at instance CV ``cv``."""
    below = curve.rhos[curve.rhos < 1.0]
    rho_star = float(below[-1]) if len(below) else float(curve.rhos[0])
    f_star = float(curve(rho_star, cv))
    out = np.empty_like(x)
    zero, over, under = x <= 0, (x > 0) & (x < 1), x >= 1
    out[zero] = _late_share(ttft_s)
    out[over] = queue_share(x[over], ttft_s) * f_star
    rho = np.minimum(1.0 / np.maximum(x[under], 1e-12), rho_star)
    out[under] = curve(rho, cv)
    return out


def envelope(curve: Curve, ttft_s: float, cv: float) -> tuple[Array, Array, float]:
    """The upper hull over F_k on the grid, each point at the next point's value (a concave
    function ≥ the concave envelope of F_k): its segments' lengths in x and slopes, and its
    value at 0. Flat after the last point (F_k is constant for x ≥ 1/ρ_min)."""
    x = _x_grid(float(curve.rhos[curve.rhos < 1.0][-1]), float(curve.rhos[0]))
    f = on_time_per_work(curve, ttft_s, cv, x)
    top = float(curve(curve.rhos[0], cv))  # sup of F_k (x → ∞, or ρ at the grid's first row)
    y = np.concatenate([f[1:], [max(f[-1], top)]])
    y[0] = max(y[0], f[0])
    hull: list[int] = []
    for i in range(len(x)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (y[b] - y[a]) * (x[i] - x[a]) <= (y[i] - y[a]) * (x[b] - x[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    hx, hy = x[hull], y[hull]
    slope = np.diff(hy) / np.diff(hx)
    keep = np.flatnonzero(slope > 0)
    return _tangents(hx[keep], hy[keep], slope[keep], float(hy[-1]), float(hy[0]))


def _tangents(
    x0: Array, y0: Array, slope: Array, top: float, f0: float, pieces: int = TANGENTS
) -> tuple[Array, Array, float]:
    """A concave function with at most ``pieces`` + 1 pieces lying above the concave piecewise
    linear one whose positive-slope segments start at (``x0``, ``y0``) with ``slope`` and which
    is flat at ``top`` after them: the minimum of a subset of its segments' lines (each ≥ a
    concave function everywhere) and the flat line. Returns segment lengths, slopes, value at 0."""
    if len(slope) == 0:
        return np.zeros(0), np.zeros(0), f0
    pick = np.unique(np.round(np.linspace(0, len(slope) - 1, min(pieces, len(slope)))).astype(int))
    xs, ys, ss = x0[pick], y0[pick], slope[pick]
    strict = np.concatenate([[True], ss[1:] < ss[:-1] * (1 - 1e-9)])  # parallel: one line
    xs, ys, ss = xs[strict], ys[strict], ss[strict]
    icept = ys - ss * xs  # line i: icept_i + ss_i x
    start = icept[0]  # x0[0] = 0: the first line's value at 0 is the function's
    cuts = (icept[1:] - icept[:-1]) / (ss[:-1] - ss[1:])  # consecutive lines meet here
    end = (top - icept[-1]) / ss[-1]  # the last line meets the flat top
    knots = np.concatenate([[0.0], cuts, [end]])
    return np.diff(knots), ss, float(start)


@dataclass(frozen=True)
class Tables:
    """Per model m, tier position j (of the interactive tiers) and CV grid index: the envelope's
    segments padded to one length (slope 0 beyond each's own)."""

    dx: Array  # [m, j, c, E]
    slope: Array  # [m, j, c, E]
    f0: Array  # [m, j, c]
    cvs: Array  # [c]


def envelope_tables(p: FleetParams, serving: ServingModel, cv_max: float) -> Tables:
    """The envelope of each model's virtual type per interactive tier, at each CV of the grid
    from 0 to ``cv_max``."""
    tiers = list(p.interactive)
    cvs = np.arange(0.0, cv_max + CV_STEP, CV_STEP)
    rows: dict[tuple[int, int, int], tuple[Array, Array, float]] = {}
    for m in range(len(p.models)):
        for j, k in enumerate(tiers):
            have = [
                serving.curves[(m, g, k)]
                for g in range(len(p.vm_types))
                if p.ipv[m, g] > 0 and (m, g, k) in serving.curves
            ]
            if not have:
                continue
            curve = virtual_curve(have)
            for c, cv in enumerate(cvs):
                rows[(m, j, c)] = envelope(curve, float(p.ttft_s[k]), float(cv))
    width = max(len(v[0]) for v in rows.values())
    shape = (len(p.models), len(tiers), len(cvs))
    dx, slope, f0 = np.zeros((*shape, width)), np.zeros((*shape, width)), np.zeros(shape)
    for (m, j, c), (d, s, v) in rows.items():
        dx[m, j, c, : len(d)], slope[m, j, c, : len(s)], f0[m, j, c] = d, s, v
    return Tables(dx, slope, f0, cvs)
