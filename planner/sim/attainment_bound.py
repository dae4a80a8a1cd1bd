"""A lower bound on the GPU-hours of any policy that meets the SLA targets *over the window*, on
the replay's own serving model (:mod:`planner.sim.fluid`, :mod:`planner.sim.serving`).

The clairvoyant fleet (:mod:`planner.sim.bounds`) holds every tier at its target in every
minute and is not a bound; the work bound knows nothing of latency and is far too weak. This
bound is the optimum of a relaxation of the replay in which a policy may do everything the
replay lets it do and more: full foresight, no lead or load time, fractional instances, any VM
type (and a virtual type better than all of them), any routing across regions, any number of
pools, NIW anywhere. It is solved exactly through its Lagrangian dual, so it is valid for any
multipliers; the search over them only tightens it.

**What the replay charges and counts.** Minute t, serving region r, model m: the shared
instances n (by VM type), capacity C_k = Σ_g n_g θ[m,g,k] for tier k, utilisation ρ_t (busy
share, NIW included, at most 1). A request of interactive tier k arriving in minute t is on time
with probability ``within`` = Σ_g w_g sla[m,g,k](min(ρ_t, ρ*), c/√n) (w_g: type g's share of
C_k, c: the pool's arrival CV, ρ* = 0.95 the curves' last row below 1) if its queue wait + RTT
is within its TTFT target, read at the replay's quadrature points u_i = (i + ½)/8 of the minute.
GPU-hours are the GPUs of every VM paid for, which are at least Σ n · gpi[m, g]. Attainment is
on-time requests over all requests of the window, per tier.

**The relaxation, step by step** (each step can only raise what a policy attains at a given
cost, or lower its cost):

1. *Virtual VM type*: per model, gpi = min_g gpi[m,g], θ^v_k = max_g θ[m,g,k] and the curve
   table the pointwise maximum of the types' tables (same grid; bilinear interpolation of the max
   table ≥ the max of the interpolations). A pool of real types is replaced by as many virtual
   instances: its utilisation can only fall and each tier's curve only rise.
2. *Utilisation*: a pool that serves tier-k arrivals a_k (tokens) in the minute runs at
   ρ_t ≥ min(1, Σ_k a_k / (60 C_k)): either every tier served at least its arrivals, or a tier
   kept a backlog, which takes the whole free share of the minute (``_serve_interactive``),
   so ρ_t = 1. NIW only adds to ρ_t.
3. *Queue*: if the pool cannot serve all of a tier's work in the minute (capacity over arrivals
   z < 1), a request at u starts within the minute only if u ≤ z/β (β = admitted share) and then
   waits 60·u·(β/z − 1) s at least; a request starting in a later minute waits ≥ 60(1 − u) s.
   So the on-time share is at most q_k(z) = min(1, max_j min(1, z/u_{j−1}, z(1 + δ_k/u_{j−1}))·j/8
   + late_k/8), δ_k = TTFT_k/60 (RTT ≥ 0 dropped), late_k = #{i: 60(1 − u_i) ≤ TTFT_k},
   times the overloaded minute's within share f(ρ*) (1 where the pool has no capacity at all).
4. *CV*: a pool's arrival CV is a request-weighted root mean square of its streams' CVs, so at
   least c_min(t, m), the smallest CV of any interactive stream of model m that minute; its
   instances are at most N, the model's instances that minute over every region and pool.
   So every pool's instance CV is ≥ c̄ = c_min / √max(N, 1), and sla is non-increasing in CV.
5. *Pools*: with c̄ fixed, a pool at utilisation ρ gives each unit of its work (in instances
   busy) the on-time share F_k(x) at x = 1/ρ instances per unit of work, whatever the tier mix,
   so a pool is a set of single-stream pools at the same x (a stream: one source region and
   tier). Splitting a stream over pools (regions) and leaving part unserved is a mixture over x,
   so the stream attains at most R · F̂_k(n / ℓ) with n its instances, ℓ its work (instances
   busy at θ^v), R its requests and F̂_k the **concave envelope** of F_k:

       F_k(0) = late_k/8,  F_k(x) = q_k(x)·f_k(ρ*, c̄) (0 < x < 1),  F_k(x) = f_k(min(1/x, ρ*), c̄)

   F_k is non-decreasing; it is read on a fine grid, each grid point taking the value at the
   next point up (so the step function lies above F_k) and the upper hull of those points is
   taken (so it lies above F̂_k). c̄ is rounded down to a CV grid (sla rises as CV falls).
6. *NIW*: NIW served on instances of its own at utilisation 1 costs less than in a shared pool
   at ρ < 1 and leaves the interactive streams' x unchanged, so it costs at most one virtual
   instance-minute per unit of work; it is counted in N. Its deadline is relaxed to "NIW due
   inside the window is served at some minute of it".

**The relaxed problem**: minimise Σ_{t,m} gpi_m N_{t,m} subject to Σ_{t,m,streams of k}
R F̂_k(n/ℓ) ≥ a_k · (requests of tier k) for each interactive k, Σ_streams n (+ NIW) ≤ N_{t,m},
NIW due done. Its Lagrangian dual, for prices λ_k ≥ 0 of an on-time request and η_m of a unit of
NIW work, is

    L(λ, η) = Σ_{t,m} min_{N, n} [gpi_m N − Σ_k λ_k O_k(n) − η_m y] + Σ_k λ_k a_k N_k + Σ_m η_m W_m

and L(λ, η) ≤ the relaxed optimum ≤ any policy's GPU-minutes (weak duality; no convexity needed).
The inner minimum per (t, m) is over N in bins [N_i, N_{i+1}] (geometric; the first [0, 1] at
c̄ = c_min, the last [N_K, ∞) at c̄ = 0), each bin's CV taken at its upper end (generous), and
its cost at its lower end (gpi · max(Σn, N_i)). For a bin, with V(n) = Σ_k λ_k O_k(n) + η y
concave piecewise linear, for every ν in [0, gpi]

    min_n [gpi·max(Σn, N_i) − V(n)] ≥ (gpi − ν) N_i − max_n [V(n) − ν Σn]

(max(a, b) ≥ θa + (1 − θ)b), and max_n [V(n) − ν Σn] = Σ_segments (slope − ν)⁺ · length is
exact. Taking the best ν of a fixed set keeps it a bound; the best over all ν is the exact bin
minimum.

**Floors** (optional): a policy that keeps ``floor[r, m]`` instances in every region holds
N ≥ Σ_r floor[r, m] every minute, so each bin's cost is taken at max(N_i, that sum). Every
policy of the sweep keeps the availability floors, so that variant bounds them all; without
floors the bound holds for any policy the replay can run.

The multipliers λ are searched by bisection on the sign of the subgradient (attained
− target); every evaluated point is a valid bound and the largest is returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.attainment_envelope import CV_STEP, Tables, envelope_tables
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.serving import ServingModel

Array = npt.NDArray[np.float64]
BIN_RATIO = 1.15  # N bins [N_i, 1.15 N_i]
NU_SHARES = (1.0, 0.97, 0.93, 0.88, 0.8, 0.7, 0.55, 0.4, 0.25, 0.12, 0.04, 0.0)  # ν / gpi per bin


@dataclass(frozen=True)
class AttainmentBound:
    """The bound (GPU-hours), the prices λ that gave it and the evaluations the search took;
    η (the NIW price: a share of each model's GPU price, 1 when NIW work is due, else 0) is
    not reported."""

    gpu_hours: float
    prices: dict[str, float]  # λ per interactive tier (GPU-minutes per on-time request)
    evaluations: int


@dataclass(frozen=True)
class _Problem:
    gpi: Array  # [m]
    req: Array  # [T, s, m, j] requests of each stream
    work: Array  # [T, s, m, j] instances busy at θ^v
    cv_index: npt.NDArray[np.int64]  # [T, m, B] CV grid index per N bin
    n_low: Array  # [B] lower end of each bin
    tables: Tables
    niw_cap: Array  # [m] NIW work a minute could serve at most (instance-minutes)
    niw_due: Array  # [m] NIW work due inside the window (instance-minutes)
    goal: Array  # [j] a_k × requests of tier k
    floor: Array  # [m] instances every minute keeps of the model (all regions)


def _problem(
    p: FleetParams,
    demand: MinuteDemand,
    serving: ServingModel,
    targets: Mapping[str, float],
    floor: Array | None = None,
) -> _Problem:
    tiers = list(p.interactive)
    runs = p.ipv > 0  # [m, g]
    gpi = np.where(runs, p.gpus_per_instance, np.inf).min(axis=1)
    theta_v = np.where(runs[:, :, None], serving.theta, 0.0).max(axis=1)  # [m, k]
    if not np.isfinite(gpi).all() or (theta_v[:, [*tiers, p.deferrable]] <= 0).any():
        raise ValueError("a model no VM type can serve")
    req = demand.requests[..., tiers]
    work = demand.tokens[..., tiers] / (60.0 * theta_v[None, None, :, tiers])
    work = np.where(req > 0, np.maximum(work, 1e-9), 0.0)  # a request always carries work
    cv = np.ones_like(req) if demand.cv is None else np.nan_to_num(demand.cv[..., tiers], nan=1.0)
    cv = np.where(req > 0, cv, np.inf)
    c_min = cv.min(axis=(1, 3))  # [T, m]
    c_min = np.where(np.isfinite(c_min), c_min, 0.0)
    total_work = work.sum(axis=(1, 3))  # [T, m]
    top = max(float(total_work.max()) * 20.0 + 50.0, 2.0)
    k_bins = int(np.ceil(np.log(top) / np.log(BIN_RATIO)))
    edges = BIN_RATIO ** np.arange(k_bins + 1)  # 1 .. ≥ top
    n_low = np.concatenate([[0.0], edges])  # bins [0,1], [1, r], ..., [N_K, inf)
    n_up = np.concatenate([edges, [np.inf]])
    cbar = c_min[:, :, None] / np.sqrt(np.maximum(n_up, 1.0))[None, None, :]
    cbar = np.where(np.isfinite(n_up)[None, None, :], cbar, 0.0)
    tables = envelope_tables(p, serving, float(np.max(c_min, initial=0.0)))
    cv_index = np.clip(np.floor(cbar / CV_STEP + 1e-9), 0, len(tables.cvs) - 1).astype(np.int64)
    k = p.deferrable
    niw_work = demand.tokens[..., k].sum(axis=1) / (60.0 * theta_v[None, :, k])  # [T, m]
    due = np.arange(demand.minutes) + p.deadline_min <= demand.minutes
    goal = np.array(
        [float(targets.get(p.tiers[t], 0.0)) * float(demand.requests[..., t].sum()) for t in tiers]
    )
    return _Problem(
        gpi=gpi,
        req=req,
        work=work,
        cv_index=cv_index,
        n_low=n_low,
        tables=tables,
        niw_cap=niw_work.sum(axis=0),
        niw_due=niw_work[due].sum(axis=0),
        goal=goal,
        floor=np.zeros(len(p.models)) if floor is None else np.asarray(floor, float).sum(axis=0),
    )


def _best_nu(
    pr: _Problem, marg: Array, length: Array, base: Array, eta: Array
) -> tuple[Array, Array]:
    """Per minute, model and N bin [t, m, B]: the largest over ν of NU_SHARES of the bin's
    bound (gpi − ν) N_i − max_n [V(n) − ν Σn], and the ν that gave it."""
    nus = np.array(NU_SHARES)[:, None] * pr.gpi[None, :]  # [v, m]
    best = np.full(marg.shape[:3], -np.inf)
    best_nu = np.zeros(marg.shape[:3])
    for v in range(nus.shape[0]):
        nu = nus[v][None, :, None]  # [1, m, 1]
        gain = (np.maximum(marg - nu[..., None, None, None], 0.0) * length).sum(axis=(3, 4, 5))
        niw = np.maximum(eta - nus[v], 0.0)[None, :, None] * pr.niw_cap[None, :, None]
        low = np.maximum(pr.n_low[None, :], pr.floor[:, None])[None]  # [1, m, B]
        val = (pr.gpi[None, :, None] - nu) * low - (base + gain + niw)
        better = val > best
        best = np.where(better, val, best)
        best_nu = np.where(better, nus[v][None, :, None], best_nu)
    return best, best_nu


def _evaluate(pr: _Problem, lam: Array, niw_share: float, chunk: int = 120) -> tuple[float, Array]:
    """L(λ, η) in GPU-minutes and the relaxed on-time requests per tier of the inner minimum."""
    T, _, M, J = pr.req.shape
    tb = pr.tables
    total = 0.0
    on_time = np.zeros(J)
    eta = niw_share * pr.gpi  # [m]
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = np.where(pr.work > 0, pr.req / pr.work, 0.0)  # requests per instance of work
    for t0 in range(0, T, chunk):
        sl = slice(t0, min(t0 + chunk, T))
        ci = pr.cv_index[sl]  # [t, m, B]
        m_idx = np.arange(M)[None, :, None]
        dx = np.stack([tb.dx[m_idx, j, ci] for j in range(J)], axis=3)  # [t, m, B, J, E]
        sl_ = np.stack([tb.slope[m_idx, j, ci] for j in range(J)], axis=3)
        f0 = np.stack([tb.f0[m_idx, j, ci] for j in range(J)], axis=3)  # [t, m, B, J]
        req = np.moveaxis(pr.req[sl], 1, 3)  # [t, m, J, s]
        work = np.moveaxis(pr.work[sl], 1, 3)
        pis = np.moveaxis(pi[sl], 1, 3)
        # marginal value per instance: λ_j · π_s · slope_e ; length: work_s · dx_e
        marg = (lam[None, None, None, :, None, None] * pis[:, :, None, :, :, None]) * sl_[
            :, :, :, :, None, :
        ]  # [t, m, B, J, s, E]
        length = work[:, :, None, :, :, None] * dx[:, :, :, :, None, :]
        base = (lam[None, None, None, :] * f0 * req.sum(axis=3)[:, :, None, :]).sum(axis=3)
        best, best_nu = _best_nu(pr, marg, length, base, eta)
        phi = best.min(axis=2)  # [t, m]
        total += float(phi.sum())
        # the subgradient: on-time requests at the winning bin and ν
        b = best.argmin(axis=2)  # [t, m]
        tt, mm = np.meshgrid(np.arange(phi.shape[0]), np.arange(M), indexing="ij")
        nu_w = best_nu[tt, mm, b]  # [t, m]
        mw = marg[tt, mm, b]  # [t, m, J, s, E]
        take = mw > nu_w[..., None, None, None]
        ot = f0[tt, mm, b] * req.sum(axis=3) + (
            take * pis[:, :, :, :, None] * sl_[tt, mm, b][:, :, :, None, :] * length[tt, mm, b]
        ).sum(axis=(3, 4))
        on_time += ot.sum(axis=(0, 1))
    total += float((lam * pr.goal).sum()) + float((eta * pr.niw_due).sum())
    return total, on_time


class _Search:
    """Every L(λ, η) evaluated is a bound: the largest seen and what gave it."""

    def __init__(self, pr: _Problem) -> None:
        J = pr.req.shape[3]
        self.pr = pr
        self.best: tuple[float, Array] = (-np.inf, np.zeros(J))  # L and the λ that gave it
        self.evaluations = 0

    def __call__(self, lam: Array, share: float) -> Array:
        """The relaxed on-time requests per tier at (λ, η = ``share`` · gpi)."""
        value, ot = _evaluate(self.pr, lam, share)
        self.evaluations += 1
        if value > self.best[0]:
            self.best = (value, lam.copy())
        return ot

    def bisect(self, lam: Array, j: int, share: float, steps: int) -> float:
        """λ_j by geometric bisection on the sign of attained − goal, the others held."""
        pr = self.pr
        # scale: a request is worth at most the GPU-minutes of serving its whole minute alone
        hi_scale = float((pr.gpi.max() * (pr.work.sum(axis=(1, 3)).max() + 1.0)) * 60.0)
        lo, hi = 0.0, hi_scale
        for _ in range(steps):
            mid = np.sqrt(max(lo, hi_scale * 1e-6) * hi)
            trial = lam.copy()
            trial[j] = mid
            if self(trial, share)[j] >= pr.goal[j]:
                hi = mid
            else:
                lo = mid
        return hi


def attainment_bound(
    p: FleetParams,
    demand: MinuteDemand,
    serving: ServingModel,
    targets: Mapping[str, float],
    floor: Array | None = None,
    rounds: int = 2,
    steps: int = 14,
) -> AttainmentBound:
    """The bound of the module docstring at window attainment ``targets`` (by tier id; the
    interactive tiers' entries are used). ``floor`` [r, m]: instances each region keeps of
    each model whatever the demand (the availability floors every policy of the sweep keeps);
    then N ≥ Σ_r floor[r, m] every minute (a bound on policies that keep the floors; None: on
    every policy). Multipliers by coordinate bisection on the sign of the subgradient; the
    largest L evaluated is returned (every one is a bound)."""
    pr = _problem(p, demand, serving, targets, floor)
    search = _Search(pr)
    lam = np.zeros(pr.req.shape[3])
    share = 1.0 if (pr.niw_due > 0).any() else 0.0
    search(lam, share)  # λ = 0: the floors and NIW alone
    for _ in range(rounds):
        for j in range(len(lam)):
            if pr.goal[j] <= 0:
                continue
            lam[j] = search.bisect(lam, j, share, steps)
            search(lam, share)
    if (pr.niw_due > 0).any():
        for s in (0.0, 0.5):
            search(search.best[1], s)
    value, lam_b = search.best
    return AttainmentBound(
        gpu_hours=max(value, 0.0) / 60.0,
        prices={p.tiers[k]: float(lam_b[j]) for j, k in enumerate(p.interactive)},
        evaluations=search.evaluations,
    )
