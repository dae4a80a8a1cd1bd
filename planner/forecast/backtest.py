"""Rolling-origin backtests with sktime's splitter and ``evaluate``, and their scores.

Origins are every ``step_h`` hours (a day) over the last ``max_origins`` days the history
allows, the last one ``horizon`` hours before the end so every fold is scored on known hours.
Each candidate runs as one panel through ``evaluate(strategy="no-update_params")``: parameters
are fitted on data before the first origin, the state is re-conditioned on data before each
origin (see :mod:`planner.forecast.models`). Nothing after an origin reaches its forecast.

Scores per series, forecaster and fold:

* MASE: MAE over the fold's known hours ÷ the in-sample MAE of seasonal naive (sp = 24) over
  the training hours before that origin;
* pinball loss averaged over the quantile levels, divided by the same scale;
* coverage of the central 95 % band [q0.025, q0.975] and of the one-sided q0.95.

Quantiles of fold k are conformal from the residuals of folds before k
(:mod:`planner.forecast.calibration`) once at least ``min_residuals`` exist; before that the
model's own intervals (``predict_quantiles``) are used and the row says so.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster
from sktime.forecasting.model_evaluation import evaluate
from sktime.performance_metrics.forecasting import MeanAbsoluteError
from sktime.performance_metrics.forecasting.probabilistic import PinballLoss
from sktime.split import ExpandingWindowSplitter

from planner.forecast import gbm
from planner.forecast.adaptive import BandAdapt, SpreadState
from planner.forecast.calibration import (
    ResidualQuantiles,
    Sample,
    log_residuals,
    offset_for,
)
from planner.forecast.models import (
    BASELINES,
    DEFAULT_CANDIDATES,
    GLOBAL_MODELS,
    REGISTRY,
    PanelStatsForecaster,
    uses_global,
)
from planner.forecast.nowcast import NowcastParams, apply_rows
from planner.forecast.series import Panel, SeriesKey, freq_index, to_sktime
from planner.quantiles import QUANTILES, is_quantile_column, quantile_column

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
) -> BacktestResult:
    """The race finished with the global candidates' rows: the finalists of the full screen,
    every candidate's rows at their later origins kept for its finalists only, ensembles,
    conformal quantiles and scores."""
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
    hours = _calibrate(hours, panel, settings)
    return BacktestResult(hours, _score(hours, panel, settings), local.origins, dict(local.skipped))


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
    """(series, single model) pairs that continue past the screen."""
    folds = _score(_calibrate(screened.copy(), panel, settings), panel, settings)
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
    rows = []
    for _, fold in result.iterrows():
        origin = fold["cutoff"] + pd.Timedelta(hours=1)
        pred = fold["y_pred"]["y"]
        quant = fold["y_pred_quantiles"]
        frame = pd.DataFrame(
            {
                "series": pred.index.get_level_values(0),
                "hour": pred.index.get_level_values(1),
                "point": pred.to_numpy(),
            }
        )
        for tau in settings.quantiles:
            frame[f"native_{tau}"] = quant[("y", tau)].to_numpy()
        frame["forecaster"] = name
        frame["origin"] = origin
        rows.append(frame)
    hours = pd.concat(rows, ignore_index=True)
    delta = pd.to_datetime(hours["hour"]) - pd.to_datetime(hours["origin"])
    hours["h"] = (delta.dt.total_seconds() // 3600).astype(int) + 1
    actual = panel.observed.stack(future_stack=True)
    actual.index.names = ["hour", "series"]
    hours["actual"] = actual.reindex(pd.MultiIndex.from_frame(hours[["hour", "series"]])).to_numpy()
    return hours


def peer_group(series_id: str) -> str:
    """Series that share tier and metric calibrate together (see calibration)."""
    key = SeriesKey.parse(series_id)
    return f"{key.tier}|{key.metric}"


def recalibrate(
    hours: pd.DataFrame, panel: Panel, settings: BacktestSettings, adapt: BandAdapt | None = None
) -> pd.DataFrame:
    """A backtest's hourly rows (one selection's, every series at once) with their q_<τ>
    columns made again, with the band adapted to recent origins (:mod:`.adaptive`) or not.
    Without ``adapt`` the columns are the selection's own."""
    made = [c for c in hours.columns if is_quantile_column(c)]
    return _calibrate(
        hours.drop(columns=[*made, "quantile_method", "log_residual"], errors="ignore"),
        panel,
        settings,
        adapt,
    )


def _calibrate(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    adapt: BandAdapt | None = None,
) -> pd.DataFrame:
    """Add q_<τ> columns: conformal from earlier folds (own and peer residuals) once at least
    ``min_residuals`` own residuals exist, else the model's native intervals. ``adapt``: each
    conformal band spread by a factor made from the origins before its own (:mod:`.adaptive`)."""
    if hours.empty:
        return hours
    hours = hours.sort_values(["origin", "series", "forecaster", "h"], ignore_index=True)
    levels = panel.observed.mean()
    taus = settings.quantiles
    q = np.column_stack([hours[f"native_{t}"].to_numpy(dtype=float) for t in taus])
    conformal = np.zeros(len(hours), dtype=bool)
    point = hours["point"].to_numpy(dtype=float)
    actual = hours["actual"].to_numpy(dtype=float)
    lead = hours["h"].to_numpy(dtype=int)
    own: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
    group: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}

    def sample(parts: list[tuple[np.ndarray, np.ndarray]]) -> Sample:
        values = np.concatenate([r for r, _ in parts]) if parts else np.empty(0)
        leads = np.concatenate([h for _, h in parts]) if parts else np.empty(0, dtype=int)
        return Sample.of(values, leads if settings.by_horizon else None)

    state = (
        SpreadState(adapt, {s: peer_group(s) for s in hours["series"].unique()}) if adapt else None
    )
    edges = (taus.index(0.025), taus.index(0.975)) if {0.025, 0.975} <= set(taus) else None
    for _origin, at_origin in hours.groupby("origin", sort=True):
        pending: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        # a peer group's residuals sorted once per origin, shared by the group's series
        peer_samples: dict[tuple[str, str], Sample] = {}
        groups = at_origin.groupby(["series", "forecaster"], sort=False).indices
        for key, rows in groups.items():
            series, name = cast(tuple[str, str], key)
            idx = at_origin.index[rows]
            offset = offset_for(levels.get(series, 0.0))
            mine = own.get((series, name), [])
            if sum(len(r) for r, _ in mine) >= settings.min_residuals:
                gkey = (peer_group(series), name)
                if gkey not in peer_samples:
                    peer_samples[gkey] = sample(group.get(gkey, []))
                rq = ResidualQuantiles.fit_samples(
                    sample(mine), peer_samples[gkey], offset, taus, settings.by_horizon
                )
                if state is not None:
                    rq = rq.spread_by(state.factor(series, name))
                widened = rq.apply(point[idx], lead[idx])
                q[idx] = np.column_stack([widened[t] for t in taus])
                conformal[idx] = True
            ok = np.isfinite(actual[idx]) & np.isfinite(point[idx])
            res = log_residuals(actual[idx], point[idx], offset)
            pending.append((series, name, res, lead[idx][ok]))
            if state is not None:
                hits = None
                if conformal[idx].all() and edges is not None:
                    band = q[idx][ok]
                    a = actual[idx][ok]
                    hits = (a >= band[:, edges[0]]) & (a <= band[:, edges[1]])
                state.observe(series, name, res, lead[idx][ok], hits, settings.horizon)
        for series, name, res, h in pending:  # known only after this origin's fold is over
            own.setdefault((series, name), []).append((res, h))
            group.setdefault((peer_group(series), name), []).append((res, h))
        if state is not None:
            state.close_origin()
    for i, tau in enumerate(taus):
        hours[quantile_column(tau)] = q[:, i]
    hours["quantile_method"] = np.where(conformal, "conformal", "native")
    offsets = hours["series"].map(lambda s: offset_for(levels.get(s, 0.0)))
    hours["log_residual"] = np.log(
        (hours["actual"] + offsets) / (hours["point"].clip(lower=0) + offsets)
    )
    return hours


NOWCAST_KEY = ["series", "forecaster", "origin", "h"]


def calibrate_nowcast(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    readings: pd.Series,
    params: NowcastParams | None = None,
) -> pd.DataFrame:
    """Add the nowcast of every backtest row whose origin hour has a reading (``readings``:
    the first ``params.minutes`` minutes of hour ``origin``, indexed by (series, origin)):
    ``nowcast_point``, its conformal quantiles ``nowcast_q_<τ>`` and ``nowcast_log_residual``.

    The quantiles come from earlier folds' residuals *of nowcasts* (:func:`_calibrate` run
    on the nowcast points: per lead, own and peers mixed, strictly before each origin), not
    from the residuals of forecasts that had not read the hour: those are wider than a
    nowcast's errors at the first leads. Before enough nowcast residuals exist, the band is
    the forecast's own quantiles moved by the nowcast's factor."""
    params = params or NowcastParams()
    if hours.empty or readings.empty:
        return hours
    levels = panel.observed.mean()
    rows = hours[[*NOWCAST_KEY, "point", "actual"]].copy()
    rows["offset"] = rows["series"].map(lambda s: offset_for(levels.get(s, 0.0)))
    key = pd.MultiIndex.from_frame(rows[["series", "origin"]])
    read = readings.reindex(key).to_numpy(dtype=float)
    has = np.isfinite(read)
    if not has.any():
        return hours
    point = rows["point"].to_numpy(dtype=float)
    # the lead-1 point of each (series, forecaster, origin) is what the reading corrects
    nowcast = apply_rows_by_forecaster(rows, readings, params)
    offset = rows["offset"].to_numpy(dtype=float)
    factor = (nowcast + offset) / (np.maximum(point, 0.0) + offset)
    sub = hours[has].copy()
    sub["point"] = nowcast[has]
    for tau in settings.quantiles:
        native = sub[f"native_{tau}"].to_numpy(dtype=float)
        sub[f"native_{tau}"] = np.maximum((native + offset[has]) * factor[has] - offset[has], 0)
    sub = sub.drop(
        columns=[c for c in sub.columns if c.startswith("q_") or c == "log_residual"]
        + ["quantile_method"],
        errors="ignore",
    )
    cal = _calibrate(sub, panel, settings)
    keep = {"point": "nowcast_point", "log_residual": "nowcast_log_residual"}
    keep |= {quantile_column(t): "nowcast_" + quantile_column(t) for t in settings.quantiles}
    keep |= {"quantile_method": "nowcast_quantile_method"}
    cal = cal[NOWCAST_KEY + list(keep)].rename(columns=keep)
    return hours.merge(cal, on=NOWCAST_KEY, how="left")


def apply_rows_by_forecaster(
    rows: pd.DataFrame, readings: pd.Series, params: NowcastParams
) -> np.ndarray:
    """:func:`planner.forecast.nowcast.apply_rows` for rows of several forecasters (each
    corrected from its own lead-1 point)."""
    out = np.full(len(rows), np.nan)
    for _, idx in rows.groupby("forecaster", sort=False).indices.items():
        part = rows.iloc[idx]
        out[idx] = apply_rows(part.reset_index(drop=True), readings, params)
    return out


def _scales(panel: Panel, origins: list[pd.Timestamp]) -> pd.DataFrame:
    """In-sample MAE of seasonal naive (sp = 24) over known hours before each origin
    (rows: origins, columns: series); NaN where undefined or zero."""
    y = panel.observed
    diff = (y - y.shift(24)).abs()
    total = diff.fillna(0.0).cumsum()
    count = diff.notna().cumsum()
    before = [o - pd.Timedelta(hours=1) for o in origins]
    scale = total.reindex(before) / count.reindex(before)
    scale.index = pd.DatetimeIndex(origins, name="origin")
    return scale.where(scale > 0)


def _pinball(actual: np.ndarray, q: np.ndarray, tau: float) -> np.ndarray:
    diff = actual - q
    loss: np.ndarray = np.maximum(tau * diff, (tau - 1) * diff)
    return loss


def _score(hours: pd.DataFrame, panel: Panel, settings: BacktestSettings) -> pd.DataFrame:
    if hours.empty:
        return pd.DataFrame()
    known = hours[hours["actual"].notna()].copy()
    scales = _scales(panel, sorted(known["origin"].unique())).stack(future_stack=True)
    scales.index.names = ["origin", "series"]
    known["scale"] = scales.reindex(
        pd.MultiIndex.from_frame(known[["origin", "series"]])
    ).to_numpy()
    known["abs_err"] = (known["actual"] - known["point"]).abs()
    pin = np.mean(
        [
            _pinball(known["actual"].to_numpy(), known[quantile_column(t)].to_numpy(), t)
            for t in settings.quantiles
        ],
        axis=0,
    )
    known["pinball"] = pin
    known["in_band"] = (known["actual"] >= known["q_0_025"]) & (known["actual"] <= known["q_0_975"])
    known["below_p95"] = known["actual"] <= known["q_0_95"]
    known["conformal"] = known["quantile_method"] == "conformal"
    folds = (
        known.groupby(["series", "forecaster", "origin"], sort=False)
        .agg(
            hours=("abs_err", "size"),
            mae=("abs_err", "mean"),
            scale=("scale", "first"),
            pinball=("pinball", "mean"),
            in_band=("in_band", "mean"),
            below_p95=("below_p95", "mean"),
            conformal=("conformal", "all"),
        )
        .reset_index()
    )
    folds["mase"] = folds["mae"] / folds["scale"]
    folds["scaled_pinball"] = folds["pinball"] / folds["scale"]
    return folds
