"""The routing scenario's load: how a window of the log is stretched in time so the pool runs at
a stated load, and the load a stretched window puts on the pool (:mod:`flows.routing`).
``busy`` is each request's work in seconds of a saturated instance
(:func:`flows.routing.load_work`), so a load of 1 is the pool's maximum sustainable rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

LOAD_BASES = ("peak", "mean")
SEGMENT_S = 900.0  # the log's clock: the load is held over 15-minute segments


def _segments(t: np.ndarray, busy: np.ndarray, segment_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Busy seconds and duration of each ``segment_s`` segment of the log's clock from the
    window's first arrival (``t``: seconds from it). The last, partial segment counts with its
    own duration when it lasts at least half a segment, and is folded into the one before
    otherwise (a few seconds of log must not set the window's peak)."""
    span = float(t.max()) if len(t) else 0.0
    n = max(int(np.ceil(span / segment_s)), 1)
    k = np.minimum((t // segment_s).astype(np.int64), n - 1)
    b = np.bincount(k, weights=busy, minlength=n)
    dur = np.full(n, segment_s)
    dur[-1] = max(span - (n - 1) * segment_s, 1e-9)
    if n > 1 and dur[-1] < segment_s / 2:
        b[-2] += b[-1]
        dur[-2] += dur[-1]
        b, dur = b[:-1], dur[:-1]
    return b, dur


def stretch(
    arrival: pd.Series,
    busy: np.ndarray,
    instances: int,
    load: float,
    basis: str = "peak",
    segment_s: float = SEGMENT_S,
) -> np.ndarray:
    """Arrival seconds scaled by one factor c (t → c · t, gaps' shape and order kept) so that
    the pool runs at ``load``, ρ = Σ busy / (instances × duration), by ``basis``:

    * ``peak`` (the default): the window's busiest ``segment_s`` of the log's clock (15
      minutes) runs at ``load`` and every other one below it — the pool sized for the window's
      peak, as a capacity plan sizes it; no part of the window is above the stated load;
    * ``mean``: the whole window's average runs at ``load`` (the definition before; a peak of
      the log above the average then runs the pool above ``load``, beyond capacity if the peak
      is more than 1/``load`` times the average).

    The factor c is ``max_k busy_k / (instances × dur_k × load)`` over the segments
    (:func:`_segments`) for ``peak``, ``Σ busy / (instances × span × load)`` for ``mean``;
    segment k then runs at ``busy_k / (instances × c × dur_k)``."""
    if basis not in LOAD_BASES:
        raise ValueError(f"load basis {basis!r}: choose from {', '.join(LOAD_BASES)}")
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    span = float(t.max()) or 1.0
    if basis == "mean" or span <= segment_s:
        return np.asarray(t * float(busy.sum()) / (instances * span * load), float)
    b, dur = _segments(t, busy, segment_s)
    c = float((b / dur).max()) / (instances * load)
    return np.asarray(t * c, float)


def window_load(
    arrival: pd.Series,
    stretched: np.ndarray,
    busy: np.ndarray,
    instances: int,
    segment_s: float = SEGMENT_S,
) -> dict[str, float]:
    """The pool load a stretched window puts on ``instances``: over the whole window, and per
    ``segment_s`` of the log's clock (peak, least non-empty segment, and the share of the
    window's work done in segments between 0.6 and 0.9, the issue's range)."""
    t = (arrival - arrival.iloc[0]).dt.total_seconds().to_numpy(float)
    span = float(t.max()) or 1.0
    c = float(stretched.max()) / span if len(stretched) and stretched.max() > 0 else 1.0
    b, dur = _segments(t, busy, segment_s)
    rho = b / (instances * c * dur)
    busy_k = b > 0
    within = float(b[(rho >= 0.6 - 1e-9) & (rho <= 0.9 + 1e-9)].sum() / max(b.sum(), 1e-12))
    return {
        "mean": float(busy.sum()) / (instances * c * span),
        "peak_15min": float(rho.max()),
        "least_busy_15min": float(rho[busy_k].min()) if busy_k.any() else 0.0,
        "work_share_at_0.6_0.9": within,
    }
