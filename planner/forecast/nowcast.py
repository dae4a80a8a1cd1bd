"""Nowcasting the hour in progress from its minutes so far.

The hourly job forecasts from the newest complete hour (origin ``t``: hours before ``t`` are
known) and plans about 20 minutes before the next hour, when the hour in progress (lead 1) has
already shown ``minutes`` minutes. The hour the plan carries out is lead 2. The minutes so far
give a noisy reading ``p`` of lead 1; its log residual against the lead-1 forecast,

    r₀ = log((p + c) / (ŷ₁ + c)) − b_m,        clipped to ±``max_abs``,

(``c`` the series' calibration offset, ``b_m`` the metric's bias: the busiest of 40 minutes is
below the busiest of 60) is carried to lead ``h`` ≥ 2 with a weight that decays with the lead:

    ŷ_h ← (ŷ_h + c) · exp(w_m · ρ^(h−1) · r₀) − c,    clipped at 0.

Lead 1, the hour the reading is two thirds of, has its own weight, bias and clip
(``first_*``): ``ŷ₁ ← (ŷ₁ + c) · exp(w¹_m · r¹₀) − c`` with ``r¹₀`` clipped to ±3, not ±1
(session 33: with the ±1 clip and the 40-min peak bias the published lead 1 scored below the
reading alone). A series with no arrival in the minutes read while its region was read
(other series of the region had arrivals) reads 0 (:func:`reading_values`): lead 1 follows
it, later leads keep the forecast and its band (a quiet start says little of the next hours:
carried, it cost lead 2 on m-mid). A region with no arrival at all is treated as not read
(its ingest may lag the run minute): no nowcast for its series, and a warning.

All weights, ``ρ`` and the biases were tuned on the m-mid ServeGen log only
(bench/forecast_accuracy.py reports the effect on m-large clients). Nothing after
``t + minutes`` is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planner.forecast.series import METRICS, SEP

log = logging.getLogger(__name__)

MINUTES = 40  # 60 - planner.plan_lead_min's default (20): the hourly job's cron minute


# Tuned on the m-mid log (bench/forecast_accuracy.py --logs m-mid:7 --tune-nowcast: grid over
# weight 0..1 and decay 0.5..0.95 per metric, pooled 1-24 MASE; bias: median r₀ there). A weight
# of 1 trusts the 40-minute reading fully for the hour in progress; the grid stops there.
def _default_weight() -> dict[str, float]:
    return {"token_rate": 1.0, "request_rate": 0.9, "peak_token_rate": 1.0}


def _default_decay() -> dict[str, float]:
    return {"token_rate": 0.8, "request_rate": 0.8, "peak_token_rate": 0.7}


def _default_bias() -> dict[str, float]:
    return {"token_rate": 0.0, "request_rate": 0.0, "peak_token_rate": -0.163}


# Lead 1 (session 33, m-mid seed 7 only, grid weight 0.7..1.0 × clip 1, 2, 3, none × peak
# bias -0.163 or 0 on lead-1 MASE): the reading nearly as is, the request count shrunk a
# little (a 40-minute count of a sparse series is noisy), no peak bias.
def _default_first_weight() -> dict[str, float]:
    return {"token_rate": 1.0, "request_rate": 0.9, "peak_token_rate": 1.0}


@dataclass(frozen=True)
class NowcastParams:
    """``weight``/``bias``/``decay``/``max_abs``: the correction carried to leads ≥ 2;
    ``first_weight``/``first_bias``/``first_max_abs``: lead 1 (the hour read)."""

    weight: dict[str, float] = field(default_factory=_default_weight)
    bias: dict[str, float] = field(default_factory=_default_bias)
    decay: dict[str, float] = field(default_factory=_default_decay)
    max_abs: float = 1.0
    first_weight: dict[str, float] = field(default_factory=_default_first_weight)
    first_bias: dict[str, float] = field(default_factory=dict)
    first_max_abs: float = 3.0

    def lead_one(self) -> NowcastParams:
        """The parameters lead 1 is corrected with, as :func:`correction` takes them."""
        return NowcastParams(
            weight=self.first_weight, bias=self.first_bias, max_abs=self.first_max_abs
        )


def partial_values(partial: pd.DataFrame, minutes: int) -> pd.DataFrame:
    """Wide frame (index: hour, columns: series ids) of the metrics read from the first
    ``minutes`` minutes of each hour (rows of ``sql/forecast/partial_hours.sql``)."""
    if partial.empty:
        return pd.DataFrame()
    seconds = 60.0 * minutes
    values = {
        "token_rate": partial["tokens"] / seconds,
        "request_rate": partial["requests"] / seconds,
        "peak_token_rate": partial["peak_minute_token_rate"],
    }
    frames = []
    base = partial["region"] + SEP + partial["model"] + SEP + partial["tier"] + SEP
    for metric in METRICS:
        frames.append(
            pd.DataFrame(
                {"hour": partial["hour"], "series": base + metric, "value": values[metric]}
            )
        )
    long = pd.concat(frames, ignore_index=True)
    wide = long.pivot_table(index="hour", columns="series", values="value", aggfunc="sum")
    wide.index = pd.DatetimeIndex(wide.index)
    return wide


def correction(
    lead1: np.ndarray, reading: np.ndarray, offset: np.ndarray, metric: str, params: NowcastParams
) -> np.ndarray:
    """r₀ per row (0 where the reading is missing)."""
    r0 = np.log((reading + offset) / (np.maximum(lead1, 0.0) + offset)) - params.bias.get(
        metric, 0.0
    )
    r0 = np.where(np.isfinite(r0), r0, 0.0)
    out: np.ndarray = np.clip(r0, -params.max_abs, params.max_abs)
    return out


def apply(
    point: np.ndarray,
    reading: float | None,
    offset: float,
    metric: str,
    params: NowcastParams | None = None,
) -> np.ndarray:
    """One series' point forecast (leads 1..H) corrected by the minutes-so-far reading
    (``None``: the hour was not read; 0: nothing of this series arrived in it)."""
    params = params or NowcastParams()
    point = np.asarray(point, dtype=float)
    if reading is None or not np.isfinite(reading) or len(point) == 0:
        return point
    one = (point[:1], np.array([reading]), np.array([offset]), metric)
    shift = _shifts(
        np.arange(1, len(point) + 1),
        float(correction(*one, params.lead_one())[0]),
        float(correction(*one, params)[0]) if reading > 0 else 0.0,
        metric,
        params,
    )
    out: np.ndarray = np.maximum((np.maximum(point, 0.0) + offset) * np.exp(shift) - offset, 0.0)
    return out


def _shifts(
    lead: np.ndarray,
    first: np.ndarray | float,
    carried: np.ndarray | float,
    metric: str,
    params: NowcastParams,
) -> np.ndarray:
    """The log shift of each lead: lead 1 by its own weight, later leads by the carried
    correction decaying with the lead."""
    w = params.weight.get(metric, 0.0) * params.decay.get(metric, 0.0) ** (lead - 1.0)
    out: np.ndarray = np.where(lead == 1, params.first_weight.get(metric, 0.0) * first, w * carried)
    return out


def reading_values(readings: pd.Series, key: pd.MultiIndex) -> np.ndarray:
    """``readings`` (indexed by (series, origin)) at ``key``. A series with no reading at an
    origin reads 0 only if its own region was read then (some series of that region had
    arrivals in the minutes read); a region with none (its ingest may lag the run minute) is
    treated as unread, with a warning naming it: its series get NaN (no nowcast), as do
    those at an origin not read at all."""
    values = readings.reindex(key).to_numpy(dtype=float)
    if len(readings) == 0:
        return values
    missing = np.isnan(values)
    region_read = _region_hours(readings.index).unique().get_indexer(_region_hours(key)) >= 0
    hours = pd.Index(readings.index.get_level_values(-1).unique())
    unread = missing & ~region_read & (hours.get_indexer(key.get_level_values(-1)) >= 0)
    if unread.any():
        regions = sorted(set(_region_hours(key)[unread].get_level_values(0)))
        log.warning(
            "nowcast: no arrival in the minutes read of region(s) %s at %d origin(s) where "
            "others had some: treated as not read (no nowcast), not as 0",
            ", ".join(regions),
            len(set(key.get_level_values(-1)[unread])),
        )
    out: np.ndarray = np.where(missing & region_read, 0.0, values)
    return out


def series_readings(
    readings: dict[str, float] | None, series: list[str]
) -> dict[str, float | None]:
    """The live hour in progress: each of ``series``' reading (:func:`reading_values`'s rule:
    0 if its region was read and nothing of it arrived; None if not read)."""
    if not readings:
        return dict.fromkeys(series)
    at = pd.Timestamp(0)
    index = pd.MultiIndex.from_arrays([list(readings), [at] * len(readings)])
    key = pd.MultiIndex.from_arrays([series, [at] * len(series)])
    values = reading_values(pd.Series(list(readings.values()), index=index, dtype=float), key)
    return {s: None if np.isnan(v) else float(v) for s, v in zip(series, values, strict=True)}


def _region_hours(index: pd.Index) -> pd.MultiIndex:
    """(region, origin) of each (series, origin) of ``index``."""
    region = index.get_level_values(0).str.split(SEP, n=1).str[0]
    return pd.MultiIndex.from_arrays([region, index.get_level_values(-1)])


def apply_rows(rows: pd.DataFrame, readings: pd.Series, params: NowcastParams) -> np.ndarray:
    """:func:`apply` over backtest rows (columns series, origin, h, point, offset); readings
    indexed by (series, origin): the minutes of the origin's hour read before the hourly job
    ran (``ForecastSettings.nowcast_minutes``; a series missing at a read origin reads 0:
    :func:`reading_values`)."""
    key = pd.MultiIndex.from_frame(rows[["series", "origin"]])
    lead1 = rows[rows["h"] == 1].set_index(["series", "origin"])["point"]
    first = lead1.reindex(key).to_numpy(dtype=float)
    reading = reading_values(readings, key)
    offset = rows["offset"].to_numpy(dtype=float)
    metric = rows["series"].str.rsplit(SEP, n=1).str[1].to_numpy()
    lead = rows["h"].to_numpy(dtype=float)
    shift = np.zeros(len(rows))
    for m in np.unique(metric):
        sel = metric == m
        args = (first[sel], reading[sel], offset[sel], str(m))
        carried = np.where(reading[sel] > 0, correction(*args, params), 0.0)
        one = correction(*args, params.lead_one())
        shift[sel] = _shifts(lead[sel], one, carried, str(m), params)
    point = np.maximum(rows["point"].to_numpy(dtype=float), 0.0)
    out: np.ndarray = np.maximum((point + offset) * np.exp(shift) - offset, 0.0)
    return out
