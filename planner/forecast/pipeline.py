"""The two jobs of forecasting, as pure functions over the demand mart:

* :func:`select_models` (daily): backtest every candidate, choose per series, fit the chosen
  model on the full history, and keep the residual quantiles. Work is split into chunks of
  series that calibrate together (same tier and metric) and runs in two maps of pure,
  picklable functions, so a process pool, Prefect's task map or a Dask cluster can run them:

  1. :func:`stage_one` over the global job (:class:`GlobalTask`: a global candidate,
     :mod:`planner.forecast.gbm`, backtested and fitted once over the whole panel) and every
     chunk's per-series backtest (:func:`planner.forecast.backtest.local_backtest`), side by
     side: the chunks do not wait for the global model;
  2. :func:`select_chunk` per chunk: the global rows join the chunk's race, then choice, fit.
* :func:`forecast` (hourly): re-condition each stored model on the latest history and produce
  the point forecast and quantiles for the next ``horizon`` hours.

Neither reads anything after its ``as_of``: the panel is cut there first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from planner.forecast import nowcast
from planner.forecast.backtest import (
    BacktestResult,
    BacktestSettings,
    LocalBacktest,
    finish_backtest,
    local_backtest,
    run_global_backtest,
)
from planner.forecast.bands import calibrate_nowcast
from planner.forecast.calibration import (
    ResidualQuantiles,
    offset_for,
    offsets_now,
    peer_group,
    residuals_for,
)
from planner.forecast.forecast import (
    FittedSeries,
    fallback_forecasters,
    fit_global,
    fit_series,
    forecast_frame,
)
from planner.forecast.gbm import GlobalGBM
from planner.forecast.models import uses_global
from planner.forecast.reband import reband_selection
from planner.forecast.sanity import SANITY_RATIO
from planner.forecast.select import SelectionSettings, choose, deployed_scores
from planner.forecast.series import METRICS, Panel, build_panel

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")
Mapper = Callable[[Callable[[T], R], list[T]], list[R]]


@dataclass(frozen=True)
class ForecastSettings:
    horizon: int = 24
    history_h: int = 28 * 24
    metrics: tuple[str, ...] = METRICS
    backtest: BacktestSettings = field(default_factory=BacktestSettings)
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    # the hourly forecast's sanity guard (planner.forecast.sanity); ∞ turns it off (benches)
    sanity_ratio: float = SANITY_RATIO
    # minutes of the hour in progress (lead 1) the hourly job has read when it runs, at
    # minute 60 - planner.plan_lead_min: the backtest's nowcasts read exactly these
    nowcast_minutes: int = nowcast.MINUTES


@dataclass(frozen=True)
class ChunkTask:
    """``global_hours``/``global_model``: the global candidate's backtest rows and its model
    fitted at the selection time, both made once over the whole panel. ``local``: the chunk's
    per-series backtest when stage one made it already (else :func:`select_chunk` runs it)."""

    group: str
    panel: Panel
    settings: ForecastSettings
    global_hours: pd.DataFrame | None = None
    global_model: GlobalGBM | None = None
    local: LocalBacktest | None = None
    readings: pd.Series | None = None  # the first minutes of each origin hour (nowcast)


@dataclass(frozen=True)
class GlobalTask:
    """The global candidate over the whole panel (stage one, next to the chunks)."""

    panel: Panel
    settings: ForecastSettings
    group: str = "global"


@dataclass
class GlobalPart:
    hours: pd.DataFrame | None
    model: GlobalGBM | None


@dataclass
class ChunkSelection:
    group: str
    backtest: BacktestResult
    chosen: pd.DataFrame
    fitted: dict[str, FittedSeries]


@dataclass
class Selection:
    """Everything a daily selection produced."""

    as_of: pd.Timestamp
    fitted: dict[str, FittedSeries]
    chosen: pd.DataFrame  # series, forecaster, reason, champion
    folds: pd.DataFrame  # per series × forecaster × origin scores
    hours: pd.DataFrame  # per series × forecaster × origin × step (actual, point, quantiles)
    deployed: pd.DataFrame  # the rule replayed through time (see select.deployed_scores)
    origins: list[pd.Timestamp]
    nowcast_minutes: int = nowcast.MINUTES  # minutes of each origin's hour its nowcasts read

    def scores(self) -> pd.DataFrame:
        """Per series × forecaster: mean scores over its folds and whether it was chosen."""
        if self.folds.empty:
            return pd.DataFrame()
        agg = (
            self.folds.groupby(["series", "forecaster"])
            .agg(
                folds=("origin", "nunique"),
                mase=("mase", "mean"),
                scaled_pinball=("scaled_pinball", "mean"),
                band95_coverage=("in_band", "mean"),
                p95_coverage=("below_p95", "mean"),
            )
            .reset_index()
        )
        chosen = self.chosen.set_index("series")
        agg["chosen"] = agg["forecaster"] == agg["series"].map(chosen["forecaster"])
        agg["reason"] = agg["series"].map(chosen["reason"]).where(agg["chosen"])
        return agg


def chunk_tasks(
    panel: Panel,
    settings: ForecastSettings,
    global_hours: pd.DataFrame | None = None,
    global_model: GlobalGBM | None = None,
) -> list[ChunkTask]:
    groups: dict[str, list[str]] = {}
    for series in panel.series:
        groups.setdefault(peer_group(series), []).append(series)
    out = []
    for g, cols in sorted(groups.items()):
        mine = None
        if global_hours is not None and not global_hours.empty:
            mine = global_hours[global_hours["series"].isin(cols)]
        out.append(ChunkTask(g, panel.subset(cols), settings, mine, global_model))
    return out


def global_stage(
    panel: Panel, settings: ForecastSettings
) -> tuple[pd.DataFrame | None, GlobalGBM | None]:
    """The global candidate over every series: its backtest rows, and the model fitted on the
    whole history (for the series that will choose it). Nothing when it is not a candidate."""
    if not any(uses_global(c) for c in settings.backtest.candidates):
        return None, None
    hours = run_global_backtest(panel, settings.backtest)
    if hours.empty:
        return None, None
    try:
        model = fit_global(panel)
    except ValueError as exc:  # too little history: the series keep the other candidates
        log.warning("global model not fitted: %s", exc)
        return None, None
    return hours, model


def stage_one(task: GlobalTask | ChunkTask) -> GlobalPart | LocalBacktest:
    """The global job, or a chunk's per-series backtest (pure; safe in another process)."""
    if isinstance(task, GlobalTask):
        return GlobalPart(*global_stage(task.panel, task.settings))
    return local_backtest(task.panel, task.settings.backtest)


def select_chunk(task: ChunkTask) -> ChunkSelection:
    """Backtest, choose and fit one chunk (pure; safe to run in another process)."""
    settings = task.settings
    local = task.local or local_backtest(task.panel, settings.backtest)
    # with the day-shift band every row is banded again once all chunks are backtested
    # (reband_selection, from the same rows): the band in use is not made here first
    again = settings.backtest.day_shift is not None
    result = finish_backtest(task.panel, settings.backtest, local, task.global_hours, not again)
    if task.readings is not None and not task.readings.empty:
        result.hours = calibrate_nowcast(result.hours, task.panel, settings.backtest, task.readings)
    chosen = choose(result.folds, task.panel.series, settings.selection)
    # the offset the bands are applied at live: the backtest's own function, at the selection
    offsets = offsets_now(task.panel.observed)
    by_name = (
        {str(k): v for k, v in result.hours.groupby("forecaster")} if len(result.hours) else {}
    )
    fitted = {}
    for series, forecaster, reason in chosen[["series", "forecaster", "reason"]].itertuples(
        index=False
    ):
        fs = fit_series(series, forecaster, task.panel, None, reason, task.global_model)
        offset = float(offsets.get(series, offset_for(0.0)))
        band = partial(
            _residuals, by_name, series, task.panel.series, offset, settings.backtest.by_horizon
        )
        _store_bands(fs, forecaster, band)
        fitted[series] = fs
    return ChunkSelection(task.group, result, chosen, fitted)


Band = Callable[[str], tuple[ResidualQuantiles | None, ResidualQuantiles | None]]


def _store_bands(fs: FittedSeries, forecaster: str, band: Band) -> None:
    """The bands ``fs`` keeps: the fitted forecaster's own (a fit that fell back at selection
    time: the fallback's); the chosen ``forecaster``'s when it has none (a series without its
    own model); and its fallbacks'."""
    own = band(fs.forecaster) if fs.model is not None else (None, None)
    fs.residuals, fs.nowcast_residuals = own if own[0] is not None else band(forecaster)
    for name in fallback_forecasters(fs) if fs.model is not None else []:
        rq, nowcasts = band(name)
        if rq is not None:
            fs.fallback_residuals[name] = rq
        if nowcasts is not None:
            fs.fallback_nowcast_residuals[name] = nowcasts


def _residuals(
    by_name: dict[str, pd.DataFrame],
    series: str,
    group: list[str],
    offset: float,
    by_horizon: bool,
    name: str,
) -> tuple[ResidualQuantiles | None, ResidualQuantiles | None]:
    """The residual quantiles of ``name``'s forecasts of ``series`` and of its nowcasts
    (:func:`planner.forecast.calibration.residuals_for`); (None, None) without forecast
    residuals."""
    hours = by_name.get(name, pd.DataFrame())
    rq = residuals_for(hours, series, name, group, offset, by_horizon)
    if rq is None:
        return None, None
    column = "nowcast_log_residual"
    return rq, residuals_for(hours, series, name, group, offset, by_horizon, column=column)


def _serial(fn: Callable[[T], R], tasks: list[T]) -> list[R]:
    return [fn(t) for t in tasks]


def select_models(
    demand: pd.DataFrame,
    as_of: pd.Timestamp,
    settings: ForecastSettings,
    mapper: Mapper[Any, Any] | None = None,
    readings: pd.Series | None = None,
) -> Selection:
    """The daily selection over every series known at ``as_of`` (two maps: see the module
    docstring). ``readings`` (indexed by series and hour): the first minutes of each hour,
    read before ``as_of``; with them the nowcast's band is calibrated on the backtest's
    nowcasts (:func:`planner.forecast.bands.calibrate_nowcast`)."""
    panel = build_panel(demand, as_of, settings.history_h, settings.metrics)
    run = mapper or _serial
    chunks = chunk_tasks(panel, settings)
    wants_global = any(uses_global(c) for c in settings.backtest.candidates)
    first: list[GlobalTask | ChunkTask] = [GlobalTask(panel, settings)] if wants_global else []
    parts = run(stage_one, [*first, *chunks])
    global_part = parts[0] if wants_global else GlobalPart(None, None)
    assert isinstance(global_part, GlobalPart)
    tasks = []
    for chunk, local in zip(chunks, parts[len(first) :], strict=True):
        assert isinstance(local, LocalBacktest)
        rows = global_part.hours
        mine = None if rows is None else rows[rows["series"].isin(chunk.panel.series)]
        # every chunk gets every reading: which regions were read at an hour is the whole
        # log's (a series missing where its region was read reads 0,
        # nowcast.reading_values), not the chunk's
        tasks.append(
            replace(
                chunk,
                global_hours=mine,
                global_model=global_part.model,
                local=local,
                readings=readings,
            )
        )
    results = run(select_chunk, tasks)
    panels = [t.panel for t in tasks]
    return merge(as_of, reband_selection(results, panels, as_of, settings, run), settings)


def merge(
    as_of: pd.Timestamp, results: Iterable[ChunkSelection], settings: ForecastSettings
) -> Selection:
    results = list(results)
    folds = _concat([r.backtest.folds for r in results])
    hours = _concat([r.backtest.hours for r in results])
    origins = sorted({o for r in results for o in r.backtest.origins})
    return Selection(
        as_of=pd.Timestamp(as_of),
        fitted={k: v for r in results for k, v in r.fitted.items()},
        chosen=_concat([r.chosen for r in results]),
        folds=folds,
        hours=hours,
        deployed=deployed_scores(folds, settings.selection),
        origins=origins,
        nowcast_minutes=settings.nowcast_minutes,
    )


def forecast(
    demand: pd.DataFrame,
    fitted: dict[str, FittedSeries],
    as_of: pd.Timestamp,
    settings: ForecastSettings,
    timezones: dict[str, str],
    readings: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Forecasts for the ``horizon`` hours starting at ``as_of`` (floored to the hour), from
    data before it only; with ``readings`` (the hour in progress read from its minutes so far,
    up to ``as_of``) the first hours are nowcast."""
    origin = pd.Timestamp(as_of).floor("h")
    panel = build_panel(demand, origin, settings.history_h, settings.metrics)
    known = {s: f for s, f in fitted.items() if s in panel.observed}
    for series in panel.series:  # series that appeared after the selection
        if series not in known:
            known[series] = FittedSeries(
                series,
                "peer_profile",
                None,
                None,
                None,
                None,
                "appeared after selection",
                "new_series: not in the last selection",
            )
    return forecast_frame(
        known, panel, origin, settings.horizon, timezones, readings, ratio=settings.sanity_ratio
    )


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
