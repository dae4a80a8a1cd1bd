"""The compact size histogram of a pool's minutes that the per-minute latency model
(:mod:`planner.sim.minute_model`) reads: per tier, the requests and their token sums in each
prompt bin and each output bin (the two marginals), and each bin's sizes as quadrature
points of a linear density with the bin's mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Bin edges of the compact size histogram the minute aggregates carry (tokens; a bin is
# [edge_i, edge_i+1)). The output bin [1, 2) holds the one-token outputs (no TPOT).
PROMPT_EDGES = (1, 256, 512, 1024, 2048, 4096)
OUTPUT_EDGES = (1, 2, 16, 64, 256, 1024)
POINTS = 4  # quadrature points per histogram bin


@dataclass(frozen=True)
class SizeBins:
    """The histogram's bins and the size each bin stands for (the geometric middle of its
    edges; the last bin reaches twice its lower edge)."""

    prompt_edges: tuple[int, ...] = PROMPT_EDGES
    output_edges: tuple[int, ...] = OUTPUT_EDGES

    @staticmethod
    def _middles(edges: tuple[int, ...]) -> Array:
        lo = np.asarray(edges, float)
        hi = np.r_[lo[1:], 2.0 * lo[-1]]
        return np.asarray(np.sqrt(lo * np.maximum(hi - 1.0, lo)), dtype=float)

    @property
    def prompt(self) -> Array:
        return self._middles(self.prompt_edges)

    @property
    def output(self) -> Array:
        return self._middles(self.output_edges)

    def index(self, prompt: npt.ArrayLike, output: npt.ArrayLike) -> tuple[IntArray, IntArray]:
        """Bin of each request's prompt and output."""
        ip = np.searchsorted(np.asarray(self.prompt_edges), np.asarray(prompt), side="right") - 1
        io = np.searchsorted(np.asarray(self.output_edges), np.asarray(output), side="right") - 1
        return (
            np.clip(ip, 0, len(self.prompt_edges) - 1).astype(np.int64),
            np.clip(io, 0, len(self.output_edges) - 1).astype(np.int64),
        )


@dataclass(frozen=True)
class MinuteMix:
    """The size mix of a pool's minutes, as the compact histogram the minute aggregates carry:
    per tier, the requests in each prompt bin and each output bin and their token sums (the
    two marginals; within a tier and minute, prompt and output are taken as independent)."""

    prompt_count: Array  # [T, K, P]
    prompt_tokens: Array  # [T, K, P]
    output_count: Array  # [T, K, O]
    output_tokens: Array  # [T, K, O]

    def prompt_points(self, bins: SizeBins) -> tuple[Array, Array]:
        """Each bin's sizes as :data:`POINTS` quadrature points and their weights, [T, K, P, Q]
        (:func:`bin_points`)."""
        return bin_points(self.prompt_tokens, self.prompt_count, bins.prompt_edges)

    def output_points(self, bins: SizeBins) -> tuple[Array, Array]:
        return bin_points(self.output_tokens, self.output_count, bins.output_edges)


def bin_points(tokens: Array, count: Array, edges: tuple[int, ...]) -> tuple[Array, Array]:
    """Sizes within each bin [lo, hi) (the last bin: [lo, 2·lo)) at ``POINTS`` evenly spaced
    points z (−1 < z < 1 across the bin), weighted 1 + s·z with the slope s that gives the
    points the bin's mean (``tokens / count``; s clipped to keep every weight ≥ 0; uniform
    where a bin is empty). Returns points and weights (summing to 1 per bin), both
    [..., bins, POINTS]."""
    lo = np.asarray(edges, float)
    hi = np.r_[lo[1:], 2.0 * lo[-1]]
    z = 2.0 * (np.arange(POINTS) + 0.5) / POINTS - 1.0
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    x = mid[:, None] + z[None, :] * half[:, None]  # [P, Q]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, tokens / count, mid)
    top = 1.0 / float(np.abs(z).max())
    slope = np.clip((mean - mid) / (np.maximum(half, 1e-9) * float((z * z).mean())), -top, top)
    w = np.maximum(1.0 + slope[..., None] * z, 0.0)
    w = w / w.sum(axis=-1, keepdims=True)
    return np.broadcast_to(x, w.shape).copy(), w


def minute_mix(
    minute: IntArray,
    tier: IntArray,
    prompt: npt.ArrayLike,
    output: npt.ArrayLike,
    minutes: int,
    tiers: int,
    bins: SizeBins | None = None,
) -> MinuteMix:
    """The :class:`MinuteMix` of request rows (minute index, tier index, sizes)."""
    bins = bins or SizeBins()
    p = np.asarray(prompt, float)
    o = np.asarray(output, float)
    m, k = np.asarray(minute, np.int64), np.asarray(tier, np.int64)
    ip, io = bins.index(prompt, output)  # the sizes as given: integer sizes search fastest
    n_p, n_o = len(bins.prompt_edges), len(bins.output_edges)
    out = []
    for idx, size, width in ((ip, p, n_p), (io, o, n_o)):
        key = (m * tiers + k) * width + idx
        for w in (None, size):
            flat = np.bincount(key, weights=w, minlength=minutes * tiers * width)
            out.append(flat.astype(float).reshape(minutes, tiers, width))
    return MinuteMix(*out)
