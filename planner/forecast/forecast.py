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
  (or a day) earlier: the model is fitted on the last ``SHIFT_WINDOW_H`` hours only, the
  hours of that window before the change point brought to the new level
  (:func:`post_shift_window`), so the forecast neither sticks to the old level nor reads the
  step as a trend;
* ``model_failed``: fitting or forecasting raised or returned NaN: seasonal naive (sp = 24);
* ``implausible_point`` / ``band_capped``: a point or quantile above 2.5× the series' largest
  hour of the last week (:mod:`planner.forecast.sanity`): seasonal naive / quantiles capped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import numpy as np
import pandas as pd

from planner.forecast import gbm, nowcast, sanity
from planner.forecast.calibration import ResidualQuantiles, offset_for, offsets_now
from planner.forecast.gbm import NAME as GBM
from planner.forecast.gbm import GlobalGBM
from planner.forecast.models import HYBRIDS, REGISTRY, _fit_one, forward_one, uses_global
from planner.forecast.peers import peer_profile, peer_residuals
from planner.forecast.series import Panel, SeriesKey
from planner.forecast.shift import SHIFT_WINDOW_H, detect_level_shift, post_shift_window
from planner.quantiles import QUANTILES, quantile_column

MIN_OWN_HOURS = 72
LOCAL_FALLBACK = "ets_theta"  # for global candidates after a level shift or without a model


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
    # quantiles of nowcasts' own residuals (used when the hour in progress was read)
    nowcast_residuals: ResidualQuantiles | None = None
    # the bands of the forecasters the hourly job may fall back to (fallback_forecasters),
    # from their own backtest residuals: a fallen-back point is banded by its own errors
    fallback_residuals: dict[str, ResidualQuantiles] = field(default_factory=dict)
    fallback_nowcast_residuals: dict[str, ResidualQuantiles] = field(default_factory=dict)


def fallback_forecasters(fs: FittedSeries) -> list[str]:
    """The forecasters other than its own whose point an hourly forecast of ``fs`` may
    publish: seasonal naive (an implausible or failed point), and a combination's per-series
    part (its global member failing)."""
    names = [sanity.FALLBACK]
    if isinstance(fs.model, HybridModel):
        names.append(fs.model.local_name)
    return [n for n in names if n != fs.forecaster]


def fit_global(panel: Panel) -> GlobalGBM:
    """The global model fitted on every series' whole history (at selection time)."""
    keys = list(panel.series)
    filled = panel.filled[keys].to_numpy(dtype=float).T
    observed = panel.observed[keys].to_numpy(dtype=float).T
    return GlobalGBM(gbm.DEFAULT_PARAMS).fit(
        keys, filled, observed, pd.DatetimeIndex(panel.filled.index)
    )


def fit_series(
    series: str,
    forecaster: str,
    panel: Panel,
    residuals: ResidualQuantiles | None,
    reason: str,
    global_model: GlobalGBM | None = None,
) -> FittedSeries:
    """Fit ``forecaster`` on the series' history (imputed where unknown). A series choosing
    the global model (alone or combined) shares ``global_model``; after a level shift it falls
    back to ``LOCAL_FALLBACK`` fitted on the post-shift window (the global model scales by the
    mean of the week before the origin, which mixes both levels)."""
    observed = panel.observed[series]
    known = observed.dropna()
    if known.empty:
        return FittedSeries(series, "none", None, residuals, None, None, reason, "no_history")
    if len(known) < MIN_OWN_HOURS:
        young = f"new_series: {len(known)} h of history < {MIN_OWN_HOURS} h"
        seen = (known.index[0], known.index[-1])
        return FittedSeries(series, "peer_profile", None, residuals, *seen, reason, young)
    history, forecaster, fallback = _training_window(
        panel.filled[series], observed, forecaster, global_model
    )
    span = (history.index[0], history.index[-1])
    if forecaster == GBM:
        return FittedSeries(series, GBM, global_model, residuals, *span, reason)
    if forecaster in HYBRIDS:
        local, failed = _fit_one(HYBRIDS[forecaster], history.to_numpy(dtype=float))
        if failed:
            return FittedSeries(
                series, "snaive24", local, residuals, *span, reason, f"model_failed: {failed}"
            )
        hybrid = HybridModel(HYBRIDS[forecaster], local, global_model)
        return FittedSeries(series, forecaster, hybrid, residuals, *span, reason)
    model, failed = _fit_one(forecaster, history.to_numpy(dtype=float))
    if failed:
        forecaster, fallback = "snaive24", f"model_failed: {failed}"
    return FittedSeries(series, forecaster, model, residuals, *span, reason, fallback)


def _training_window(
    history: pd.Series, observed: pd.Series, forecaster: str, global_model: GlobalGBM | None
) -> tuple[pd.Series, str, str | None]:
    """The history a series' model is fitted on, that model, and why it is not the chosen
    one: after a level shift the post-shift window (a global choice then falls back to
    ``LOCAL_FALLBACK``); without the global model, ``LOCAL_FALLBACK`` too."""
    fallback = None
    shift = detect_level_shift(observed)
    if shift is not None:
        history = pd.Series(
            post_shift_window(history.to_numpy(dtype=float)),
            index=history.index[-SHIFT_WINDOW_H:],
        )
        fallback = f"level_shift: last 24 h at {shift:.2f}x; fitted on the last {SHIFT_WINDOW_H} h"
        if uses_global(forecaster):
            fallback += f" with {LOCAL_FALLBACK} (instead of {forecaster})"
            forecaster = LOCAL_FALLBACK
    if uses_global(forecaster) and global_model is None:
        fallback = f"model_failed: {GBM} not fitted; {LOCAL_FALLBACK}"
        forecaster = LOCAL_FALLBACK
    return history, forecaster, fallback


def forecast_frame(
    fitted: dict[str, FittedSeries],
    panel: Panel,
    origin: pd.Timestamp,
    horizon: int,
    timezones: dict[str, str],
    readings: dict[str, float] | None = None,
    nowcast_params: nowcast.NowcastParams | None = None,
    ratio: float = sanity.SANITY_RATIO,
) -> pd.DataFrame:
    """Point forecast and quantiles for hours origin .. origin + horizon − 1 of every series.

    ``panel`` must hold only hours before ``origin`` (the caller builds it with ``as_of``).
    ``readings``: per series, the hour in progress (``origin``) read from its minutes so far;
    the point forecasts are then nowcast (:mod:`planner.forecast.nowcast`; a series missing
    from non-empty ``readings`` reads 0 if its region was read, else has no reading:
    :func:`planner.forecast.nowcast.series_readings`). The sanity guard
    (:mod:`planner.forecast.sanity`, ``ratio``) holds the published values: the point after
    the nowcast, and the band made around it from the published forecaster's residuals.
    """
    hours = pd.date_range(origin, periods=horizon, freq="h")
    rows = []
    offsets = offsets_now(panel.observed)  # as the selection's (its bands' offset)
    reads = nowcast.series_readings(readings, [s for s, f in fitted.items() if f.model])
    for series, fs in fitted.items():
        point, forecaster, fallback = _point(fs, panel, series, horizon, fitted, timezones, hours)
        read = reads.get(series)  # 0: its region was read and nothing of it arrived
        offset = fs.residuals.offset if fs.residuals else offsets.get(series, offset_for(0.0))
        now = partial(_nowcast, read, offset, SeriesKey.parse(series).metric, nowcast_params)
        cap_of = _recent_max(fs, panel, series, read)
        naive = partial(_naive, panel, series, horizon, now)
        point, forecaster, fallback = sanity.sane_point(
            now(point), forecaster, fallback, cap_of, naive, ratio, series
        )
        residuals, nowcasts, note = _band(fs, forecaster, fitted)
        quantiles = _quantiles(point, residuals, nowcasts if read is not None else None, read)
        quantiles, capped = sanity.cap_quantiles(quantiles, cap_of, ratio, series)
        fallback = sanity.join(fallback, note, capped)
        rows.append(_rows(series, fs, origin, hours, point, quantiles, forecaster, fallback))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _nowcast(
    reading: float | None,
    offset: float,
    metric: str,
    params: nowcast.NowcastParams | None,
    point: np.ndarray,
) -> np.ndarray:
    """``point`` nowcast from the hour in progress (unchanged without a reading)."""
    return point if reading is None else nowcast.apply(point, reading, offset, metric, params)


def _recent_max(fs: FittedSeries, panel: Panel, series: str, reading: float | None) -> float:
    """The sanity guard's reference ``M`` (:func:`planner.forecast.sanity.reference`); 0
    (guard off) for a series without its own model (peer profiles of new series are left to
    their fallback)."""
    if fs.model is None or series not in panel.observed:
        return 0.0
    return sanity.reference(panel.observed[series].to_numpy(dtype=float), reading)


def _naive(
    panel: Panel, series: str, horizon: int, now: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The guard's fallback point: seasonal naive (sp = 24) from the series' history, nowcast
    (``now``) as the point it replaces was."""
    raw = panel.filled[series].to_numpy(dtype=float)
    res, _, _ = forward_one(sanity.FALLBACK, _snaive_fit(raw), raw, horizon)
    return now(np.maximum(np.asarray(res["mean"], dtype=float), 0.0))


def _band(
    fs: FittedSeries, forecaster: str, fitted: dict[str, FittedSeries]
) -> tuple[ResidualQuantiles | None, ResidualQuantiles | None, str | None]:
    """The residuals that band the published point: the published forecaster's own, its
    nowcasts' (None without them), and why not when they are missing. A point that fell
    back (:func:`fallback_forecasters`) takes the fallback's residuals; a selection without
    them (stored before they were kept) keeps the chosen forecaster's band, and says so."""
    own, nowcasts, note = fs.residuals, fs.nowcast_residuals, None
    if fs.model is not None and forecaster != fs.forecaster:
        if forecaster in fs.fallback_residuals:
            own = fs.fallback_residuals[forecaster]
            nowcasts = fs.fallback_nowcast_residuals.get(forecaster)
        else:
            note = f"band of {fs.forecaster} (no {forecaster} residuals)"
    return own or peer_residuals(fs.series, fitted), nowcasts, note


def _quantiles(
    point: np.ndarray,
    residuals: ResidualQuantiles | None,
    nowcasts: ResidualQuantiles | None,
    read: float | None,
) -> dict[float, np.ndarray]:
    """The band around ``point``: a nowcast's from its nowcasts' residuals (a selection
    without them: the forecast's own band, wider than a nowcast's errors). A 0 reading moves
    lead 1 only (:func:`planner.forecast.nowcast.apply`): leads ≥ 2 keep the forecast's band."""
    plain = residuals.apply(point) if residuals else {t: point for t in QUANTILES}
    if read is None or nowcasts is None:
        return plain
    now = nowcasts.apply(point)
    if read > 0:
        return now
    return {t: np.concatenate([now[t][:1], plain[t][1:]]) for t in plain}


def _rows(
    series: str,
    fs: FittedSeries,
    origin: pd.Timestamp,
    hours: pd.DatetimeIndex,
    point: np.ndarray,
    quantiles: dict[float, np.ndarray],
    forecaster: str,
    fallback: str | None,
) -> pd.DataFrame:
    """One series' forecast rows, hour by hour."""
    key = SeriesKey.parse(series)
    return pd.DataFrame(
        {
            "origin": origin,
            "hour": hours,
            "h": np.arange(1, len(hours) + 1),
            "region": key.region,
            "model": key.model,
            "tier": key.tier,
            "metric": key.metric,
            "point": point,
            **{quantile_column(t): quantiles[t] for t in QUANTILES},
            "forecaster": forecaster,
            # NaT, not None, for a series without its own fit: an all-None column is
            # object-typed and pandas would drop it when typing the concatenated column
            "train_start": fs.train_start if fs.train_start is not None else pd.NaT,
            "train_end": fs.train_end if fs.train_end is not None else pd.NaT,
            "fallback": fallback,
        }
    )


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
        return peer_profile(series, panel, fitted, timezones, hours), "peer_profile", fs.fallback
    raw = panel.filled[series].to_numpy(dtype=float)
    if fs.forecaster == GBM and isinstance(fs.model, GlobalGBM):
        return _global_point(fs.model, series, raw, panel, horizon)
    if isinstance(fs.model, HybridModel):
        return _hybrid_point(fs, fs.model, series, raw, panel, horizon)
    if fs.fallback and fs.fallback.startswith("level_shift"):
        raw = post_shift_window(raw)  # condition on the window as it was fitted on
    res, _, failed = forward_one(fs.forecaster, fs.model, raw, horizon)
    if failed:
        return np.maximum(res["mean"], 0.0), "snaive24", f"model_failed: {failed}"
    return np.maximum(np.asarray(res["mean"], dtype=float), 0.0), fs.forecaster, fs.fallback


def _global_point(
    model: GlobalGBM, series: str, raw: np.ndarray, panel: Panel, horizon: int
) -> tuple[np.ndarray, str, str | None]:
    """The global model's forecast of one series; seasonal naive if it fails or is not finite."""
    try:
        point, _ = model.predict(
            [series], raw[None, :], pd.DatetimeIndex(panel.filled.index), horizon
        )
        if not np.all(np.isfinite(point)):
            raise FloatingPointError("non-finite forecast")
        return point[0], GBM, None
    except Exception as exc:  # a failure of the global model must not fail the hourly run
        res, _, _ = forward_one("snaive24", _snaive_fit(raw), raw, horizon)
        return (
            np.maximum(np.asarray(res["mean"], dtype=float), 0.0),
            "snaive24",
            f"model_failed: {GBM} forecast failed ({type(exc).__name__}: {exc}); seasonal naive",
        )


def _hybrid_point(
    fs: FittedSeries,
    model: HybridModel,
    series: str,
    raw: np.ndarray,
    panel: Panel,
    horizon: int,
) -> tuple[np.ndarray, str, str | None]:
    """Equal-weight mean of the per-series members (their registry model) and the global model;
    a failing part leaves the other, with the reason."""
    res, _, failed = forward_one(model.local_name, model.local, raw, horizon)
    local = np.maximum(np.asarray(res["mean"], dtype=float), 0.0)
    if failed:
        return local, "snaive24", f"model_failed: {failed}"
    if model.global_model is None:
        return local, model.local_name, f"model_failed: {GBM} not loaded; {model.local_name}"
    glob, used, reason = _global_point(model.global_model, series, raw, panel, horizon)
    if used != GBM:
        return local, model.local_name, reason
    k = len(REGISTRY[fs.forecaster].members) - 1
    return (k * local + glob) / (k + 1), fs.forecaster, fs.fallback


@dataclass
class HybridModel:
    """A combination with a global member: the per-series part (``local_name`` of the registry,
    fitted on this series) and the shared global model."""

    local_name: str
    local: object
    global_model: GlobalGBM | None


def detach_shared(fs: FittedSeries) -> tuple[FittedSeries, GlobalGBM | None]:
    """The series without its shared global model (stored once per selection), and that model."""
    if isinstance(fs.model, GlobalGBM):
        return replace(fs, model=None), fs.model
    if isinstance(fs.model, HybridModel) and fs.model.global_model is not None:
        return replace(fs, model=replace(fs.model, global_model=None)), fs.model.global_model
    return fs, None


def attach_shared(fs: FittedSeries, shared: GlobalGBM | None) -> FittedSeries:
    """Undo :func:`detach_shared`."""
    if shared is None:
        return fs
    if fs.forecaster == GBM and fs.model is None:
        return replace(fs, model=shared)
    if isinstance(fs.model, HybridModel) and fs.model.global_model is None:
        return replace(fs, model=replace(fs.model, global_model=shared))
    return fs


def _snaive_fit(raw: np.ndarray) -> object:
    model, _ = _fit_one("snaive24", raw)
    return model
