"""The nowcast of the hour in progress: direction, decay with the lead, guards."""

from __future__ import annotations

import numpy as np
import pandas as pd

from planner.forecast.nowcast import NowcastParams, apply, apply_rows, partial_values

PARAMS = NowcastParams(weight={"token_rate": 0.5}, bias={}, decay={"token_rate": 0.8})


def test_a_busier_hour_so_far_raises_the_first_hours_most() -> None:
    point = np.full(24, 100.0)
    out = apply(point, 200.0, 5.0, "token_rate", PARAMS)
    assert out[0] > 130 and np.all(np.diff(out) < 0) and out[-1] < 101
    down = apply(point, 50.0, 5.0, "token_rate", PARAMS)
    assert down[0] < 80 and np.all(down <= 100)


def test_no_reading_or_unknown_metric_leaves_the_forecast() -> None:
    point = np.linspace(10, 50, 24)
    np.testing.assert_array_equal(apply(point, None, 1.0, "token_rate", PARAMS), point)
    np.testing.assert_array_equal(apply(point, float("nan"), 1.0, "token_rate", PARAMS), point)
    np.testing.assert_allclose(apply(point, 1e6, 1.0, "request_rate", PARAMS), point)


def test_a_burst_in_the_minutes_cannot_explode_the_forecast() -> None:
    out = apply(np.full(24, 100.0), 1e9, 5.0, "token_rate", PARAMS)
    assert out.max() < 100 * np.e  # |r0| clipped at max_abs = 1, weight ≤ 1


def test_rows_version_matches_the_series_version() -> None:
    origin = pd.Timestamp("2024-06-10 07:00")
    rows = pd.DataFrame(
        {
            "series": "a|m|IW-F|token_rate",
            "origin": origin,
            "h": np.arange(1, 25),
            "point": np.linspace(50, 80, 24),
            "offset": 2.0,
        }
    )
    readings = pd.Series([70.0], index=pd.MultiIndex.from_tuples([("a|m|IW-F|token_rate", origin)]))
    expected = apply(rows["point"].to_numpy(), 70.0, 2.0, "token_rate", PARAMS)
    np.testing.assert_allclose(apply_rows(rows, readings, PARAMS), expected)


def test_partial_values_are_rates_over_the_minutes_read() -> None:
    partial = pd.DataFrame(
        {
            "hour": [pd.Timestamp("2024-06-10 07:00")],
            "region": ["a"],
            "model": ["m"],
            "tier": ["NIW"],
            "requests": [240],
            "tokens": [24_000],
            "peak_minute_token_rate": [20.0],
        }
    )
    wide = partial_values(partial, 40)
    row = wide.iloc[0]
    assert row["a|m|NIW|request_rate"] == 0.1 and row["a|m|NIW|token_rate"] == 10.0
    assert row["a|m|NIW|peak_token_rate"] == 20.0
