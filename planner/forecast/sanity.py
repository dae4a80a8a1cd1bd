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

The guard holds what is published: the point after the nowcast (:func:`sane_point` is given
the nowcast point, and the fallback's point nowcast the same way), its band made around that
point. A nowcast fallback point above ``SANITY_RATIO × M`` (the reading lifting a seasonal
naive hour) is capped there, so no published value exceeds it. ``M`` ≤ 0 (no demand observed
in the week) leaves the forecast as it is: nothing to compare. ``ratio`` = ∞ turns the guard
off (how the benches measure what it does).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from planner.forecast.shift import SHIFT_RATIO

log = logging.getLogger(__name__)

SANITY_RATIO = SHIFT_RATIO
RECENT_H = 168
FALLBACK = "snaive24"


def recent_max(observed: np.ndarray) -> float:
    """Largest observed hour over the last ``RECENT_H`` hours (NaN: not observed); 0 if none."""
    recent = np.asarray(observed, dtype=float)[-RECENT_H:]
    recent = recent[np.isfinite(recent)]
    return float(recent.max()) if len(recent) else 0.0


def reference(observed: np.ndarray, reading: float | None) -> float:
    """``M``: the largest observed hour of the last week, or the hour in progress (its
    minutes-so-far ``reading``) if higher."""
    seen = recent_max(observed)
    return max(seen, float(reading)) if reading is not None and np.isfinite(reading) else seen


def point_exceeds(point: np.ndarray, cap_of: float, ratio: float = SANITY_RATIO) -> str | None:
    """Why the point forecast is implausible against ``cap_of`` (= M), or None."""
    peak = float(np.nanmax(point)) if np.isfinite(point).any() else 0.0
    if cap_of <= 0 or peak <= ratio * cap_of:
        return None
    return f"implausible_point: peak {peak / cap_of:.1f}x the last week's max; seasonal naive"


def sane_point(
    point: np.ndarray,
    forecaster: str,
    fallback: str | None,
    cap_of: float,
    naive: Callable[[], np.ndarray],
    ratio: float = SANITY_RATIO,
    series: str = "",
) -> tuple[np.ndarray, str, str | None]:
    """The published point (after the nowcast) with its forecaster and fallback, or, when it
    is implausible, ``naive()`` (seasonal naive, nowcast as the point was) capped at
    ``ratio × cap_of``, with the reason (logged with the ``series`` it concerns)."""
    why = point_exceeds(point, cap_of, ratio)
    if why is None:
        return point, forecaster, fallback
    log.info("%s: %s (was %s)", series, why, forecaster)
    safe = np.asarray(naive(), dtype=float)
    capped = np.minimum(safe, ratio * cap_of)
    why = f"{why} (instead of {forecaster})"
    if np.any(capped < safe):
        why += f", capped at {ratio}x"
    return capped, FALLBACK, join(fallback, why)


def cap_quantiles(
    quantiles: dict[float, np.ndarray],
    cap_of: float,
    ratio: float = SANITY_RATIO,
    series: str = "",
) -> tuple[dict[float, np.ndarray], str | None]:
    """Quantiles capped at ``ratio × cap_of``, and why (None: nothing was above; logged at
    debug level with the ``series``: it fires on a third of series-origins). NaN values are
    left as they are and are not counted."""
    finite = [v[np.isfinite(v)] for v in (np.asarray(q, dtype=float) for q in quantiles.values())]
    top = max((float(v.max()) for v in finite if len(v)), default=0.0)
    if cap_of <= 0 or top <= ratio * cap_of:
        return quantiles, None
    cap = ratio * cap_of
    capped = {t: np.minimum(v, cap) for t, v in quantiles.items()}
    why = f"band_capped: top quantile {top / cap_of:.1f}x the last week's max; capped at {ratio}x"
    log.debug("%s: %s", series, why)
    return capped, why


def join(*reasons: str | None) -> str | None:
    """The fallback reasons of a forecast, in order, separated by '; ' (None if none)."""
    kept = [r for r in reasons if r]
    return "; ".join(kept) if kept else None
