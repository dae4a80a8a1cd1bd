"""From the demand mart to series: what is known at an origin, and gaps vs zeros."""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.forecast.series import SeriesKey, build_panel, impute, to_sktime
from tests.helpers import demand_frame

T0 = pd.Timestamp("2024-06-03")


def test_only_hours_that_ended_before_the_origin_are_seen() -> None:
    demand = demand_frame(days=5)
    origin = T0 + pd.Timedelta(hours=50, minutes=20)  # mid-hour: hour 50 has not ended
    panel = build_panel(demand, origin)
    assert panel.observed.index[-1] == T0 + pd.Timedelta(hours=49)
    assert panel.filled.index.equals(panel.observed.index)
    assert len(panel.series) == 3 * 3  # three series, three metrics


def test_low_coverage_and_platform_silence_are_gaps_not_zeros() -> None:
    demand = demand_frame(days=4)
    h10 = T0 + pd.Timedelta(hours=10)
    h20 = T0 + pd.Timedelta(hours=20)
    demand.loc[demand["hour"] == h10, "coverage"] = 0.1  # barely covered by any file
    silent = demand["hour"] == h20
    demand.loc[silent, ["requests", "token_rate", "peak_minute_token_rate"]] = 0
    panel = build_panel(demand, T0 + pd.Timedelta(days=4))
    col = SeriesKey("us-east", "m1", "IW-F", "token_rate").id
    assert np.isnan(panel.observed.loc[h10, col])
    assert np.isnan(panel.observed.loc[h20, col])  # every series silent at once: the log stopped
    assert panel.filled.loc[h20, col] > 0  # imputed for fitting


def test_implausible_zero_is_a_gap_but_a_quiet_zero_is_kept() -> None:
    demand = demand_frame(days=9, series=(("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F")))
    late = T0 + pd.Timedelta(days=8, hours=14)
    busy = (demand["hour"] == late) & (demand["region"] == "us-east")
    demand.loc[busy, ["requests", "token_rate", "peak_minute_token_rate"]] = 0
    quiet = demand["region"] == "us-west"
    demand.loc[quiet, "requests"] = demand.loc[quiet, "requests"] // 1000  # mostly 0 or 1
    demand.loc[quiet, "token_rate"] = demand.loc[quiet, "requests"] / 3.6
    panel = build_panel(demand, T0 + pd.Timedelta(days=9))
    east = SeriesKey("us-east", "m1", "IW-F", "token_rate").id
    west = SeriesKey("us-west", "m1", "IW-F", "token_rate").id
    assert np.isnan(panel.observed.loc[late, east])  # ~300 requests expected, zero seen
    assert (panel.observed[west] == 0).sum() > 0  # zeros of a quiet series are real


def test_impute_fills_from_the_previous_day() -> None:
    idx = pd.date_range(T0, periods=72, freq="h")
    frame = pd.DataFrame({"a": np.arange(72.0) % 24}, index=idx)
    frame.iloc[30, 0] = np.nan
    filled = impute(frame)
    assert filled.iloc[30, 0] == 6.0  # hour 30 is 06:00, same as yesterday


def test_to_sktime_is_a_series_by_hour_panel() -> None:
    panel = build_panel(demand_frame(days=2), T0 + pd.Timedelta(days=2), metrics=("token_rate",))
    y = to_sktime(panel.filled)
    assert y.index.names == ["series", "hour"]
    assert len(y) == 48 * 3
    first = y.index.get_level_values(0)[0]
    assert y.loc[first]["y"].tolist() == panel.filled[first].tolist()
