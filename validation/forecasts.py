"""pandera models of the forecasting tables: ``forecasts``, ``forecast_backtests``,
``forecast_backtest_folds``. Frames are validated before they are stored."""

from __future__ import annotations

import pandera.pandas as pa
from pandera.typing import Series

from planner.quantiles import QUANTILE_COLUMNS

METRICS = ["token_rate", "request_rate", "peak_token_rate"]


class Forecasts(pa.DataFrameModel):
    """One row per origin, series and target hour."""

    origin: Series[pa.DateTime]
    hour: Series[pa.DateTime]
    h: Series[int] = pa.Field(ge=1)
    region: Series[str]
    model: Series[str]
    tier: Series[str]
    metric: Series[str] = pa.Field(isin=METRICS)
    point: Series[float] = pa.Field(ge=0)
    # one field for every stored quantile column (planner.quantiles spells them), each ≥ 0;
    # `every_quantile` below says which one is missing
    quantile: Series[float] = pa.Field(ge=0, alias=r"^q_\d", regex=True)
    forecaster: Series[str]

    @pa.dataframe_check(error=f"every quantile column is present: {', '.join(QUANTILE_COLUMNS)}")
    @classmethod
    def every_quantile(cls, df):  # type: ignore[no-untyped-def]
        return set(QUANTILE_COLUMNS) <= set(df.columns)

    @pa.dataframe_check(error="quantiles must not cross (q0.025 ≤ … ≤ q0.99)")
    @classmethod
    def quantiles_ordered(cls, df):  # type: ignore[no-untyped-def]
        cols = [c for c in QUANTILE_COLUMNS if c in df.columns]
        return (df[cols].diff(axis=1).iloc[:, 1:] >= -1e-9).all(axis=1)

    @pa.dataframe_check(error="a forecast hour is at or after its origin")
    @classmethod
    def no_hindcast(cls, df):  # type: ignore[no-untyped-def]
        return df["hour"] >= df["origin"]

    class Config:
        strict = False
        unique = ["origin", "region", "model", "tier", "metric", "hour"]  # noqa: RUF012


class ForecastBacktests(pa.DataFrameModel):
    """One row per selection, series and candidate forecaster."""

    selected_at: Series[pa.DateTime]
    series: Series[str]
    forecaster: Series[str]
    folds: Series[int] = pa.Field(ge=1)
    mase: Series[float] = pa.Field(ge=0, nullable=True)
    band95_coverage: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    p95_coverage: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    chosen: Series[bool]

    @pa.dataframe_check(error="exactly one chosen forecaster per series that has folds")
    @classmethod
    def one_choice(cls, df):  # type: ignore[no-untyped-def]
        return df.groupby("series")["chosen"].transform("sum") <= 1

    class Config:
        strict = False
        unique = ["selected_at", "series", "forecaster"]  # noqa: RUF012


class ForecastBacktestFolds(pa.DataFrameModel):
    selected_at: Series[pa.DateTime]
    series: Series[str]
    forecaster: Series[str]
    origin: Series[pa.DateTime]
    hours: Series[int] = pa.Field(ge=1)
    mase: Series[float] = pa.Field(ge=0, nullable=True)

    @pa.dataframe_check(error="a backtest fold's origin is before the selection time")
    @classmethod
    def before_selection(cls, df):  # type: ignore[no-untyped-def]
        return df["origin"] < df["selected_at"]

    class Config:
        strict = False
        unique = ["selected_at", "series", "forecaster", "origin"]  # noqa: RUF012
