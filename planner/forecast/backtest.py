"""Rolling-origin backtests with sktime's splitter and ``evaluate``, and their scores.

Origins are every ``step_h`` hours (a day) over the last ``max_origins`` days the history
allows, the last one ``horizon`` hours before the end so every fold is scored on known hours.
Each candidate runs as one panel through ``evaluate(strategy="no-update_params")``: parameters
are fitted on data before the first origin, the state is re-conditioned on data before each
origin (see :mod:`planner.forecast.models`). Nothing after an origin reaches its forecast.

Each fold's rows are banded by :mod:`planner.forecast.bands` (conformal from earlier folds)
and scored by :mod:`planner.forecast.scores` (MASE, scaled pinball, coverage).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.model_evaluation import evaluate
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.performance_metrics.forecasting.probabilistic import PinballLoss
from sktime.split import ExpandingWindowSplitter

from planner.forecast import gbm
from planner.forecast.bands import calibrate, native_bands
from planner.forecast.dayshift import DayShift
from planner.forecast.models import (
    BASELINES,
    DEFAULT_CANDIDATES,
    GLOBAL_MODELS,
    REGISTRY,
    PanelStatsForecaster,
    uses_global,
)
from planner.forecast.scores import score
from planner.forecast.series import Panel, freq_index, to_sktime
from planner.quantiles import QUANTILES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BacktestSettings:
    """``screen_origins``/``finalist_margin``: racing. Every candidate is scored at its first
    ``screen_origins`` origins; only candidates within ``finalist_margin`` of a series' best
    screening MASE (and always the baselines and ``keep``) go on to the later origins. The
    screen comes first in time, so a choice replayed at a later origin never depends on folds
    after it."""

    horizon: int = 24
    max_origins: int = 14
    step_h: int = 24
    min_train_h: int = 72
    min_residuals: int = 48
    candidates: tuple[str, ...] = DEFAULT_CANDIDATES
    quantiles: tuple[float, ...] = QUANTILES
    screen_origins: int = 3
    finalist_margin: float = 0.10
    keep: tuple[str, ...] = ("ets_theta",)
    by_horizon: bool = True  # conformal bands per hour ahead (planner.forecast.calibration)
    # the day-shift band (planner.forecast.dayshift; None: the band in use), made once
    # every chunk is backtested (planner.forecast.pipeline.reband_selection)
    day_shift: DayShift | None = None


@dataclass
class BacktestResult:
    """``hours``: one row per series × forecaster × origin × step with actual, point and
    quantiles; ``folds``: one row per series × forecaster × origin with the scores."""

    hours: pd.DataFrame
    folds: pd.DataFrame
    origins: list[pd.Timestamp]
    skipped: dict[str, str] = field(default_factory=dict)


def origins_for(panel: Panel, settings: BacktestSettings) -> list[pd.Timestamp]:
    index = panel.filled.index
    if len(index) == 0:
        return []
    end = index[-1] + pd.Timedelta(hours=1)
    last = end - pd.Timedelta(hours=settings.horizon)
    earliest = index[0] + pd.Timedelta(hours=settings.min_train_h)
    origins = [last - pd.Timedelta(hours=settings.step_h * k) for k in range(settings.max_origins)]
    return sorted(o for o in origins if o >= earliest)


@dataclass
class LocalBacktest:
    """The per-series candidates' part of a chunk's backtest, before the global candidates'
    rows are known: their screen (first ``screen_origins`` origins) and their later origins
    for every pair that can still be a finalist once the global rows join (see
    :func:`local_backtest`)."""

    screen: pd.DataFrame
    later: pd.DataFrame
    origins: list[pd.Timestamp]
    skipped: dict[str, str]


def run_backtest(
    panel: Panel,
    settings: BacktestSettings,
    progress: Callable[[str], None] | None = None,
    global_hours: pd.DataFrame | None = None,
) -> BacktestResult:
    """Backtest every candidate on every series with enough history; score every fold.

    ``global_hours``: the hourly rows of the global candidates (:data:`GLOBAL_MODELS`), run
    once over the whole panel by :func:`run_global_backtest` (they learn across every series,
    not one chunk). They enter the same screen and the same finalist rule as every other
    candidate."""
    return finish_backtest(panel, settings, local_backtest(panel, settings, progress), global_hours)


def local_backtest(
    panel: Panel, settings: BacktestSettings, progress: Callable[[str], None] | None = None
) -> LocalBacktest:
    """The per-series candidates at their screen origins, then at the later origins for every
    (series, model) that is a finalist of the screen without the global rows, plus the
    per-series members of every combination with a global member. The global rows can only
    lower a series' best screening MASE (fewer finalists) or make such a combination a
    finalist, so this is a superset of the finalists :func:`finish_backtest` keeps: the result
    is the same as racing with every row at once, and it needs no global row, so the chunks
    run while the global model is backtested."""
    origins = origins_for(panel, settings)
    if not origins:
        empty = pd.DataFrame()
        return LocalBacktest(empty, empty, [], {"*": "not enough history for one origin"})
    singles, skipped = _expand_candidates(settings.candidates)
    singles = [s for s in singles if s not in GLOBAL_MODELS]
    usable, skipped_now = _usable_origins(panel, origins, singles)
    skipped |= skipped_now
    frames = []
    for name, (model_origins, series) in usable.items():
        if progress:
            progress(name)
        screen = model_origins[: settings.screen_origins]
        frames.append(_evaluate(panel.subset(series), name, screen, settings))
    screen_rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    local = tuple(c for c in settings.candidates if not uses_global(c))
    possible = (
        _finalists(_with_ensembles(screen_rows, local), panel, settings)
        if len(screen_rows)
        else set()
    )
    for name in settings.candidates:
        if uses_global(name):
            members = [m for m in REGISTRY[name].members if m not in GLOBAL_MODELS]
            possible |= {(s, m) for s in panel.series for m in members}
    later = []
    for name, (model_origins, series) in usable.items():
        rest = model_origins[settings.screen_origins :]
        keep = [s for s in series if (s, name) in possible]
        if rest and keep:
            later.append(_evaluate(panel.subset(keep), name, rest, settings))
    later_rows = pd.concat(later, ignore_index=True) if later else pd.DataFrame()
    return LocalBacktest(screen_rows, later_rows, origins, skipped)


def finish_backtest(
    panel: Panel,
    settings: BacktestSettings,
    local: LocalBacktest,
    global_hours: pd.DataFrame | None = None,
    banded: bool = True,
) -> BacktestResult:
    """The race finished with the global candidates' rows: the finalists of the full screen,
    every candidate's rows at their later origins kept for its finalists only, ensembles,
    conformal quantiles and scores. ``banded`` False: the model's own intervals instead of
    the conformal quantiles (:func:`~planner.forecast.bands.native_bands`; for a caller that
    bands every row again, as the day-shift band's second pass does: no choice reads a band)."""
    if not local.origins:
        empty = pd.DataFrame()
        return BacktestResult(empty, empty, [], dict(local.skipped))
    extra = _global_rows(global_hours, panel)
    first_origins = {
        name: sorted(g["origin"].unique())[: settings.screen_origins]
        for name, g in extra.groupby("forecaster")
    }
    in_screen = np.array(
        [o in first_origins[f] for f, o in zip(extra["forecaster"], extra["origin"], strict=True)],
        dtype=bool,
    )
    frames = [f for f in (local.screen, extra[in_screen]) if len(f)]
    screened = _with_ensembles(pd.concat(frames, ignore_index=True), settings.candidates)
    finalists = _finalists(screened, panel, settings)
    rest = pd.concat(
        [f for f in (local.later, extra[~in_screen]) if len(f)] or [pd.DataFrame(extra[:0])],
        ignore_index=True,
    )
    if len(rest):
        pairs = zip(rest["series"], rest["forecaster"], strict=True)
        kept = np.fromiter((p in finalists for p in pairs), dtype=bool, count=len(rest))
        frames.append(rest[kept])
    hours = _with_ensembles(pd.concat(frames, ignore_index=True), settings.candidates)
    hours = calibrate(hours, panel, settings) if banded else native_bands(hours, panel, settings)
    return BacktestResult(
        hours, score(hours, panel, settings.quantiles), local.origins, dict(local.skipped)
    )


def _global_rows(global_hours: pd.DataFrame | None, panel: Panel) -> pd.DataFrame:
    """The global candidates' rows for this panel's series."""
    if global_hours is None or global_hours.empty:
        return pd.DataFrame(columns=["series", "forecaster", "origin"])
    return global_hours[global_hours["series"].isin(panel.series)].reset_index(drop=True)


def run_global_backtest(
    panel: Panel, settings: BacktestSettings, name: str = gbm.NAME
) -> pd.DataFrame:
    """A global candidate backtested once over every series of the panel, at every origin
    (through the same sktime ``evaluate`` and splitter as the per-series candidates)."""
    if not any(name == c or name in REGISTRY[c].members for c in settings.candidates):
        return pd.DataFrame()
    origins = origins_for(panel, settings)
    usable, _ = _usable_origins(panel, origins, [name]) if origins else ({}, {})
    if name not in usable:
        return pd.DataFrame()
    model_origins, series = usable[name]
    return _evaluate(panel.subset(series), name, model_origins, settings)


def make_forecaster(name: str) -> BaseForecaster:
    """The sktime forecaster of a registry name, refitting on the registry's schedule."""
    if name == gbm.NAME:
        return gbm.GlobalGBMForecaster(refit_every_h="spec")
    return PanelStatsForecaster(name, refit_every_h="spec")


def _expand_candidates(candidates: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """Single models to run (ensembles run as their members)."""
    singles: list[str] = []
    for name in candidates:
        for member in REGISTRY[name].members or (name,):
            if member not in singles:
                singles.append(member)
    return singles, {}


def _usable_origins(
    panel: Panel, origins: list[pd.Timestamp], names: list[str]
) -> tuple[dict[str, tuple[list[pd.Timestamp], list[str]]], dict[str, str]]:
    """Per model: the origins from the first one where some series has the history it needs,
    and those series."""
    counts = {o: panel.until(o).observed_hours() for o in origins}
    usable: dict[str, tuple[list[pd.Timestamp], list[str]]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        need = REGISTRY[name].min_history_h
        first, series = len(origins), []
        for i, o in enumerate(origins):
            series = [str(s) for s, n in counts[o].items() if n >= need]
            if series:
                first = i
                break
        if len(origins) - first < 2:
            skipped[name] = f"fewer than 2 origins with {need} h of history"
            continue
        usable[name] = (origins[first:], series)
    return usable, skipped


def _with_ensembles(hours: pd.DataFrame, candidates: tuple[str, ...]) -> pd.DataFrame:
    """Add rows of each ensemble candidate: the mean of its members' points and quantiles on
    the (series, origin, hour) they share. Identical to running the ensemble, without fitting
    the members twice."""
    hours = hours[~hours["forecaster"].isin([c for c in candidates if REGISTRY[c].members])]
    extra = []
    for name in candidates:
        members = REGISTRY[name].members
        if not members:
            continue
        parts = [
            hours[hours["forecaster"] == m].set_index(["series", "origin", "hour"]) for m in members
        ]
        shared = parts[0].index
        for p in parts[1:]:
            shared = shared.intersection(p.index)
        if len(shared) == 0:
            continue
        numeric = [c for c in parts[0].columns if c == "point" or c.startswith("native_")]
        mean = sum(p.loc[shared, numeric] for p in parts) / len(parts)
        frame = parts[0].loc[shared].copy()
        frame[numeric] = mean
        frame["forecaster"] = name
        extra.append(frame.reset_index())
    return pd.concat([hours, *extra], ignore_index=True) if extra else hours


def _finalists(
    screened: pd.DataFrame, panel: Panel, settings: BacktestSettings
) -> set[tuple[str, str]]:
    """(series, single model) pairs that continue past the screen (by MASE alone)."""
    folds = _screen_folds(screened, panel, settings)
    if folds.empty:
        return set()
    mase = folds.groupby(["series", "forecaster"])["mase"].mean().unstack()
    best = mase.min(axis=1)
    always = {*BASELINES, *settings.keep}
    keep: set[tuple[str, str]] = set()
    for name in mase.columns:
        good = mase[name] <= (1 + settings.finalist_margin) * best
        for series in mase.index[good | (name in always)]:
            for member in REGISTRY[name].members or (name,):
                keep.add((series, member))
    return keep


def _screen_folds(screened: pd.DataFrame, panel: Panel, settings: BacktestSettings) -> pd.DataFrame:
    """The screen's fold scores. Only their MASE is read, so the rows keep the model's own
    intervals (:func:`~planner.forecast.bands.native_bands`: rows in
    :func:`~planner.forecast.bands.calibrate`'s order, so MASE is the same bit for bit): no
    band is made for nothing."""
    return score(native_bands(screened.copy(), panel, settings), panel, settings.quantiles)


def _evaluate(
    panel: Panel, name: str, origins: list[pd.Timestamp], settings: BacktestSettings
) -> pd.DataFrame:
    y = to_sktime(freq_index(panel.filled))
    # only what is known at the last origin reaches the splitter
    y = y[y.index.get_level_values("hour") < origins[-1] + pd.Timedelta(hours=settings.horizon)]
    first = panel.filled.index.get_loc(origins[0])
    assert isinstance(first, int)
    cv = ExpandingWindowSplitter(
        fh=list(range(1, settings.horizon + 1)), initial_window=first, step_length=settings.step_h
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate(
            make_forecaster(name),
            cv=cv,
            y=y,
            strategy="no-update_params",
            return_data=True,
            # the scores are computed in _score; these only make evaluate return the point
            # forecasts and the quantiles (pooled over series: no per-series loop)
            scoring=[
                MeanAbsoluteError(multilevel="uniform_average_time"),
                PinballLoss(alpha=list(settings.quantiles)),
            ],
            error_score="raise",
        )
    hours = pd.concat(
        [_fold_rows(fold, name, settings.quantiles) for _, fold in result.iterrows()],
        ignore_index=True,
    )
    delta = pd.to_datetime(hours["hour"]) - pd.to_datetime(hours["origin"])
    hours["h"] = (delta.dt.total_seconds() // 3600).astype(int) + 1
    actual = panel.observed.stack(future_stack=True)
    actual.index.names = ["hour", "series"]
    hours["actual"] = actual.reindex(pd.MultiIndex.from_frame(hours[["hour", "series"]])).to_numpy()
    return hours


def _fold_rows(fold: pd.Series, name: str, quantiles: tuple[float, ...]) -> pd.DataFrame:
    """One fold of sktime's ``evaluate`` as rows: series, hour, point, native quantiles."""
    pred = fold["y_pred"]["y"]
    frame = pd.DataFrame(
        {
            "series": pred.index.get_level_values(0),
            "hour": pred.index.get_level_values(1),
            "point": pred.to_numpy(),
        }
    )
    for tau in quantiles:
        frame[f"native_{tau}"] = fold["y_pred_quantiles"][("y", tau)].to_numpy()
    frame["forecaster"] = name
    frame["origin"] = fold["cutoff"] + pd.Timedelta(hours=1)
    return frame
