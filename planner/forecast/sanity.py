"""The last guard before a forecast is published: no value above what the series has shown.

A series' forecast — point or any quantile — is held against ``M``, the largest hour the
series observed in the week before the origin. The threshold is ``SANITY_RATIO`` = the level
shift ratio (2.5, :data:`planner.forecast.shift.SHIFT_RATIO`), fixed before measuring:

* If the demand were exchangeable, the next hour would exceed the past 168 hours' maximum with
  probability 1/169; exceeding it by a factor is a level change. A forecast above
  ``SANITY_RATIO × M`` predicts a shift at least as large as the smallest one the level-shift
  detector recognises, at the week's busiest hour — when no such shift has been observed (an
  observed one is already in the fitted window and in ``M``). That is the model
  extrapolating (a trend read into a burst, a multiplicative band on a noisy series), not
  the data.
* The point then falls back to seasonal naive (sp = 24; never above ``M`` over a day) and
  the quantiles are capped at ``SANITY_RATIO × M`` (still ≥ 2.5× anything seen in a week).
  Each is recorded on the forecast rows (``fallback``) with the ratio that tripped it.

``M`` ≤ 0 (no demand observed in the week) leaves the forecast as it is: nothing to compare.
"""

from __future__ import annotations

import numpy as np

from planner.forecast.shift import SHIFT_RATIO

SANITY_RATIO = SHIFT_RATIO
RECENT_H = 168


def recent_max(observed: np.ndarray) -> float:
    """Largest observed hour over the last ``RECENT_H`` hours (NaN: not observed); 0 if none."""
    recent = np.asarray(observed, dtype=float)[-RECENT_H:]
    recent = recent[np.isfinite(recent)]
    return float(recent.max()) if len(recent) else 0.0


def point_exceeds(point: np.ndarray, cap_of: float) -> str | None:
    """Why the point forecast is implausible against ``cap_of`` (= M), or None."""
    peak = float(np.max(point)) if len(point) else 0.0
    if cap_of <= 0 or peak <= SANITY_RATIO * cap_of:
        return None
    return f"implausible_point: peak {peak / cap_of:.1f}x the last week's max; seasonal naive"


def cap_quantiles(
    quantiles: dict[float, np.ndarray], cap_of: float
) -> tuple[dict[float, np.ndarray], str | None]:
    """Quantiles capped at ``SANITY_RATIO × cap_of``, and why (None: nothing was above)."""
    if cap_of <= 0:
        return quantiles, None
    cap = SANITY_RATIO * cap_of
    top = max(float(np.max(v)) for v in quantiles.values()) if quantiles else 0.0
    if top <= cap:
        return quantiles, None
    capped = {t: np.minimum(v, cap) for t, v in quantiles.items()}
    return capped, (
        f"band_capped: top quantile {top / cap_of:.1f}x the last week's max; "
        f"capped at {SANITY_RATIO}x"
    )


def join(*reasons: str | None) -> str | None:
    """The fallback reasons of a forecast, in order, separated by '; ' (None if none)."""
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None
