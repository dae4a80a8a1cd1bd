"""From the hourly demand mart to forecastable series: one column per (region, model, tier,
metric), an hourly index, NaN where demand is unknown, and an imputed copy for fitting.

What counts as unknown (a collection gap is not zero demand):

1. the mart's ``coverage`` is below ``MIN_COVERAGE``: no ingested file spans enough of the hour;
2. every series of the platform is zero in an hour that is covered: the log stopped, not the
   users (seen in ServeGen m-mid);
3. a series is zero where its recent volume makes zero practically impossible: the median
   request count of the same hour on the previous days is at least ``IMPLAUSIBLE_ZERO_REQUESTS``
   (Poisson probability of zero below e^-20).

Unknown hours are imputed for fitting (same hour of the previous day, else linear) and excluded
from every score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.utc import naive_utc

METRICS = ("token_rate", "request_rate", "peak_token_rate")
MIN_COVERAGE = 0.25
IMPLAUSIBLE_ZERO_REQUESTS = 20.0
SEP = "|"


@dataclass(frozen=True)
class SeriesKey:
    region: str
    model: str
    tier: str
    metric: str

    @property
    def id(self) -> str:
        return SEP.join((self.region, self.model, self.tier, self.metric))

    @classmethod
    def parse(cls, series_id: str) -> SeriesKey:
        region, model, tier, metric = series_id.split(SEP)
        return cls(region, model, tier, metric)


@dataclass(frozen=True)
class Panel:
    """Wide hourly frames (index: hour start, UTC naive; columns: series ids)."""

    observed: pd.DataFrame  # NaN where unknown
    filled: pd.DataFrame  # observed with unknown hours imputed (for fitting)

    @property
    def series(self) -> list[str]:
        return list(self.observed.columns)

    def observed_hours(self) -> pd.Series:
        return self.observed.notna().sum()

    def subset(self, columns: list[str]) -> Panel:
        return Panel(self.observed[columns], self.filled[columns])

    def until(self, end: pd.Timestamp) -> Panel:
        """Hours strictly before ``end`` (what is known at origin ``end``)."""
        keep = self.observed.index < end
        return Panel(self.observed.loc[keep], self.filled.loc[keep])


def metric_frame(demand: pd.DataFrame) -> pd.DataFrame:
    """Long frame (hour, series id, value, requests, coverage) for every metric."""
    d = demand.copy()
    cover = d["coverage"].clip(lower=1e-9)
    d["request_rate"] = d["requests"] / (3600.0 * cover)
    d["peak_token_rate"] = d["peak_minute_token_rate"]
    parts = []
    for metric in METRICS:
        ids = d["region"] + SEP + d["model"] + SEP + d["tier"] + SEP + metric
        parts.append(
            pd.DataFrame(
                {
                    "hour": d["hour"],
                    "series": ids,
                    "value": d[metric].astype(float),
                    "requests": d["requests"].astype(float),
                    "coverage": d["coverage"].astype(float),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def build_panel(
    demand: pd.DataFrame,
    as_of: pd.Timestamp,
    history_h: int | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> Panel:
    """Series known at ``as_of``: hours that ended by then (hour + 1 h ≤ as_of), at most
    ``history_h`` of them, unknown hours as NaN (see the module docstring)."""
    as_of = naive_utc(as_of)
    end = as_of.floor("h")
    data = demand[pd.to_datetime(demand["hour"]) < end]
    if history_h is not None:
        data = data[pd.to_datetime(data["hour"]) >= end - pd.Timedelta(hours=history_h)]
    long = metric_frame(data)
    long = long[long["series"].str.rsplit(SEP, n=1).str[1].isin(metrics)]
    if long.empty:
        empty = pd.DataFrame(index=pd.DatetimeIndex([], name="hour"))
        return Panel(empty, empty)
    start = pd.Timestamp(long["hour"].min())
    index = pd.date_range(start, end - pd.Timedelta(hours=1), freq="h", name="hour")
    value = long.pivot(index="hour", columns="series", values="value").reindex(index)
    requests = long.pivot(index="hour", columns="series", values="requests").reindex(index)
    coverage = long.pivot(index="hour", columns="series", values="coverage").reindex(index)
    unknown = coverage.isna() | (coverage < MIN_COVERAGE)
    unknown |= _platform_silent(requests, coverage)
    unknown |= _implausible_zeros(requests)
    observed = value.mask(unknown)
    observed.columns.name = None
    return Panel(observed, impute(observed))


def _platform_silent(requests: pd.DataFrame, coverage: pd.DataFrame) -> pd.DataFrame:
    total = requests.fillna(0).sum(axis=1)
    covered = (coverage.fillna(0) >= MIN_COVERAGE).any(axis=1)
    had_traffic = total.rolling(24 * 7, min_periods=1).max() > 0
    silent = (total == 0) & covered & had_traffic
    return pd.DataFrame(
        np.repeat(silent.to_numpy()[:, None], requests.shape[1], axis=1),
        index=requests.index,
        columns=requests.columns,
    )


def _implausible_zeros(requests: pd.DataFrame) -> pd.DataFrame:
    lagged = [requests.shift(24 * k) for k in range(1, 8)]
    usual = pd.concat(lagged).groupby(level=0).median()
    return (requests == 0) & (usual >= IMPLAUSIBLE_ZERO_REQUESTS)


def impute(observed: pd.DataFrame) -> pd.DataFrame:
    """Unknown hours filled from the same hour one day (then one week) before, else linearly,
    else with the series mean; leading unknown hours are back-filled."""
    filled = observed.copy()
    for lag in (24, 168, 48, 72):
        filled = filled.fillna(filled.shift(lag))
    filled = filled.interpolate(limit_direction="both")
    return filled.fillna(filled.mean()).fillna(0.0).clip(lower=0.0)


def to_sktime(frame: pd.DataFrame) -> pd.DataFrame:
    """Wide frame → sktime ``pd-multiindex`` panel (series, hour) with one column ``y``."""
    order = sorted(frame.columns)
    index = pd.MultiIndex.from_product(
        [order, pd.DatetimeIndex(frame.index)], names=["series", "hour"]
    )
    values = frame[order].to_numpy(dtype=float).T.ravel()
    return pd.DataFrame({"y": values}, index=index)


def freq_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The same frame with an explicit hourly frequency on its index (sktime wants one)."""
    out = frame.copy()
    out.index = pd.DatetimeIndex(out.index, freq="h", name="hour")
    return out
