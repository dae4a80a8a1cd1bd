"""Level shifts: detecting a persistent change of level in the last day, and the window the
model is fitted on after one (see :mod:`planner.forecast.forecast`, fallback ``level_shift``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SHIFT_RATIO = 2.5
SHIFT_WINDOW_H = 72


def detect_level_shift(y: pd.Series) -> float | None:
    """A persistent level change in the last 24 h against the same hours a week (else a day)
    earlier: the median ratio is ≥ ``SHIFT_RATIO`` (or ≤ its inverse) and at least 18 of the
    24 hours moved the same way by half that. Returns the ratio, or None. A burst of a few
    hours is not a shift (spike capping handles those)."""
    y = y.dropna()
    if len(y) < 48:
        return None
    lag = 168 if len(y) >= 168 + 24 else 24
    recent = y.iloc[-24:].to_numpy()
    before = y.iloc[-24 - lag : -lag].to_numpy()
    if len(before) != 24:
        return None
    floor = 0.05 * max(float(np.median(y)), 1e-9)
    ratios = (recent + floor) / (before + floor)
    ratio = float(np.median(ratios))
    half = np.sqrt(SHIFT_RATIO)
    if ratio >= SHIFT_RATIO and (ratios >= half).sum() >= 18:
        return ratio
    if ratio <= 1 / SHIFT_RATIO and (ratios <= 1 / half).sum() >= 18:
        return ratio
    return None


def post_shift_window(y: np.ndarray) -> np.ndarray:
    """The last ``SHIFT_WINDOW_H`` hours of ``y`` (imputed history) with the hours before the
    shift brought to the level after it.

    d_t = log((y_t + f) / (y_{t−168} + f)) over the window (f: 5 % of the median level) is a
    step where the level moved; the change point k maximises |Σ_{t<k} (d_t − d̄)| (CUSUM) and
    the hours before it are scaled by exp(mean d[k:] − mean d[:k]) when that step is at least
    half a shift (√``SHIFT_RATIO``). Needs a week before the window; otherwise the window is
    returned as it is."""
    y = np.asarray(y, dtype=float)
    window = y[-SHIFT_WINDOW_H:].copy()
    if len(y) < SHIFT_WINDOW_H + 168 or len(window) < 2:
        return window
    floor = 0.05 * max(float(np.median(y)), 1e-9)
    before = y[-SHIFT_WINDOW_H - 168 : -168]
    d = np.log(np.maximum(window, 0.0) + floor) - np.log(np.maximum(before, 0.0) + floor)
    cusum = np.cumsum(d - d.mean())[:-1]
    k = int(np.argmax(np.abs(cusum))) + 1
    step = float(d[k:].mean() - d[:k].mean())
    if abs(step) < 0.5 * np.log(SHIFT_RATIO):
        return window
    window[:k] = np.maximum((np.maximum(window[:k], 0.0) + floor) * np.exp(step) - floor, 0.0)
    return window
