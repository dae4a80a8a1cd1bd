"""The selection's second banding, once every chunk is backtested: the day-shift band
(:mod:`planner.forecast.dayshift`) sees the day shifts of every series of the selection, not
of one chunk (one peer group), in the backtest rows and in the bands the series store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from planner.forecast.bands import recalibrate
from planner.forecast.calibration import ResidualQuantiles, offset_for, offsets_now, peer_group
from planner.forecast.dayshift import DayShifts, WithinDay, live_quantiles, live_within
from planner.forecast.forecast import FittedSeries, fallback_forecasters
from planner.forecast.scores import score
from planner.forecast.series import Panel
from planner.quantiles import quantile_column

if TYPE_CHECKING:
    from planner.forecast.backtest import BacktestSettings
    from planner.forecast.pipeline import ChunkSelection, ForecastSettings

Live = tuple[bool, ResidualQuantiles | None]  # (the forecaster has residuals, its day band)


@dataclass(frozen=True)
class RebandTask:
    """A chunk's backtest rows to band again with the whole selection's day shifts;
    ``group`` names the chunk (a selection mapper's progress reports it, as for every task)."""

    group: str
    panel: Panel
    hours: pd.DataFrame
    settings: BacktestSettings
    shifts: DayShifts


def reband_chunk(task: RebandTask) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A chunk's rows with the day-shift band, and their scores (pure; safe in another
    process). Neither enters a choice: only MASE does."""
    hours = with_day_shifts(task.hours, task.panel, task.settings, task.shifts)
    return hours, score(hours, task.panel, task.settings.quantiles)


def with_day_shifts(
    hours: pd.DataFrame, panel: Panel, settings: BacktestSettings, shifts: DayShifts
) -> pd.DataFrame:
    """Backtest rows (nowcast already) with the forecasts' day-shift band; the leads ≥ 2 of
    an origin that read 0 publish the forecast's band
    (:func:`~planner.forecast.bands.calibrate_nowcast`): copied again. The nowcasts' own
    bands are left as they are."""
    out = recalibrate(hours, panel, settings, shifts=shifts)
    if "nowcast_reading" in out:
        same = (out["nowcast_reading"] == 0).to_numpy() & (out["h"].to_numpy() > 1)
        for col in [quantile_column(t) for t in settings.quantiles] + ["quantile_method"]:
            out.loc[same, "nowcast_" + col] = out.loc[same, col]
    return out


def reband_selection(
    results: list[ChunkSelection],
    panels: list[Panel],
    as_of: pd.Timestamp,
    settings: ForecastSettings,
    run: Callable[[Callable[[Any], Any], list[Any]], list[Any]],
) -> list[ChunkSelection]:
    """The chunks banded a second time once all are backtested: the day-shift band
    (:mod:`planner.forecast.dayshift`) sees the day shifts of every series of the selection,
    not of one chunk (one peer group), in the backtest rows and in the stored bands."""
    setting = settings.backtest.day_shift
    if setting is None or not results:
        return results
    frames = [r.backtest.hours for r in results if not r.backtest.hours.empty]
    if not frames:
        return results
    shifts = DayShifts.of(pd.concat(frames, ignore_index=True), setting)
    tasks = [
        RebandTask(r.group, p, r.backtest.hours, settings.backtest, shifts)
        for r, p in zip(results, panels, strict=True)
    ]
    for result, panel, (hours, folds) in zip(
        results, panels, run(reband_chunk, tasks), strict=True
    ):
        result.backtest.hours, result.backtest.folds = hours, folds
        offsets = offsets_now(panel.observed)
        # per forecaster, the chunk's within-day parts (dayshift.live_within), made once
        withins = {str(k): live_within(v, setting) for k, v in hours.groupby("forecaster")}
        chosen = result.chosen.set_index("series")["forecaster"]
        by_horizon = settings.backtest.by_horizon
        for series, fs in result.fitted.items():
            offset = float(offsets.get(series, offset_for(0.0)))
            live = partial(_live, withins, shifts, as_of, by_horizon, series, offset)
            _store_day_bands(fs, str(chosen[series]), live)
    return results


def _live(
    withins: dict[str, WithinDay],
    shifts: DayShifts,
    as_of: pd.Timestamp,
    by_horizon: bool,
    series: str,
    offset: float,
    name: str,
) -> Live:
    """Whether ``name`` left residuals in ``series``' chunk, and its day-shift band there."""
    within = withins.get(name)
    if within is None:
        return False, None
    band = live_quantiles(within, series, name, offset, shifts, as_of, by_horizon)
    return (peer_group(series), name) in within.group, band


def _store_day_bands(fs: FittedSeries, forecaster: str, live: Callable[[str], Live]) -> None:
    """The forecast bands ``fs`` keeps (:func:`planner.forecast.pipeline._store_bands`, the same
    forecasters) made
    again as day-shift bands where ``live`` makes one; the nowcasts' bands stay."""
    own = fs.model is not None and live(fs.forecaster)[0]
    fs.residuals = live(fs.forecaster if own else forecaster)[1] or fs.residuals
    for name in fallback_forecasters(fs) if fs.model is not None else []:
        rq = live(name)[1]
        if rq is not None:
            fs.fallback_residuals[name] = rq
