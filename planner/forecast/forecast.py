"""Fitting the chosen model of each series, and forecasting from it.

A :class:`FittedSeries` is a picklable value: the chosen forecaster fitted on the series'
history at selection time, the residual quantiles that widen its point forecasts, and why it
was chosen or what fell back. Hourly runs re-condition it on the latest history (statsforecast
``forward``, milliseconds) instead of refitting.

Fallbacks, each recorded with its reason on the series and on every forecast row:

* ``new_series``: fewer than ``MIN_OWN_HOURS`` observed hours: the hour-of-day profile of peer
  series (same model, tier and metric in other regions; else same tier and metric), taken in
  local time, scaled to the series' own de-seasonalised level;
* ``no_history``: no observation at all: zero demand, quantiles from peers;
* ``level_shift``: the last day runs persistently at ≥ 2.5× or ≤ 0.4× the same hours a week
  (or a day) earlier: the model is fitted on the last ``SHIFT_WINDOW_H`` hours only;
* ``model_failed``: fitting or forecasting raised or returned NaN: seasonal naive (sp = 24).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from planner.forecast.calibration import QUANTILES, ResidualQuantiles, offset_for
from planner.forecast.models import REGISTRY, _fit_one, forward_one
from planner.forecast.series import Panel, SeriesKey

log = logging.getLogger(__name__)
MIN_OWN_HOURS = 72
SHIFT_RATIO = 2.5
SHIFT_WINDOW_H = 72


@dataclass
class FittedSeries:
    series: str
    forecaster: str
    model: object | None
    residuals: ResidualQuantiles | None
    train_start: pd.Timestamp | None
    train_end: pd.Timestamp | None
    reason: str = ""
    fallback: str | None = None
    scores: dict[str, float] = field(default_factory=dict)


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


def fit_series(
    series: str,
    forecaster: str,
    panel: Panel,
    residuals: ResidualQuantiles | None,
    reason: str,
) -> FittedSeries:
    """Fit ``forecaster`` on the series' history (imputed where unknown)."""
    observed = panel.observed[series]
    known = observed.dropna()
    if known.empty:
        return FittedSeries(series, "none", None, residuals, None, None, reason, "no_history")
    if len(known) < MIN_OWN_HOURS:
        return FittedSeries(
            series,
            "peer_profile",
            None,
            residuals,
            known.index[0],
            known.index[-1],
            reason,
            f"new_series: {len(known)} h of history < {MIN_OWN_HOURS} h",
        )
    history = panel.filled[series]
    fallback = None
    shift = detect_level_shift(observed)
    if shift is not None:
        history = history.iloc[-SHIFT_WINDOW_H:]
        fallback = f"level_shift: last 24 h at {shift:.2f}x; fitted on the last {SHIFT_WINDOW_H} h"
    model, failed = _fit_one(forecaster, history.to_numpy(dtype=float))
    if failed:
        forecaster, fallback = "snaive24", f"model_failed: {failed}"
    return FittedSeries(
        series, forecaster, model, residuals, history.index[0], history.index[-1], reason, fallback
    )


def forecast_frame(
    fitted: dict[str, FittedSeries],
    panel: Panel,
    origin: pd.Timestamp,
    horizon: int,
    timezones: dict[str, str],
) -> pd.DataFrame:
    """Point forecast and quantiles for hours origin .. origin + horizon − 1 of every series.

    ``panel`` must hold only hours before ``origin`` (the caller builds it with ``as_of``).
    """
    hours = pd.date_range(origin, periods=horizon, freq="h")
    rows = []
    for series, fs in fitted.items():
        point, forecaster, fallback = _point(fs, panel, series, horizon, fitted, timezones, hours)
        residuals = fs.residuals or _peer_residuals(series, fitted)
        quantiles = residuals.apply(point) if residuals else {t: point for t in QUANTILES}
        key = SeriesKey.parse(series)
        frame = pd.DataFrame(
            {
                "origin": origin,
                "hour": hours,
                "h": np.arange(1, horizon + 1),
                "region": key.region,
                "model": key.model,
                "tier": key.tier,
                "metric": key.metric,
                "point": point,
                **{f"q_{t}": quantiles[t] for t in QUANTILES},
                "forecaster": forecaster,
                "train_start": fs.train_start,
                "train_end": fs.train_end,
                "fallback": fallback,
            }
        )
        rows.append(frame)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _point(
    fs: FittedSeries,
    panel: Panel,
    series: str,
    horizon: int,
    fitted: dict[str, FittedSeries],
    timezones: dict[str, str],
    hours: pd.DatetimeIndex,
) -> tuple[np.ndarray, str, str | None]:
    if fs.model is None:
        if fs.fallback == "no_history" or series not in panel.observed:
            return np.zeros(horizon), "none", fs.fallback or "no_history"
        return _peer_profile(series, panel, fitted, timezones, hours), "peer_profile", fs.fallback
    raw = panel.filled[series].to_numpy(dtype=float)
    if fs.fallback and fs.fallback.startswith("level_shift"):
        raw = raw[-SHIFT_WINDOW_H:]  # condition on the post-shift window it was fitted on
    res, _, failed = forward_one(fs.forecaster, fs.model, raw, horizon)
    if failed:
        return np.maximum(res["mean"], 0.0), "snaive24", f"model_failed: {failed}"
    return np.maximum(np.asarray(res["mean"], dtype=float), 0.0), fs.forecaster, fs.fallback


def _peers(series: str, fitted: dict[str, FittedSeries]) -> list[str]:
    me = SeriesKey.parse(series)
    own = [s for s in fitted if s != series and fitted[s].model is not None]
    same = [
        s
        for s in own
        if (k := SeriesKey.parse(s)).model == me.model
        and k.tier == me.tier
        and k.metric == me.metric
    ]
    return same or [
        s for s in own if (k := SeriesKey.parse(s)).tier == me.tier and k.metric == me.metric
    ]


def _local_profile(y: pd.Series, tz: str) -> np.ndarray:
    """Mean by local hour of day over the last 7 days, normalised to mean 1."""
    y = y.dropna().iloc[-168:]
    local = pd.DatetimeIndex(y.index).tz_localize("UTC").tz_convert(ZoneInfo(tz)).hour
    prof = y.groupby(local).mean().reindex(range(24)).interpolate(limit_direction="both")
    mean = prof.mean()
    return (prof / mean).to_numpy() if mean > 0 else np.ones(24)


def _peer_profile(
    series: str,
    panel: Panel,
    fitted: dict[str, FittedSeries],
    timezones: dict[str, str],
    hours: pd.DatetimeIndex,
) -> np.ndarray:
    me = SeriesKey.parse(series)
    peers = [p for p in _peers(series, fitted) if p in panel.observed]
    profiles = [
        _local_profile(panel.observed[p], timezones[SeriesKey.parse(p).region]) for p in peers
    ]
    profile = np.mean(profiles, axis=0) if profiles else np.ones(24)
    tz = ZoneInfo(timezones[me.region])
    own = panel.observed[series].dropna()
    own_local = pd.DatetimeIndex(own.index).tz_localize("UTC").tz_convert(tz).hour
    level = (
        float(np.mean(own.to_numpy() / np.maximum(profile[own_local], 1e-6))) if len(own) else 0.0
    )
    target_local = hours.tz_localize("UTC").tz_convert(tz).hour
    return np.maximum(level * profile[target_local], 0.0)


def _peer_residuals(series: str, fitted: dict[str, FittedSeries]) -> ResidualQuantiles | None:
    for peer in _peers(series, fitted):
        if fitted[peer].residuals is not None:
            return fitted[peer].residuals
    return None


def residuals_for(
    hours: pd.DataFrame,
    series: str,
    forecaster: str,
    group_series: list[str],
    level: float,
    by_horizon: bool = True,
) -> ResidualQuantiles | None:
    """Residual quantiles of a series' chosen forecaster from every backtest fold, mixed with
    its peer group's (see :mod:`planner.forecast.calibration`), per hour ahead when
    ``by_horizon``. ``hours`` carries each row's log residual computed with its own series'
    offset, and its lead ``h``."""
    if hours.empty:
        return None
    sel = hours[(hours["forecaster"] == forecaster) & hours["log_residual"].notna()]
    mine = sel["series"] == series
    peers = sel["series"].isin(group_series)
    own = sel.loc[mine, "log_residual"].to_numpy()
    peer = sel.loc[peers, "log_residual"].to_numpy()
    if len(own) + len(peer) == 0:
        return None
    if not by_horizon:
        return ResidualQuantiles.fit(own, offset_for(level), QUANTILES, peer)
    return ResidualQuantiles.fit(
        own,
        offset_for(level),
        QUANTILES,
        peer,
        sel.loc[mine, "h"].to_numpy(dtype=int),
        sel.loc[peers, "h"].to_numpy(dtype=int),
    )


__all__ = ["REGISTRY", "FittedSeries", "detect_level_shift", "fit_series", "forecast_frame"]
