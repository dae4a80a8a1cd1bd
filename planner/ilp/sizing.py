"""Interactive capacity sized on what the latency target needs (``planner.interactive_sizing:
latency``), instead of each tier's busiest minute over a flat headroom (``headroom``).

Per hour t, region r and model m, the interactive tiers share one pool (the replay serves them
from the same instances, tighter TTFT first), so the pool is sized once, for their load
together:

* pooled busiest minute P[r,m,t] = Σ_k P̂_k, the tiers' forecast busiest minutes (tokens/s) at
  their planning quantile. The busiest minute of the *sum* is at most this (the tiers need not
  peak in the same minute); no forecast of the sum's own peak is stored, so the sum of the
  peaks is used, an upper bound of it;
* its request rate λ = Σ_k P̂_k / τ_k with τ_k the tier's tokens per request (forecast mean
  token rate over mean request rate of the hour; ``planner.default_tokens_per_request`` where
  the forecast has no requests);
* instances of VM type g: n_g = max_k n*_k(λ, c) with n*_k the capacity curves of
  :func:`planner.sim.capacity.instances_needed` for tier k at attainment a
  (``planner.latency_attainment``) and inter-arrival CV c (``planner.arrival_cv``), the mean
  busy seconds of a request b_g = Σ_k (λ_k / λ) · τ_k · (φ_k / θ_in[m,g] + (1 − φ_k) / θ_out[m,g])
  at the placement's best configured rates. Every tier's curve is read at the pooled rate (the
  batch, and so the time per output token, is shared; conservative for the tier served first);
* the reference type g* = argmin_g n_g · price[g] / ipv[m,g] among the types whose curves meet
  the target (a type that cannot, e.g. a TPOT below what it reaches at batch 1, is skipped);
* the program's θ in this mode is the calibrated model's, on target (:func:`latency_theta`):
  θ_L[m,g,k] = ρ*_k[m,g] · κ[m,g] · blend(φ, P[m,g], D[m,g]), with κ, P, D the curves' capacity
  and best prefill/decode rates (the serving model of the replay, ``planner.sim.serving``) and
  ρ*_k the highest utilisation at which tier k's curve still meets a (at instance CV 0, the
  large-pool limit; ρ* = 1 for NIW, which has no latency target). A type whose curve never
  meets a gets ρ* = ``UNREACHABLE`` (1 %): the program uses it only where nothing else can
  serve. No flat headroom: ``build_data`` reads θ_L for every tier;
* demand handed to the program, per tier: D[r,m,k,t] = n_{g*} · θ_L[m,g*,k] · s_k with
  s_k = (P̂_k / θ_L[m,g*,k]) / Σ_j (P̂_j / θ_L[m,g*,j]). So Σ_k D_k / θ_L[m,g*,k] = n_{g*}: on
  g* the program holds exactly the curve's instances, and the tiers keep their own routing
  budgets (IW-F at home, IW-N may move). On another type g the program converts by θ_L's
  ratio, i.e. by the curves' on-target rates (exact at large pools, where CV/√n → 0).

Where no type's curve meets the target (or a placement has no curve), the cell keeps the
headroom sizing and a warning names it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.config import FleetConfig
from planner.fleet_index import FleetIndex, blend, fleet_index
from planner.quantiles import quantile_column

if TYPE_CHECKING:
    from planner.sim.latency import Curve

log = logging.getLogger(__name__)
Array = npt.NDArray[np.float64]


UNREACHABLE = 0.01  # ρ* of a type whose curve never meets the target (module docstring)


def max_utilisation(curve: Curve, attainment: float, cv: float = 0.0) -> float | None:
    """The highest ρ ≤ 1 at which ``curve`` (non-increasing in ρ) still meets ``attainment``
    at instance CV ``cv``; None where it does not even at its lowest ρ."""
    if float(curve(curve.rhos[0], cv)) < attainment - 1e-9:
        return None
    lo, hi = float(curve.rhos[0]), 1.0
    if float(curve(hi, cv)) >= attainment - 1e-9:
        return hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(curve(mid, cv)) >= attainment - 1e-9 else (lo, mid)
    return lo


def latency_theta(cfg: FleetConfig, input_share: Mapping[tuple[str, str], float] | None) -> Array:
    """θ_L [m, g, k] of the module docstring, on the fleet index's positions. A placement
    without measured curves keeps the config's θ with the tier's headroom, and a warning
    names it."""
    from planner.sim.capacity import load_latency_curves

    f = fleet_index(cfg)
    lc = load_latency_curves()
    phi = f.shares(input_share)  # [m, k]
    out = f.theta(input_share, headroom=True)
    goal = cfg.planner.latency_attainment
    for (i, j), ipv in np.ndenumerate(f.ipv):
        m, g = f.models[i], f.vm_types[j]
        if ipv <= 0:
            continue
        if (m, g) not in lc.capacity:
            log.warning("%s on %s: no latency curves; the config's throughput kept", m, g)
            continue
        prefill, decode = lc.rates[(m, g)]
        theta = lc.capacity[(m, g)] * blend(phi[i], prefill, decode)  # [k]
        for q, k in enumerate(f.tiers):
            rho = 1.0
            if q in f.interactive:
                found = max_utilisation(lc.curve(m, g, k), goal)
                rho = UNREACHABLE if found is None else found
            out[i, j, q] = rho * theta[q]
    return np.asarray(out, dtype=float)


def _series(forecasts: pd.DataFrame, tier: str, metric: str, column: str) -> pd.Series:
    sel = forecasts[(forecasts["tier"] == tier) & (forecasts["metric"] == metric)]
    idx = pd.MultiIndex.from_arrays(
        [pd.to_datetime(sel["hour"]), sel["region"], sel["model"]],
        names=["hour", "region", "model"],
    )
    return pd.Series(sel[column].astype(float).to_numpy(), index=idx)


def pool_instances(
    cfg: FleetConfig,
    model: str,
    peaks: Mapping[str, float],
    tokens_per_request: Mapping[str, float],
    share: Mapping[str, float],
) -> tuple[str, int] | None:
    """(g*, n_{g*}) of the module docstring for one pool: ``peaks[k]`` tokens/s of each
    interactive tier in the busiest minute, their tokens per request and input shares; None
    when no VM type's curves meet the target."""
    from planner.sim.capacity import instances_needed, load_latency_curves

    s = cfg.planner
    live = {k: p for k, p in peaks.items() if p > 0}
    if not live:
        return None
    rates = {k: p / tokens_per_request[k] for k, p in live.items()}
    lam = sum(rates.values())
    best: tuple[float, str, int] | None = None
    lc = load_latency_curves()
    for g, placement in cfg.model(model).vm_types.items():
        if (model, g) not in lc.rates:
            continue
        t_in, t_out = lc.rates[(model, g)]  # busy seconds in the curves' own unit
        busy = sum(
            rates[k] / lam * tokens_per_request[k] * (share[k] / t_in + (1 - share[k]) / t_out)
            for k in live
        )
        try:
            n = max(
                instances_needed(
                    model,
                    g,
                    k,
                    lam,
                    s.arrival_cv,
                    attainment=s.latency_attainment,
                    busy_s_per_request=busy,
                )
                for k in live
            )
        except (KeyError, ValueError):
            continue
        cost = n * cfg.vm_type(g).price_per_hour / placement.instances_per_vm
        if best is None or cost < best[0]:
            best = (cost, g, n)
    return None if best is None else (best[1], best[2])


def latency_sized_demand(
    forecasts: pd.DataFrame,
    cfg: FleetConfig,
    headroom_demand: pd.DataFrame,
    input_share: Mapping[tuple[str, str], float] | None = None,
) -> pd.DataFrame:
    """``headroom_demand`` (rows hour, region, model, tier, value from
    :func:`planner.ilp.demand.planning_demand`) with the interactive rows replaced by the
    latency-sized demand of the module docstring; deferrable rows unchanged."""
    inter = [t for t in cfg.tiers if t.kind == "interactive"]
    if not inter or headroom_demand.empty:
        return headroom_demand
    shares = dict(input_share or {})
    peak = {
        t.id: _series(forecasts, t.id, t.planning_metric, quantile_column(t.planning_quantile))
        for t in inter
    }
    median = quantile_column(0.5)
    tokens = {t.id: _series(forecasts, t.id, "token_rate", median) for t in inter}
    reqs = {t.id: _series(forecasts, t.id, "request_rate", median) for t in inter}
    is_inter = headroom_demand["tier"].isin([t.id for t in inter])
    fallback = headroom_demand[is_inter].set_index(["hour", "region", "model"]).sort_index()
    f, theta_l = fleet_index(cfg), latency_theta(cfg, input_share)
    out_rows: list[Row] = []
    for cell in sorted(set().union(*(set(s.index) for s in peak.values()))):
        p = {k: max(float(peak[k].get(cell, 0.0)), 0.0) for k in peak}
        p = {k: v if math.isfinite(v) else 0.0 for k, v in p.items()}
        tpr = {k: _tokens_per_request(cfg, tokens[k], reqs[k], cell) for k in p}
        share = {k: shares.get((cell[2], k), cfg.planner.default_input_share) for k in p}
        sized = pool_instances(cfg, cell[2], p, tpr, share)
        if sized is None:
            out_rows.extend(_headroom_kept(cfg, fallback, cell, p))
        else:
            out_rows.extend(_tier_rows(f, theta_l, cell, sized, p))
    sized_frame = pd.DataFrame(out_rows, columns=list(COLUMNS))
    return pd.concat([sized_frame, headroom_demand[~is_inter]], ignore_index=True)


Cell = tuple[object, str, str]  # (hour, region, model)
COLUMNS = ("hour", "region", "model", "tier", "value")
Row = dict[Any, Any]  # a demand row by column


def _tokens_per_request(cfg: FleetConfig, tokens: pd.Series, reqs: pd.Series, cell: Cell) -> float:
    """τ_k of the module docstring: the forecast mean token rate over the mean request rate
    (``planner.default_tokens_per_request`` where either is missing or not positive)."""
    tok, req = float(tokens.get(cell, 0.0)), float(reqs.get(cell, 0.0))
    return tok / req if req > 0 and tok > 0 else cfg.planner.default_tokens_per_request


def _headroom_kept(
    cfg: FleetConfig, fallback: pd.DataFrame, cell: Cell, peaks: Mapping[str, float]
) -> list[Row]:
    """A cell no VM type's curves can size: its headroom-sized rows, with a warning (none
    where it has no interactive load)."""
    if not any(v > 0 for v in peaks.values()):
        return []
    log.warning(
        "%s %s %s: no VM type's latency curves meet %.0f%%; headroom sizing kept",
        *cell,
        100 * cfg.planner.latency_attainment,
    )
    if cell not in fallback.index:
        return []
    return fallback.loc[[cell]].reset_index().to_dict("records")


def _tier_rows(
    f: FleetIndex, theta_l: Array, cell: Cell, sized: tuple[str, int], peaks: Mapping[str, float]
) -> list[Row]:
    """D[r,m,k,t] = n_{g*} · θ_L[m,g*,k] · s_k of the module docstring, one row per tier
    with load."""
    g, n = sized
    i, j = f.position["models"][cell[2]], f.position["vm_types"][g]
    theta0 = {k: float(theta_l[i, j, f.position["tiers"][k]]) for k in peaks}
    load = {k: peaks[k] / theta0[k] for k in peaks}
    total = sum(load.values())
    return [
        dict(zip(COLUMNS, (*cell, k, n * theta0[k] * w / total), strict=True))
        for k, w in load.items()
        if w > 0
    ]
