"""The quantile bands of backtest rows: conformal from earlier folds, or the model's own.

Quantiles of fold k are conformal from the residuals of folds before k
(:mod:`planner.forecast.calibration`: own and peer residuals, per hour ahead) once at least
``min_residuals`` own residuals exist; before that the model's own intervals
(``predict_quantiles``) are used and the row says so. The same rule bands the nowcasts of a
backtest (:func:`calibrate_nowcast`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import pandas as pd

from planner.forecast.adaptive import BandAdapt, SpreadState
from planner.forecast.calibration import (
    Pooling,
    ResidualQuantiles,
    Sample,
    log_residuals,
    offset_for,
)
from planner.forecast.nowcast import NowcastParams, apply_rows
from planner.forecast.series import Panel, SeriesKey
from planner.quantiles import is_quantile_column, quantile_column

if TYPE_CHECKING:
    from planner.forecast.backtest import BacktestSettings

Residuals = list[tuple[np.ndarray, np.ndarray]]  # (log residuals, their leads) per fold


def peer_group(series_id: str, group: str = "tier_metric") -> str:
    """Series that share tier and metric calibrate together (see calibration); ``group``
    (:class:`~planner.forecast.calibration.Pooling`) may pool wider."""
    key = SeriesKey.parse(series_id)
    if group == "metric":
        return key.metric
    if group == "all":
        return "all"
    return f"{key.tier}|{key.metric}"


def recalibrate(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    adapt: BandAdapt | None = None,
    pool: Pooling | None = None,
) -> pd.DataFrame:
    """A backtest's hourly rows (one selection's, every series at once) with their q_<τ>
    columns made again, with the band adapted to recent origins (:mod:`.adaptive`) or not.
    Without ``adapt`` the columns are the selection's own."""
    made = [c for c in hours.columns if is_quantile_column(c)]
    return calibrate(
        hours.drop(columns=[*made, "quantile_method", "log_residual"], errors="ignore"),
        panel,
        settings,
        adapt,
        pool,
    )


class _Past:
    """The residuals of the folds already over, per (series, model) and per (peer group,
    model); a peer group's sample is sorted once per origin and shared by its series."""

    def __init__(self, by_horizon: bool, pool: Pooling | None = None) -> None:
        self.by_horizon = by_horizon
        self.pool = pool or Pooling()
        self.own: dict[tuple[str, str], Residuals] = {}
        self.group: dict[tuple[str, str], Residuals] = {}
        self.peers: dict[tuple[str, str], Sample] = {}

    def sample(self, parts: Residuals) -> Sample:
        values = np.concatenate([r for r, _ in parts]) if parts else np.empty(0)
        leads = np.concatenate([h for _, h in parts]) if parts else np.empty(0, dtype=int)
        return Sample.of(values, leads if self.by_horizon else None)

    def count(self, series: str, name: str) -> int:
        return sum(len(r) for r, _ in self.own.get((series, name), []))

    def quantiles(
        self, series: str, name: str, offset: float, taus: tuple[float, ...]
    ) -> ResidualQuantiles:
        gkey = (peer_group(series, self.pool.group), name)
        if gkey not in self.peers:
            self.peers[gkey] = self.sample(self.group.get(gkey, []))
        mine = self.sample(self.own.get((series, name), []))
        return ResidualQuantiles.fit_samples(
            mine, self.peers[gkey], offset, taus, self.by_horizon, self.pool
        )

    def close(self, pending: list[tuple[str, str, np.ndarray, np.ndarray]]) -> None:
        """An origin's fold is over: its residuals join the past."""
        for series, name, res, h in pending:
            self.own.setdefault((series, name), []).append((res, h))
            gkey = (peer_group(series, self.pool.group), name)
            self.group.setdefault(gkey, []).append((res, h))
        self.peers = {}


def calibrate(
    hours: pd.DataFrame,
    panel: Panel,
    settings: BacktestSettings,
    adapt: BandAdapt | None = None,
    pool: Pooling | None = None,
) -> pd.DataFrame:
    """Add q_<τ> columns: conformal from earlier folds (own and peer residuals) once at least
    ``min_residuals`` own residuals exist, else the model's native intervals. ``adapt``: each
    conformal band spread by a factor made from the origins before its own (:mod:`.adaptive`);
    ``pool``: how own and peer residuals mix (:class:`~.calibration.Pooling`)."""
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
    past = _Past(settings.by_horizon, pool)
    state = (
        SpreadState(adapt, {s: peer_group(s) for s in hours["series"].unique()}) if adapt else None
    )
    edges = (taus.index(0.025), taus.index(0.975)) if {0.025, 0.975} <= set(taus) else None
    for _origin, at_origin in hours.groupby("origin", sort=True):
        pending: list[tuple[str, str, np.ndarray, np.ndarray]] = []
        groups = at_origin.groupby(["series", "forecaster"], sort=False).indices
        for key, rows in groups.items():
            series, name = cast(tuple[str, str], key)
            idx = at_origin.index[rows]
            offset = offset_for(levels.get(series, 0.0))
            if past.count(series, name) >= settings.min_residuals:
                rq = past.quantiles(series, name, offset, taus)
                if state is not None:
                    rq = rq.spread_by(state.factor(series, name))
                widened = rq.apply(point[idx], lead[idx])
                q[idx] = np.column_stack([widened[t] for t in taus])
                conformal[idx] = True
            ok = np.isfinite(actual[idx]) & np.isfinite(point[idx])
            res = log_residuals(actual[idx], point[idx], offset)
            pending.append((series, name, res, lead[idx][ok]))
            if state is not None:
                banded = edges is not None and conformal[idx].all()
                hits = _in_band(actual[idx][ok], q[idx][ok], edges) if banded else None
                state.observe(series, name, res, lead[idx][ok], hits, settings.horizon)
        past.close(pending)  # known only after this origin's fold is over
        if state is not None:
            state.close_origin()
    return _with_bands(hours, q, conformal, taus, levels)


def _in_band(actual: np.ndarray, band: np.ndarray, edges: tuple[int, int] | None) -> np.ndarray:
    assert edges is not None
    return (actual >= band[:, edges[0]]) & (actual <= band[:, edges[1]])


def _with_bands(
    hours: pd.DataFrame,
    q: np.ndarray,
    conformal: np.ndarray,
    taus: tuple[float, ...],
    levels: pd.Series,
) -> pd.DataFrame:
    """The rows with their q_<τ> columns, how they were made, and each row's log residual."""
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

    The quantiles come from earlier folds' residuals *of nowcasts* (:func:`calibrate` run
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
    cal = calibrate(sub, panel, settings)
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
