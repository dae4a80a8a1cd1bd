"""The quantile bands of backtest rows: conformal from earlier folds, or the model's own.

Quantiles of fold k are conformal from the residuals of folds before k
(:mod:`planner.forecast.calibration`: own and peer residuals, per hour ahead) once at least
``min_residuals`` own residuals exist; before that the model's own intervals
(``predict_quantiles``) are used and the row says so. The same rule bands the nowcasts of a
backtest (:func:`calibrate_nowcast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np
import pandas as pd

from planner.forecast.calibration import (
    Pooling,
    ResidualQuantiles,
    Sample,
    log_residuals,
    offset_for,
    offsets_at,
    peer_group,
)
from planner.forecast.dayshift import DayShifts, within_day
from planner.forecast.nowcast import NowcastParams, apply_rows, reading_values
from planner.forecast.series import Panel
from planner.quantiles import is_quantile_column, quantile_column

if TYPE_CHECKING:
    from planner.forecast.backtest import BacktestSettings

Residuals = list[tuple[np.ndarray, np.ndarray]]  # (log residuals, their leads) per fold
_HOUR = np.timedelta64(1, "h")


def target_hours(origin: object, leads: np.ndarray) -> np.ndarray:
    """The hour each lead forecasts from ``origin`` (lead 1: the origin's own hour)."""
    at = np.datetime64(origin, "ns")  # type: ignore[call-overload]
    out: np.ndarray = at + (leads.astype(np.int64) - 1) * _HOUR
    return out


K = TypeVar("K")
Queued = list[tuple[K, tuple[np.ndarray, ...]]]  # (owner, (target hours, aligned arrays ...))


def realised(queue: Queued[K], origin: object) -> tuple[Queued[K], Queued[K]]:
    """Queued rows split by target hour (each entry's first array): those before ``origin``
    and those still to come, every array of an entry cut alike (an entry with no row on a
    side is left out of it)."""
    now = np.datetime64(origin, "ns")  # type: ignore[call-overload]
    over: Queued[K] = []
    waiting: Queued[K] = []
    for owner, arrays in queue:
        done = arrays[0] < now
        if done.any():
            over.append((owner, tuple(a[done] for a in arrays)))
        if not done.all():
            waiting.append((owner, tuple(a[~done] for a in arrays)))
    return over, waiting


def recalibrate(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    pool: Pooling | None = None,
    shifts: DayShifts | None = None,
) -> pd.DataFrame:
    """A backtest's hourly rows (one selection's, every series at once) with their q_<τ>
    columns made again, pooled as ``pool`` says (:class:`.Pooling`), with the day shifts
    ``shifts`` (:mod:`planner.forecast.dayshift`). Without either the columns are the
    selection's own default band."""
    made = [c for c in hours.columns if is_quantile_column(c)]
    return calibrate(
        hours.drop(columns=[*made, "quantile_method", "log_residual"], errors="ignore"),
        panel,
        settings,
        pool,
        shifts,
    )


class _Past:
    """The residuals of the hours already over, per (series, model) and per (peer group,
    model); a peer group's sample is sorted once per origin and shared by its series."""

    def __init__(
        self, by_horizon: bool, pool: Pooling | None = None, shifts: DayShifts | None = None
    ) -> None:
        self.by_horizon = by_horizon
        self.pool = pool or Pooling()
        # the day-shift band (planner.forecast.dayshift): the selection's day shifts, and
        # the within-day parts of the residuals over
        self.shifts = shifts
        self.within = within_day(shifts.setting) if shifts is not None else None
        self.origin: object = None
        self.own: dict[tuple[str, str], Residuals] = {}
        self.group: dict[tuple[str, str], Residuals] = {}
        self.peers: dict[tuple[str, str], Sample] = {}
        # an origin's residuals wait here until their target hours are over
        # ((series, model, fold origin), (targets, res, leads))
        self.pending: Queued[tuple[str, str, object]] = []

    def sample(self, parts: Residuals) -> Sample:
        values = np.concatenate([r for r, _ in parts]) if parts else np.empty(0)
        leads = np.concatenate([h for _, h in parts]) if parts else np.empty(0, dtype=int)
        return Sample.of(values, leads if self.by_horizon else None)

    def count(self, series: str, name: str) -> int:
        return sum(len(r) for r, _ in self.own.get((series, name), []))

    def quantiles(
        self,
        series: str,
        name: str,
        offset: float,
        taus: tuple[float, ...],
    ) -> ResidualQuantiles:
        if self.shifts is not None and self.within is not None:
            known = self.shifts.before(self.origin, name, series)
            if known is not None:  # enough day shifts over: the day-shift band
                group = peer_group(series, self.pool.group)
                grid = self.shifts.setting.levels
                return self.within.quantiles(
                    series, name, group, offset, taus, known, grid, self.by_horizon
                )
        gkey = (peer_group(series, self.pool.group), name)
        if gkey not in self.peers:
            self.peers[gkey] = self.sample(self.group.get(gkey, []))
        mine = self.sample(self.own.get((series, name), []))
        return ResidualQuantiles.fit_samples(
            mine, self.peers[gkey], offset, taus, self.by_horizon, self.pool
        )

    def add(
        self, series: str, name: str, res: np.ndarray, lead: np.ndarray, origin: object
    ) -> None:
        self.pending.append(((series, name, origin), (target_hours(origin, lead), res, lead)))

    def resolve(self, origin: object) -> None:
        """Residuals whose target hour is before ``origin`` join the past (with daily
        origins and 24 leads: every earlier fold, whole)."""
        over, self.pending = realised(self.pending, origin)
        self.origin = origin
        waiting = {owner for owner, _ in self.pending}
        for (series, name, fold), (_, res, lead) in over:
            self.own.setdefault((series, name), []).append((res, lead))
            gkey = (peer_group(series, self.pool.group), name)
            self.group.setdefault(gkey, []).append((res, lead))
            if self.within is not None:
                self.within.add(series, name, gkey[0], res, lead, fold)
                if (series, name, fold) not in waiting:  # its last part: wholly over
                    self.within.fold_over(series, name, fold)
        self.peers = {}


class _Bands:
    """One calibration's state: the quantile table being filled and the past residuals,
    advanced one origin at a time."""

    def __init__(
        self,
        hours: pd.DataFrame,
        settings: BacktestSettings,
        pool: Pooling | None,
        shifts: DayShifts | None = None,
    ):
        self.settings, self.taus = settings, settings.quantiles
        self.q = np.column_stack([hours[f"native_{t}"].to_numpy(dtype=float) for t in self.taus])
        self.conformal = np.zeros(len(hours), dtype=bool)
        self.point = hours["point"].to_numpy(dtype=float)
        self.actual = hours["actual"].to_numpy(dtype=float)
        self.lead = hours["h"].to_numpy(dtype=int)
        self.past = _Past(settings.by_horizon, pool, shifts)

    def band(self, series: str, name: str, idx: np.ndarray, offset: float, origin: object) -> None:
        """The rows ``idx`` of one series and forecaster at ``origin``: conformal once enough
        residuals are over, then queued as residuals for later origins."""
        if self.past.count(series, name) >= self.settings.min_residuals:
            rq = self.past.quantiles(series, name, offset, self.taus)
            made = rq.apply(self.point[idx], self.lead[idx])
            self.q[idx] = np.column_stack([made[t] for t in self.taus])
            self.conformal[idx] = True
        ok = np.isfinite(self.actual[idx]) & np.isfinite(self.point[idx])
        res, lead = log_residuals(self.actual[idx], self.point[idx], offset), self.lead[idx][ok]
        self.past.add(series, name, res, lead, origin)


def calibrate(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    pool: Pooling | None = None,
    shifts: DayShifts | None = None,
    conformal: bool = True,
) -> pd.DataFrame:
    """Add q_<τ> columns: conformal from earlier folds (own and peer residuals whose target
    hour is over) once at least ``min_residuals`` own residuals exist, else the model's native
    intervals. ``pool``: how own and peer residuals mix (:class:`.Pooling`); ``shifts``: the
    selection's day shifts, for the day-shift band (:mod:`planner.forecast.dayshift`; an
    origin with too few of them over keeps the band in use); ``conformal`` False: no origin
    is banded, every row keeps the model's own interval (:func:`native_bands`)."""
    if hours.empty:
        return hours
    hours = hours.sort_values(["origin", "series", "forecaster", "h"], ignore_index=True)
    offsets = origin_offsets(hours, panel)
    run = _Bands(hours, settings, pool, shifts)
    for origin, at_origin in hours.groupby("origin", sort=True) if conformal else ():
        run.past.resolve(origin)
        for key, rows in at_origin.groupby(["series", "forecaster"], sort=False).indices.items():
            series, name = cast(tuple[str, str], key)
            idx = at_origin.index[rows].to_numpy()
            run.band(series, name, idx, float(offsets[idx[0]]), origin)
    return _with_bands(hours, run.q, run.conformal, settings.quantiles, offsets)


def native_bands(hours: pd.DataFrame, panel: Panel, settings: BacktestSettings) -> pd.DataFrame:
    """The rows as :func:`calibrate` leaves them (same order, offsets and log residuals), every
    q_<τ> the model's own interval: for a selection whose day-shift band makes every row's
    band again once all chunks are backtested
    (:func:`planner.forecast.reband.reband_selection`), so the band in use is not made first
    for nothing. The log residuals (which feed the day shifts, the stored bands and the
    re-band) are :func:`calibrate`'s: they never depend on a band."""
    return calibrate(hours, panel, settings, conformal=False)


def origin_offsets(hours: pd.DataFrame, panel: Panel) -> np.ndarray:
    """Each row's calibration offset at the row's origin
    (:func:`~planner.forecast.calibration.offsets_at`: from the hours before it, never after;
    the selection's live bands are applied at the same function's offset at ``as_of``)."""
    origins = pd.DatetimeIndex(sorted(hours["origin"].unique()))
    offsets = offsets_at(panel.observed, origins).stack()
    key = pd.MultiIndex.from_arrays([pd.DatetimeIndex(hours["origin"]), hours["series"]])
    out: np.ndarray = offsets.reindex(key).fillna(offset_for(0.0)).to_numpy(dtype=float)
    return out


def _with_bands(
    hours: pd.DataFrame,
    q: np.ndarray,
    conformal: np.ndarray,
    taus: tuple[float, ...],
    offsets: np.ndarray,
) -> pd.DataFrame:
    """The rows with their q_<τ> columns, how they were made, and each row's log residual
    (with the row's own offset)."""
    for i, tau in enumerate(taus):
        hours[quantile_column(tau)] = q[:, i]
    hours["quantile_method"] = np.where(conformal, "conformal", "native")
    actual = hours["actual"].to_numpy(dtype=float)
    point = np.maximum(hours["point"].to_numpy(dtype=float), 0.0)
    hours["log_residual"] = np.log((actual + offsets) / (point + offsets))
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
    the minutes of hour ``origin`` the hourly job had read when it ran, indexed by (series,
    origin): ``flows.forecasting.origin_readings``):
    ``nowcast_point``, its conformal quantiles ``nowcast_q_<τ>``, ``nowcast_log_residual``
    and the reading itself (``nowcast_reading``).

    The quantiles come from earlier folds' residuals *of nowcasts* (:func:`calibrate` run
    on the nowcast points: per lead, own and peers mixed, strictly before each origin), not
    from the residuals of forecasts that had not read the hour: those are wider than a
    nowcast's errors at the first leads. Before enough nowcast residuals exist, the band is
    the forecast's own quantiles moved by the nowcast's factor."""
    params = params or NowcastParams()
    if hours.empty or readings.empty:
        return hours
    corrected = _nowcast_points(hours, panel, readings, params)
    if corrected is None:
        return hours
    cal = calibrate(_moved_forecasts(hours, settings, *corrected), panel, settings)
    keep = {"point": "nowcast_point", "log_residual": "nowcast_log_residual"}
    keep |= {quantile_column(t): "nowcast_" + quantile_column(t) for t in settings.quantiles}
    keep |= {"quantile_method": "nowcast_quantile_method"}
    cal = cal[NOWCAST_KEY + list(keep)].rename(columns=keep)
    out = hours.merge(cal, on=NOWCAST_KEY, how="left")
    reading = reading_values(readings, pd.MultiIndex.from_frame(out[["series", "origin"]]))
    out["nowcast_reading"] = reading
    # leads ≥ 2 of a 0 reading publish the forecast and its band (kept out of the nowcasts'
    # residual pool: no nowcast_log_residual)
    same = (reading == 0) & (out["h"].to_numpy() > 1)
    for col, source in keep.items():
        if source != "nowcast_log_residual":
            out.loc[same, source] = out.loc[same, col]
    return out


def _nowcast_points(
    hours: pd.DataFrame, panel: Panel, readings: pd.Series, params: NowcastParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Per backtest row: whether its origin hour has a reading, its nowcast point, and the
    factor and offset that move its forecast to the nowcast (on the offset scale: (nowcast
    + offset) / (point + offset)); None when no row's origin has a reading."""
    rows = hours[[*NOWCAST_KEY, "point", "actual"]].copy()
    rows["offset"] = origin_offsets(rows, panel)
    key = pd.MultiIndex.from_frame(rows[["series", "origin"]])
    reading = reading_values(readings, key)  # 0: nothing arrived while its region was read
    # a 0 reading moves lead 1 only: later leads are the forecast, banded as the forecast
    has = (reading > 0) | ((reading == 0) & (rows["h"].to_numpy() == 1))
    if not has.any():
        return None
    point = rows["point"].to_numpy(dtype=float)
    # the lead-1 point of each (series, forecaster, origin) is what the reading corrects
    nowcast = apply_rows_by_forecaster(rows, readings, params)
    offset = rows["offset"].to_numpy(dtype=float)
    factor = (nowcast + offset) / (np.maximum(point, 0.0) + offset)
    return has, nowcast, factor, offset


def _moved_forecasts(
    hours: pd.DataFrame,
    settings: BacktestSettings,
    has: np.ndarray,
    nowcast: np.ndarray,
    factor: np.ndarray,
    offset: np.ndarray,
) -> pd.DataFrame:
    """The rows with a reading as :func:`calibrate` takes them: the nowcast as the point,
    the forecaster's native quantiles moved by the nowcast's factor (the band before enough
    nowcast residuals exist), the forecast's calibrated columns dropped."""
    sub = hours[has].copy()
    sub["point"] = nowcast[has]
    for tau in settings.quantiles:
        native = sub[f"native_{tau}"].to_numpy(dtype=float)
        sub[f"native_{tau}"] = np.maximum((native + offset[has]) * factor[has] - offset[has], 0)
    return sub.drop(
        columns=[c for c in sub.columns if c.startswith("q_") or c == "log_residual"]
        + ["quantile_method"],
        errors="ignore",
    )


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
