"""κ per minute from the minute's token mix, tabulated once per replay.

κ, the busy seconds an instance sustains per second (:func:`planner.sim.latency.saturation`),
moves with the request mix by ±1.5 % within one ServeGen trace (one 15-minute window to the
next): an instance is fastest when prefill chunks and decodes balance (decodes ride along the
chunks), slower when decodes fill the batch and iterations run decode-only. Almost all of it
follows one number of the mix, its **prefill share** π = Σ prompt / P ÷ Σ busy_s (P the best
prefill rate): over the sixteen 15-minute windows of the 4-hour bench traces, κ measured on
each window's own rows correlates 0.97 with π (0.82 on the seed-8 trace, whose windows reach
π = 0.64, past the peak).

So κ is tabulated against π once per replay, at the cost of one saturation run: instance j of
the run (:func:`planner.sim.latency.saturated_work`) is given the replay's own requests
drawn with an exponential tilt exp(θ_j s) on each request's own prefill share s, θ_j chosen so
the draw's π is the replay's π + ``OFFSETS[j]``; a parabola through the points (least squares)
is the table. A minute's κ is the table at the minute's π (clipped to the tabulated range).
The draws keep the sizes of the replay (the tilt only reweights them), so the table is the
replay's own κ at its own π (to the fit's noise), and a minute whose mix leans towards long
outputs or long prompts gets the κ of requests like its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq

from planner.sim.latency import saturated_work
from planner.sim.profile import InstanceProfile

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# the table's points: the replay's prefill share plus these (one instance each)
OFFSETS = (-0.12, -0.08, -0.05, -0.02, 0.02, 0.05, 0.08, 0.12)
TILT_BINS = 256  # the tilt is solved on a histogram of the requests' prefill shares
MAX_TILT = 60.0


def prefill_share(profile: InstanceProfile, prompt: npt.ArrayLike, output: npt.ArrayLike) -> Array:
    """Per request, the share of its busy seconds that is prefill: (p / P) / busy_s."""
    pre = np.asarray(prompt, float) / profile.prefill_tokens_per_s
    return np.asarray(pre / profile.busy_s(prompt, output), dtype=float)


@dataclass(frozen=True)
class KappaTable:
    """κ against the prefill share π: the measured points and the parabola through them."""

    shares: Array  # π of each draw
    kappa: Array  # κ measured on it
    coef: Array  # np.polyval coefficients of κ(π)
    share: float  # the replay's own π

    def __call__(self, share: npt.ArrayLike) -> Array:
        x = np.clip(np.asarray(share, float), self.shares.min(), self.shares.max())
        return np.asarray(np.polyval(self.coef, x), dtype=float)

    @property
    def own(self) -> float:
        """κ at the replay's own prefill share."""
        return float(self(self.share))


def _tilt(s: Array, busy: Array, target: float) -> float:
    """θ such that requests drawn with probability ∝ exp(θ s) have prefill share ``target``
    (solved on a histogram of s; ±``MAX_TILT`` where the target is out of reach)."""
    edges = np.linspace(0.0, 1.0, TILT_BINS + 1)
    h = np.minimum((s * TILT_BINS).astype(np.int64), TILT_BINS - 1)
    b = np.bincount(h, weights=busy, minlength=TILT_BINS)
    c = np.bincount(h, weights=busy * s, minlength=TILT_BINS)
    mid = 0.5 * (edges[1:] + edges[:-1])

    def gap(theta: float) -> float:
        w = np.exp(theta * (mid - mid.max()))
        return float((w * c).sum() / (w * b).sum()) - target

    if gap(-MAX_TILT) >= 0.0:
        return -MAX_TILT
    if gap(MAX_TILT) <= 0.0:
        return MAX_TILT
    return float(brentq(gap, -MAX_TILT, MAX_TILT, xtol=1e-4))


def kappa_table(
    profile: InstanceProfile,
    prompt: IntArray,
    output: IntArray,
    requests: int = 5000,
    seed: int = 0,
) -> KappaTable:
    """The replay's κ table (module docstring): one saturation run, one instance per
    ``OFFSETS`` point, ``requests`` tilted draws each."""
    busy = profile.busy_s(prompt, output)
    s = prefill_share(profile, prompt, output)
    own = float((busy * s).sum() / busy.sum())
    rng = np.random.default_rng([seed, 2])
    picks = []
    for offset in OFFSETS:
        w = np.exp(_tilt(s, busy, own + offset) * (s - 1.0))
        picks.append(rng.choice(len(s), requests, p=w / w.sum()))
    pick = np.asarray(picks, dtype=np.int64)
    work, until = saturated_work(profile, prompt, output, pick)
    shares = (busy * s)[pick].sum(axis=1) / busy[pick].sum(axis=1)
    kappa = work / until
    return KappaTable(shares, kappa, np.polyfit(shares, kappa, 2), own)


def minute_kappa(
    table: KappaTable,
    minute: IntArray,
    prefill_s: Array,
    busy_s: Array,
    minutes: int,
) -> Array:
    """[T] κ of each minute: the table at the minute's prefill share (Σ prefill busy seconds
    ``prefill_s`` / Σ ``busy_s`` of its requests); the replay's own κ where a minute is empty."""
    m = np.minimum(np.asarray(minute, np.int64), minutes - 1)
    pre = np.bincount(m, weights=prefill_s, minlength=minutes)
    total = np.bincount(m, weights=busy_s, minlength=minutes)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, pre / total, table.share)
    return table(share)
