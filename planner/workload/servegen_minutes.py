"""Per-minute demand aggregates straight from ServeGen's rate series, never a row per request.

Platforms export metrics rather than request logs at volume (ServeGen at scale 0.1 is ~17 M
requests a day), so this writes what such an export holds: per minute, region, model and
tier, the request count, input and output token sums and the inter-arrival CV.

Per client (region and tier from ``planner.workload.servegen.assign``, as for rows) and per
minute of each 600-s window with rate λ (requests/s, × the volume scale F) and inter-arrival
CV c: the count N of a renewal process over 60 s has mean μ = 60·λ·F and, asymptotically,
variance c²·μ, so N is drawn from a Gamma law with that mean and variance (the window's
variability; c = 1, Poisson-like, where the trace gives none), capped where the row path caps
a window's arrivals (1.5 μ_w + 4 √μ_w + 3 for the window's expected μ_w), with the Gamma's
scale raised so that the capped count still has mean μ. Token sums are N × the mean
input and output tokens of the client's 6-hour distribution (a donor's where the client has
none, as for rows). Per (minute, region, model, tier) the clients' counts and tokens add up,
and the CV is that of the superposed stream, √(Σ μᵢ cᵢ² / Σ μᵢ) (the asymptotic index of
dispersion of a sum of independent renewal streams); counts are rounded stochastically to
whole requests, tokens to whole tokens.
"""

from __future__ import annotations

import zlib
from datetime import datetime, time
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special

from planner.config.models import FleetConfig
from planner.utc import naive_utc
from planner.workload.servegen import (
    TOKEN_WINDOW_S,
    WINDOW_S,
    ServeGenClient,
    ServeGenSpec,
    _donor_tokens,
    assign,
)

Array = npt.NDArray[np.float64]
COLUMNS = [
    "minute",
    "region",
    "model",
    "tier",
    "requests",
    "input_tokens",
    "output_tokens",
    "cv",
]


def _mean_tokens(
    client: ServeGenClient, donors: list[ServeGenClient], window: int, seed: int
) -> tuple[float, float]:
    dist = client.tokens.get(window) or _donor_tokens(client, donors, window, seed)
    return float(dist[0] @ dist[1]), float(dist[2] @ dist[3])


def _capped_mean(shape: np.ndarray, scale: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """E[min(X, cap)] for X ~ Gamma(shape, scale)."""
    x = cap / scale
    return np.asarray(
        shape * scale * special.gammainc(shape + 1, x) + cap * special.gammaincc(shape, x)
    )


def _stretch(shape: np.ndarray, scale: np.ndarray, cap: np.ndarray, mu: np.ndarray) -> Array:
    """The factor on the Gamma scale that keeps the capped count's mean at ``mu``
    (bisection on a log scale; 1 where the cap trims nothing that matters)."""
    out = np.ones_like(mu)
    trimmed = special.gammaincc(shape, cap / scale) > 1e-9
    if not trimmed.any():
        return out
    k, th, c, m = shape[trimmed], scale[trimmed], cap[trimmed], mu[trimmed]
    lo, hi = np.zeros_like(m), np.full_like(m, 8.0)  # log factor in [0, 8]
    for _ in range(30):
        mid = (lo + hi) / 2
        low = _capped_mean(k, th * np.exp(mid), c) < m
        lo, hi = np.where(low, mid, lo), np.where(low, hi, mid)
    out[trimmed] = np.exp(hi)
    return out


def _client_minutes(
    client: ServeGenClient,
    donors: list[ServeGenClient],
    spec: ServeGenSpec,
    rng: np.random.Generator,
) -> pd.DataFrame | None:
    """Per minute of the client's active windows: offset (s since its local midnight),
    count, token sums, μ and μ·c² (for the superposed CV)."""
    trace = client.trace[client.trace["rate"] > 0]
    if trace.empty:
        return None
    per_window = WINDOW_S // 60
    starts = np.repeat(trace["window_start_s"].to_numpy(dtype=float), per_window)
    offsets = starts + 60.0 * np.tile(np.arange(per_window), len(trace))
    mu = np.repeat(trace["rate"].to_numpy(dtype=float), per_window) * 60.0 * spec.scale
    cv = np.repeat(trace["cv"].to_numpy(dtype=float), per_window)
    cv = np.where(np.isfinite(cv) & (cv > 0), cv, 1.0)
    var = cv**2
    # as the row path draws at most this many arrivals per 600-s window
    # (planner.workload.servegen._arrivals), a minute holds at most that many
    mu_window = mu * per_window
    cap = np.ceil(mu_window * 1.5 + 4 * np.sqrt(mu_window) + 3)
    shape = mu / var
    count = np.minimum(rng.gamma(shape, var * _stretch(shape, var, cap, mu)), cap)
    windows = (offsets // TOKEN_WINDOW_S).astype(np.int64) * TOKEN_WINDOW_S
    mean_in = np.zeros(len(offsets))
    mean_out = np.zeros(len(offsets))
    for w in np.unique(windows):
        sel = windows == w
        mean_in[sel], mean_out[sel] = _mean_tokens(client, donors, int(w), spec.seed)
    return pd.DataFrame(
        {
            "offset_s": offsets,
            "requests": count,
            "input_tokens": count * mean_in,
            "output_tokens": count * mean_out,
            "mu": mu,
            "mu_cv2": mu * var,
        }
    )


def synthesize_minutes(
    cfg: FleetConfig, clients: list[ServeGenClient], spec: ServeGenSpec
) -> pd.DataFrame:
    """Per-minute aggregates (``COLUMNS``; minute in UTC, naive) of every client of one
    ServeGen source mapped to ``spec.model`` (module docstring)."""
    donors = sorted((c for c in clients if c.tokens), key=lambda c: int(c.client))
    if not donors:
        raise ValueError("no client in the source has token distributions to borrow from")
    parts = []
    for client in clients:
        region, tier = assign(client.client, spec.seed, cfg.region_ids, cfg.tier_ids)
        rng = np.random.default_rng([spec.seed, 3, zlib.crc32(client.client.encode())])
        frame = _client_minutes(client, donors, spec, rng)
        if frame is None:
            continue
        midnight = datetime.combine(spec.start, time(0), ZoneInfo(cfg.region(region).timezone))
        base = naive_utc(midnight)
        frame["minute"] = base + pd.to_timedelta(frame.pop("offset_s"), unit="s")
        frame["region"], frame["tier"] = region, tier
        parts.append(frame)
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    keys = ["minute", "region", "tier"]
    sums = pd.concat(parts, ignore_index=True).groupby(keys, as_index=False).sum()
    rng = np.random.default_rng([spec.seed, 4])
    whole = np.floor(sums["requests"] + rng.random(len(sums)))
    ratio = np.where(
        sums["requests"] > 0, whole / sums["requests"].where(sums["requests"] > 0, 1), 0
    )
    out = pd.DataFrame(
        {
            "minute": sums["minute"],
            "region": sums["region"],
            "model": spec.model,
            "tier": sums["tier"],
            "requests": whole.astype(np.int64),
            "input_tokens": np.round(sums["input_tokens"] * ratio).astype(np.int64),
            "output_tokens": np.round(sums["output_tokens"] * ratio).astype(np.int64),
            "cv": np.sqrt(sums["mu_cv2"] / sums["mu"].where(sums["mu"] > 0, 1.0)),
        }
    )
    return out[out["requests"] > 0].sort_values(["minute", "region", "tier"], ignore_index=True)
