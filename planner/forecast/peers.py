"""What a series without a model of its own borrows from its peers (same model, tier and
metric in other regions; else same tier and metric): the hour-of-day profile, taken in local
time and scaled to the series' own level (``new_series``), and residual quantiles."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from planner.forecast.calibration import ResidualQuantiles
from planner.forecast.series import Panel, SeriesKey

if TYPE_CHECKING:
    from planner.forecast.forecast import FittedSeries


def peers_of(series: str, fitted: dict[str, FittedSeries]) -> list[str]:
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


def local_profile(y: pd.Series, tz: str) -> np.ndarray:
    """Mean by local hour of day over the last 7 days, normalised to mean 1."""
    y = y.dropna().iloc[-168:]
    local = pd.DatetimeIndex(y.index).tz_localize("UTC").tz_convert(ZoneInfo(tz)).hour
    prof = y.groupby(local).mean().reindex(range(24)).interpolate(limit_direction="both")
    mean = prof.mean()
    return (prof / mean).to_numpy() if mean > 0 else np.ones(24)


def peer_profile(
    series: str,
    panel: Panel,
    fitted: dict[str, FittedSeries],
    timezones: dict[str, str],
    hours: pd.DatetimeIndex,
) -> np.ndarray:
    me = SeriesKey.parse(series)
    peers = [p for p in peers_of(series, fitted) if p in panel.observed]
    profiles = [
        local_profile(panel.observed[p], timezones[SeriesKey.parse(p).region]) for p in peers
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


def peer_residuals(series: str, fitted: dict[str, FittedSeries]) -> ResidualQuantiles | None:
    for peer in peers_of(series, fitted):
        if fitted[peer].residuals is not None:
            return fitted[peer].residuals
    return None
