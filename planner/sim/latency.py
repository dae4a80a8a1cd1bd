"""Latency curves: the per-instance SLA attainment of the iteration-level model as a function
of load and burstiness, measured once and looked up by the fluid replay and the capacity curves.

**What is measured.** For one (model, VM type) instance profile, a grid of independent
instances, one per point (ρ, c): instance i receives its own renewal stream whose gaps have
coefficient of variation c (Gamma with shape 1/c²; evenly spaced for c = 0) at the rate that
makes its utilisation ρ = λ · E[busy_s] / κ. ``busy_s`` are seconds at the instance's best
prefill and decode rates (:meth:`InstanceProfile.busy_s`); κ is what an instance really sustains
of them on the request mix (:func:`saturation`: prefill chunks slow the decodes they share
an iteration with, long contexts decode slower, the KV cache caps the batch), so ρ = 1 is the
instance's real capacity. All points run
in one :func:`simulate_instances` call (a pinned router sends each stream to its own
instance). A request meets tier k's SLA when TTFT ≤ the tier's TTFT target and its mean time per
output token ≤ the tier's TPOT target (all tiers share the pool: under FCFS the tier
does not change how a request is served, only what counts as on time). The first ``WARMUP``
share of each stream is discarded.

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

from planner.config.models import FleetConfig
from planner.sim.instances import Requests, simulate_instances
from planner.sim.profile import InstanceProfile
from planner.sim.routing import Arrivals, PoolView

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

RHO_GRID = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
CV_GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
WARMUP = 0.1
COLUMNS = [
    "model",
    "vm_type",
    "tier",
    "rho",
    "cv",
    "sla",
    "requests",
    "busy_s",
    "capacity",
    "prefill_tokens_per_s",
    "decode_tokens_per_s",
]


@dataclass(frozen=True)
class TierTarget:
    tier: str
    ttft_s: float  # inf: no TTFT target
    tpot_s: float  # inf: no TPOT target
    deadline_s: float = float("inf")  # end-to-end deadline (deferrable tiers)


def tier_targets(cfg: FleetConfig) -> list[TierTarget]:
    """Each tier's targets from the config: TTFT (p95 target), TPOT, and the deferrable tier's
    deadline (inf where a tier has none)."""
    out = []
    for k in cfg.tier_ids:
        t = cfg.tier(k)
        out.append(
            TierTarget(
                k,
                t.ttft_p95_s or float("inf"),
                (t.tpot_ms / 1000.0) if t.tpot_ms else float("inf"),
                (t.deadline_h * 3600.0) if t.deadline_h else float("inf"),
            )
        )
    return out


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
    tier: IntArray | None = None,
) -> pd.DataFrame:
    """SLA attainment per (tier, ρ, c) of one instance profile (module docstring), sizes
    drawn from the sample ``prompt``/``output`` (pairs kept together; column ``busy_s``: its
    mean busy seconds per request). ``tier``: the sample's tier (index into ``targets``) per
    request, when the tiers' size mixes differ: tier k's attainment then counts the requests
    drawn from tier k only (the pool still carries the whole mix)."""
    rng = np.random.default_rng(seed)
    points = [(r, c) for r in rhos for c in cvs]
    n, busy = requests_per_point, profile.busy_s(prompt, output)
    # common random numbers: every point replays the same request sizes, and the points of
    # one CV the same gaps scaled, so the grid's differences are not sampling noise; the
    # sizes are a stratified sample, so the heavy tail of the mix is there in proportion
    pick = np.broadcast_to(stratified(rng, busy, n), (len(points), n))
    p_tok, o_tok = prompt[pick], output[pick]
    label = tier[pick].ravel() if tier is not None else None
    mean_busy = float(busy.mean())
    kappa = saturation(profile, prompt, output, seed=seed)
    arrival = _grid_arrivals(points, cvs, n, seed, mean_busy, kappa)
    tenant = np.repeat(np.arange(len(points)), n)
    req = Requests(arrival.ravel(), p_tok.ravel(), o_tok.ravel(), tenant=tenant)
    served = simulate_instances(req, profile, len(points), _Pinned())
    keep = np.tile(np.arange(n) >= int(WARMUP * n), len(points))
    rows = []
    for k, t in enumerate(targets):
        ok = on_time(served.ttft_s, served.tpot_s, served.e2e_s, t)
        mine = keep if label is None else keep & (label == k)
        hits = np.bincount(tenant[mine], weights=ok[mine], minlength=len(points))
        share = hits / np.maximum(np.bincount(tenant[mine], minlength=len(points)), 1)
        count = int(mine.sum() // len(points))
        rows += [
            (t.tier, r, c, float(share[i]), count, mean_busy, kappa)
            for i, (r, c) in enumerate(points)
        ]
    return pd.DataFrame(
        rows, columns=["tier", "rho", "cv", "sla", "requests", "busy_s", "capacity"]
    ).assign(
        prefill_tokens_per_s=profile.prefill_tokens_per_s,
        decode_tokens_per_s=profile.decode_tokens_per_s,
    )


def _grid_arrivals(
    points: list[tuple[float, float]], cvs: tuple[float, ...], n: int, seed: int,
    mean_busy: float, kappa: float,
) -> Array:  # fmt: skip
    """[points, n] arrival times of the grid's streams: per CV the same renewal gaps (common
    random numbers), scaled to each point's ρ (``mean_busy`` busy seconds per request, κ)."""
    arrival = np.empty((len(points), n))
    for i, (rho, cv) in enumerate(points):
        gaps = renewal_gaps(np.random.default_rng([seed, cvs.index(cv)]), cv, 1.0, n)
        arrival[i] = (np.cumsum(gaps) - gaps[0] * 0.5) * mean_busy / (rho * kappa)
    return arrival


def saturation(
    profile: InstanceProfile,
    prompt: IntArray,
    output: IntArray,
    requests: int = 5000,
    instances: int = 8,
    seed: int = 0,
) -> float:
    """κ: busy seconds (at best rates) one instance serves per second when it never runs out
    of work, on requests drawn from the sample: ``instances`` instances each given
    ``requests`` requests at time 0 (:func:`saturated_work`): κ = Σ work done / Σ time."""
    rng = np.random.default_rng([seed, 1])
    pick = rng.integers(0, len(prompt), instances * requests).reshape(instances, requests)
    work, until = saturated_work(profile, prompt, output, pick)
    return float(work.sum() / until.sum())


def saturated_work(
    profile: InstanceProfile, prompt: IntArray, output: IntArray, pick: IntArray
) -> tuple[Array, Array]:
    """Per instance i, the busy seconds done and the time taken when it is given requests
    ``pick[i]`` of the sample at time 0, measured until its last admission (after it the
    batch only drains, which would understate κ); a request still decoding then counts its
    prefill and the share of its output tokens produced by then (its tokens come at an even
    pace between first and last). All instances in one :func:`simulate_instances` call."""
    instances, requests = pick.shape
    req = Requests(
        np.zeros(pick.size),
        prompt[pick.ravel()],
        output[pick.ravel()],
        tenant=np.repeat(np.arange(instances), requests),
    )
    served = simulate_instances(req, profile, instances, _Pinned())
    started = np.isfinite(served.first_token_s)
    until = np.zeros(instances)
    np.maximum.at(until, req.tenant[started], served.first_token_s[started])
    horizon = until[req.tenant]
    first, finish = served.first_token_s, served.finish_s
    with np.errstate(invalid="ignore", divide="ignore"):
        progress = np.where(finish > first, (horizon - first) / (finish - first), 1.0)
    produced = np.where(
        finish <= horizon,
        req.output,
        np.where(first <= horizon, 1 + np.clip(progress, 0, 1) * (req.output - 1), 0.0),
    )
    work = profile.busy_s(np.where(first <= horizon, req.prompt, 0), produced)
    done = np.bincount(req.tenant, weights=work, minlength=instances)
    return np.asarray(done, dtype=float), until


def stratified(rng: np.random.Generator, weight: Array, n: int) -> IntArray:
    """``n`` positions of a sample, one from each of n equal-count strata of ``weight`` (in
    random order): the sample's distribution of ``weight`` is kept at every size, tails
    included, which a plain draw of a heavy-tailed mix is not."""
    order = np.argsort(weight, kind="stable")
    pos = ((np.arange(n) + rng.random(n)) * len(weight) / n).astype(np.int64)
    return np.asarray(rng.permutation(order[np.minimum(pos, len(weight) - 1)]), dtype=np.int64)


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


def minute_attainment(curve: Curve, rho: npt.ArrayLike, instance_cv: npt.ArrayLike) -> Array:
    """The calibrated within-minute formula, the one both fluid replays use (the pool replay,
    :func:`planner.sim.pool.pool_sla`, and the fleet replay through
    :meth:`planner.sim.serving.ServingModel.on_time`): the share of a minute's requests on
    time at utilisation ρ with per-instance inter-arrival CV c is ``sla(min(ρ, ρ*), c)``.

    ρ* is the curve's largest grid utilisation below 1. The rows at ρ ≥ 1 are measured on
    streams that never drain: their attainment is that of a queue grown over the whole
    measurement, a wait the fluid minute queue charges itself (it holds the work a minute
    cannot serve). Reading those rows too would charge an overloaded minute twice."""
    below = curve.rhos[curve.rhos < 1.0]
    cap = float(below[-1]) if len(below) else float(curve.rhos[0])
    return curve(np.minimum(np.asarray(rho, float), cap), instance_cv)


def _decreasing(y: Array) -> Array:
    """Least-squares non-increasing fit of ``y`` (pool adjacent violators)."""
    values: list[float] = []
    sizes: list[int] = []
    for v in y:
        values.append(float(v))
        sizes.append(1)
        while len(values) > 1 and values[-2] < values[-1]:
            w = sizes[-2] + sizes[-1]
            values[-2] = (values[-2] * sizes[-2] + values[-1] * sizes[-1]) / w
            sizes[-2] = w
            values.pop()
            sizes.pop()
    return np.repeat(values, sizes)


def monotone(sla: Array, sweeps: int = 4) -> Array:
    """Make a [ρ, c] table non-increasing along both axes: isotonic fits along ρ and c in
    turn (unbiased, unlike a running minimum of noisy values), then a running minimum so the
    result is monotone exactly."""
    out = np.asarray(sla, dtype=float).copy()
    for _ in range(sweeps):
        out = np.apply_along_axis(_decreasing, 0, out)
        out = np.apply_along_axis(_decreasing, 1, out)
    out = np.minimum.accumulate(out, axis=0)
    return np.asarray(np.minimum.accumulate(out, axis=1), dtype=float)


@dataclass(frozen=True)
class LatencyCurves:
    """The measured curves of every (model, VM type, tier), keyed by ids."""

    table: pd.DataFrame  # COLUMNS
    curves: dict[tuple[str, str, str], Curve]
    busy_s: dict[tuple[str, str], float]  # mean busy seconds per request of the measured mix
    capacity: dict[tuple[str, str], float]  # κ: busy seconds an instance sustains per second
    # best prefill and decode rates (tokens/s) of one instance: the unit of ``busy_s``
    rates: dict[tuple[str, str], tuple[float, float]]

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
        keys = [(str(m), str(g)) for m, g in zip(first["model"], first["vm_type"], strict=True)]
        busy_s = dict(zip(keys, first["busy_s"].astype(float), strict=True))
        capacity = dict(zip(keys, first["capacity"].astype(float), strict=True))
        rates = dict(
            zip(
                keys,
                zip(
                    first["prefill_tokens_per_s"].astype(float),
                    first["decode_tokens_per_s"].astype(float),
                    strict=True,
                ),
                strict=True,
            )
        )
        return cls(table, curves, busy_s, capacity, rates)

    @classmethod
    def load(cls, path: Path | str) -> LatencyCurves:
        return cls.from_frame(pd.read_csv(path))

    def curve(self, model: str, vm_type: str, tier: str) -> Curve:
        try:
            return self.curves[(model, vm_type, tier)]
        except KeyError:
            raise KeyError(f"no latency curve for {model} on {vm_type}, tier {tier}") from None
