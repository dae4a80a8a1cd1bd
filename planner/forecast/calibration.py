"""Quantiles from out-of-sample residuals (split-conformal), in log space.

For a forecaster and a series, the backtest leaves residuals ``r = log((y + c) / (ŷ + c))``
of every hour of every fold, where ``c`` (the offset) is 5 % of the series' mean level so zero
hours stay finite. A quantile τ of a new point forecast ŷ is then

    q_τ = (ŷ + c) · exp(Q_τ(r)) − c,   clipped at 0,

with ``Q_τ`` the conformal (finite-sample corrected) empirical quantile of the pooled residuals.
Working in log space makes the band scale with the level, as demand noise does. The residuals
only ever come from folds whose origin precedes the forecast's origin.

Per hour ahead (issue #15): the error of a forecast grows with its lead, and only the first
hours of a plan are carried out, so a band pooled over leads 1..24 is too wide where it is
used and too narrow at the far end. ``ResidualQuantiles.fit`` given each residual's lead ``h``
fits ``Q_τ`` per lead from that lead's residuals (own and peers mixed as below) and a forecast
at lead h is widened by its own lead's quantiles; a lead with fewer than
``MIN_PER_HORIZON`` residuals (own + peers) uses the pooled band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planner.quantiles import QUANTILES

OFFSET_SHARE = 0.05
MIN_PER_HORIZON = 20


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
    # per lead h = 1..len: that lead's quantiles (None: the pooled band at every lead)
    by_horizon: tuple[tuple[float, ...], ...] | None = None

    @classmethod
    def fit(
        cls,
        residuals: np.ndarray,
        offset: float,
        levels: Sequence[float] = QUANTILES,
        peers: np.ndarray | None = None,
        horizons: np.ndarray | None = None,
        peer_horizons: np.ndarray | None = None,
    ) -> ResidualQuantiles:
        """Pooled quantiles; with ``horizons`` (the lead of each residual, and of each peer
        residual in ``peer_horizons``) also per lead 1..max (module docstring)."""
        peers = np.empty(0) if peers is None else peers
        if len(residuals) + len(peers) == 0:
            raise ValueError("no residuals to calibrate on")
        pooled = tuple(mixture_quantiles(residuals, peers, levels))
        by_h = None
        if horizons is not None:
            h_own = np.asarray(horizons, dtype=int)
            h_peer = np.empty(0, dtype=int) if peer_horizons is None else peer_horizons
            h_peer = np.asarray(h_peer, dtype=int)
            if len(h_own) != len(residuals) or len(h_peer) != len(peers):
                raise ValueError("one lead per residual expected")
            top = int(max(h_own.max(initial=0), h_peer.max(initial=0)))
            rows = []
            for h in range(1, top + 1):
                own_h, peer_h = residuals[h_own == h], peers[h_peer == h]
                if len(own_h) + len(peer_h) < MIN_PER_HORIZON:
                    rows.append(pooled)
                else:
                    rows.append(tuple(mixture_quantiles(own_h, peer_h, levels)))
            by_h = tuple(rows) if rows else None
        return cls(offset, tuple(levels), pooled, len(residuals) + len(peers), by_h)

    def at(self, h: np.ndarray) -> np.ndarray:
        """[len(h), levels]: the log-residual quantiles for forecasts at leads ``h`` (≥ 1)."""
        by_h = getattr(self, "by_horizon", None)  # selections pickled before it existed
        lead = np.asarray(h, dtype=int)
        if not by_h:
            return np.broadcast_to(np.asarray(self.values), (len(lead), len(self.values)))
        table = np.asarray(by_h, dtype=float)
        out: np.ndarray = table[np.clip(lead, 1, len(table)) - 1]
        return out

    def apply(self, point: np.ndarray, h: np.ndarray | None = None) -> dict[float, np.ndarray]:
        """Quantiles of ``point``; ``h`` the lead of each value (default 1, 2, … in order)."""
        point = np.asarray(point, dtype=float)
        lead = np.arange(1, len(point) + 1) if h is None else np.asarray(h)
        base = np.maximum(point, 0.0) + self.offset
        table = self.at(lead) if point.ndim == 1 else None
        return {
            tau: np.maximum(base * np.exp(v if table is None else table[:, i]) - self.offset, 0.0)
            for i, (tau, v) in enumerate(zip(self.levels, self.values, strict=True))
        }

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "offset": self.offset,
            "n": self.n,
            "quantiles": dict(zip(map(str, self.levels), self.values, strict=True)),
        }
        by_h = getattr(self, "by_horizon", None)
        if by_h:
            out["by_horizon"] = [dict(zip(map(str, self.levels), v, strict=True)) for v in by_h]
        return out
