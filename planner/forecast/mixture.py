"""The τ-quantiles of a mixture of a series' own residuals and its peers' (split-conformal,
:mod:`planner.forecast.calibration`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def conformal_quantile(residuals: np.ndarray, tau: float) -> float:
    """The ⌈(n+1)τ⌉-th smallest residual (clamped to the sample), the split-conformal rule."""
    n = len(residuals)
    rank = min(max(int(np.ceil((n + 1) * tau)), 1), n)
    return float(np.partition(residuals, rank - 1)[rank - 1])


def mixture_quantiles(
    own: np.ndarray,
    peers: np.ndarray,
    taus: Sequence[float],
    peers_sorted: bool = False,
    own_weight: float = 0.5,
) -> list[float]:
    """τ-quantiles of the equal mixture of a series' own residuals and its peers' residuals.

    A series has one to two weeks of folds, too few for the tails and drawn from a regime that
    changes; its peers (same tier and metric) widen the evidence. Tested on ServeGen-derived
    logs, the band's coverage went from 0.91 (own only) to 0.95 (mixture) at nominal 0.95.
    The conformal correction adds one pseudo-observation: the target level is τ(n+1)/n with n
    the mixture's effective sample size. ``own_weight``: the own residuals' share of the
    mixture (0.5: equal; 0: the peers' alone, a group conformal band).

    ``peers_sorted``: ``peers`` is already sorted (a peer group's residuals are shared by every
    series of the group: :class:`Sample` sorts them once). The own residuals (a few) are then
    inserted into the sorted peers instead of sorting both again; the order is that of a stable
    sort of [own, peers], so the result is the same bit for bit for float64 input (the
    mixture is built in float64; the one caller passes :class:`Sample` arrays, which
    :meth:`~planner.forecast.calibration.Sample.of` casts to it). Other dtypes are not cast
    here: two casts cost about 1 % of a call (0.14 of 13 µs; 8 own and 150 peer residuals,
    49 levels).
    """
    if len(own) == 0 or len(peers) == 0 or own_weight <= 0.0:
        sample = peers if len(peers) and (own_weight <= 0.0 or len(own) == 0) else own
        return [conformal_quantile(sample, t) for t in taus]
    n, m = len(own), len(peers)
    w_own, w_peer = own_weight / n, (1.0 - own_weight) / m
    ordered_peers = peers if peers_sorted else np.sort(peers, kind="stable")
    ordered_own = np.sort(own, kind="stable")
    # own before equal peers, as a stable argsort of [own, peers] orders them
    at = np.searchsorted(ordered_peers, ordered_own, side="left") + np.arange(n)
    # np.insert(ordered_peers, at, ordered_own) and the weights alike, without its checks
    peer_at = np.ones(n + m, dtype=bool)
    peer_at[at] = False
    values = np.empty(n + m)
    values[at], values[peer_at] = ordered_own, ordered_peers
    weights = np.full(n + m, w_peer)
    weights[at] = w_own
    cum = np.cumsum(weights)
    targets = _targets(n, m, own_weight, tuple(taus))
    idx = np.minimum(np.searchsorted(cum, targets), len(values) - 1)
    out: list[float] = values[idx].tolist()
    return out


@lru_cache(maxsize=4096)
def _targets(n: int, m: int, own_weight: float, taus: tuple[float, ...]) -> np.ndarray:
    """The levels :func:`mixture_quantiles` looks up on the mixture's cumulative weights for
    ``n`` own and ``m`` peer residuals (the conformal correction by its effective size)."""
    weights = np.concatenate([np.full(n, own_weight / n), np.full(m, (1.0 - own_weight) / m)])
    n_eff = 1.0 / float(np.sum(weights**2))
    out: np.ndarray = np.minimum(np.asarray(taus) * (n_eff + 1) / n_eff, 1.0) - 1e-12
    out.setflags(write=False)  # shared by every call with these sizes
    return out
