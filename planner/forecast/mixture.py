"""The τ-quantiles of a mixture of a series' own residuals and its peers' (split-conformal,
:mod:`planner.forecast.calibration`), one lead at a time or every lead at once."""

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
    sort of [own, peers], so the result is the same bit for bit.
    """
    if len(own) == 0 or len(peers) == 0 or own_weight <= 0.0:
        sample = peers if len(peers) and (own_weight <= 0.0 or len(own) == 0) else own
        return [conformal_quantile(sample, t) for t in taus]
    n, m = len(own), len(peers)
    w_own, w_peer = own_weight / n, (1.0 - own_weight) / m
    ordered_peers = peers if peers_sorted else np.sort(peers, kind="stable")
    ordered_own = np.sort(own, kind="stable")
    # own before equal peers, as a stable argsort of [own, peers] orders them
    at = np.searchsorted(ordered_peers, ordered_own, side="left")
    values = np.insert(ordered_peers, at, ordered_own)
    cum = np.cumsum(np.insert(np.full(m, w_peer), at, w_own))
    targets = _targets(n, m, own_weight, tuple(float(t) for t in taus))
    idx = np.minimum(np.searchsorted(cum, targets), len(values) - 1)
    return [float(v) for v in values[idx]]


@lru_cache(maxsize=4096)
def _targets(n: int, m: int, own_weight: float, taus: tuple[float, ...]) -> np.ndarray:
    """The levels :func:`mixture_quantiles` looks up on the mixture's cumulative weights for
    ``n`` own and ``m`` peer residuals (the conformal correction by its effective size)."""
    weights = np.concatenate([np.full(n, own_weight / n), np.full(m, (1.0 - own_weight) / m)])
    n_eff = 1.0 / float(np.sum(weights**2))
    out: np.ndarray = np.minimum(np.asarray(taus) * (n_eff + 1) / n_eff, 1.0) - 1e-12
    out.setflags(write=False)  # shared by every call with these sizes
    return out


def lead_mixtures(
    own: list[np.ndarray],
    peers: list[np.ndarray],
    taus: Sequence[float],
    own_weight: float,
    thin: int,
) -> list[tuple[float, ...] | None]:
    """Per lead (``own[i]``, ``peers[i]``: that lead's residuals, each sorted), the quantiles
    ``mixture_quantiles(own[i], peers[i], taus, True, own_weight)`` gives, bit for bit, made
    for every lead at once (one merge and one cumulative sum over a lead × residual table,
    row by row as the one-lead function does); None where the lead has fewer than ``thin``
    residuals (the caller pools it)."""
    n = np.array([len(a) for a in own], dtype=int)
    m = np.array([len(b) for b in peers], dtype=int)
    out: list[tuple[float, ...] | None] = [None] * len(own)
    enough = n + m >= thin
    mixed = enough & (n > 0) & (m > 0) & (own_weight > 0.0)
    for i in np.flatnonzero(enough & ~mixed):  # one side only: the one-lead function
        out[i] = tuple(mixture_quantiles(own[i], peers[i], taus, True, own_weight))
    rows = np.flatnonzero(mixed)
    if not len(rows):
        return out
    size = n[rows] + m[rows]
    row = np.concatenate(
        [np.repeat(np.arange(len(rows)), n[rows]), np.repeat(np.arange(len(rows)), m[rows])]
    )
    value = np.concatenate([own[i] for i in rows] + [peers[i] for i in rows])
    is_peer = np.concatenate(
        [np.zeros(int(n[rows].sum()), bool), np.ones(int(m[rows].sum()), bool)]
    )
    order = np.lexsort((is_peer, value, row))  # by lead, value, own before equal peers
    row, value, is_peer = row[order], value[order], is_peer[order]
    col = np.arange(len(row)) - np.repeat(np.cumsum(size) - size, size)
    table = np.zeros((len(rows), int(size.max())))
    weight = np.where(is_peer, (1.0 - own_weight) / m[rows][row], own_weight / n[rows][row])
    table[row, col] = weight
    cum = np.cumsum(table, axis=1)  # row by row, left to right: the one-lead sums
    cum[np.arange(cum.shape[1])[None, :] >= size[:, None]] = np.inf
    values = np.zeros_like(table)
    values[row, col] = value
    key = tuple(float(t) for t in taus)
    targets = np.vstack([_targets(int(n[i]), int(m[i]), own_weight, key) for i in rows])
    idx = (cum[:, :, None] < targets[:, None, :]).sum(axis=1)  # searchsorted, side "left"
    idx = np.minimum(idx, size[:, None] - 1)
    picked = np.take_along_axis(values, idx, axis=1)
    for k, i in enumerate(rows):
        out[i] = tuple(float(v) for v in picked[k])
    return out
