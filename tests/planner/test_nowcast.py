"""The nowcast of the hour in progress: direction, decay with the lead, guards."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.nowcast import (
    NowcastParams,
    apply,
    apply_rows,
    partial_values,
    reading_values,
)

PARAMS = NowcastParams(
    weight={"token_rate": 0.5}, bias={}, decay={"token_rate": 0.8}, first_weight={"token_rate": 1.0}
)


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
    # lead 1 (the hour read) clipped at first_max_abs = 3, later leads at max_abs = 1
    assert out[0] < 105 * np.exp(3.0) and out[1:].max() < 100 * np.e


def test_lead_one_follows_its_reading_beyond_the_carried_clip() -> None:
    """The hour in progress, two thirds read, is nowcast by its reading even when it is
    far (here 1/10) from the forecast; the ±1 clip of the carried correction (and the 40-min
    peak bias) held lead 1 at 100/e and scored below the reading alone (session 33)."""
    point = np.full(24, 100.0)
    params = NowcastParams()  # the defaults: lead 1 weight 1 for token and peak rates
    for metric in ("token_rate", "peak_token_rate"):
        out = apply(point, 10.0, 1.0, metric, params)
        assert out[0] == pytest.approx(10.0)
        # later leads: the carried correction, still clipped at ±1 and decaying
        assert np.all(out[1:] >= 100 / np.e - 1) and np.all(np.diff(out[1:]) > 0)
    old = NowcastParams(first_weight=params.weight, first_bias=params.bias, first_max_abs=1.0)
    assert apply(point, 10.0, 1.0, "token_rate", old)[0] > 35


def test_a_series_quiet_in_a_read_hour_reads_zero_at_lead_one_only() -> None:
    origin, other = pd.Timestamp("2024-06-10 07:00"), pd.Timestamp("2024-06-10 08:00")
    quiet, busy = "a|m|IW-F|token_rate", "b|m|IW-F|token_rate"
    readings = pd.Series([70.0], index=pd.MultiIndex.from_tuples([(busy, origin)]))
    key = pd.MultiIndex.from_tuples([(quiet, origin), (busy, origin), (quiet, other)])
    # read hour: the quiet series reads 0; an hour nobody read stays unread
    np.testing.assert_array_equal(reading_values(readings, key), [0.0, 70.0, np.nan])
    rows = pd.DataFrame(
        {"series": quiet, "origin": origin, "h": np.arange(1, 25), "point": 50.0, "offset": 1.0}
    )
    out = apply_rows(rows, readings, NowcastParams())
    assert out[0] == pytest.approx(51.0 * np.exp(-3.0) - 1.0)  # towards 0, to the ±3 clip
    np.testing.assert_allclose(out[1:], 50.0)  # nothing carried from a quiet start
    np.testing.assert_allclose(out, apply(rows["point"].to_numpy(), 0.0, 1.0, "token_rate"))


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


# one peer group (same tier and metric) large enough for per-lead bands after a few folds
GROUP = tuple((r, f"m{i}", "IW-F") for r in ("us-east", "us-west") for i in range(4))


def _readings(demand: pd.DataFrame, noise: float, seed: int = 0) -> pd.Series:
    """Each hour's token rate read with a small multiplicative error (the minutes so far)."""
    from planner.forecast.series import build_panel

    observed = build_panel(demand, demand["hour"].max() + pd.Timedelta(hours=1)).observed
    stacked = observed.stack(future_stack=True).swaplevel().dropna()
    rng = np.random.default_rng(seed)
    out = stacked * np.exp(rng.normal(0.0, noise, len(stacked)))
    out.index.names = ["series", "origin"]
    return pd.Series(out)


def test_the_nowcast_band_is_calibrated_on_nowcasts_strictly_before_each_origin() -> None:
    from planner.forecast.backtest import BacktestSettings, run_backtest
    from planner.forecast.bands import calibrate_nowcast
    from planner.forecast.series import Panel, build_panel
    from tests.helpers import demand_frame

    demand = demand_frame(days=10, series=GROUP)
    end = demand["hour"].max() + pd.Timedelta(hours=1)
    panel = build_panel(demand, end, metrics=("token_rate",))
    settings = BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24)
    hours = run_backtest(panel, settings).hours
    readings = _readings(demand, 0.02)
    out = calibrate_nowcast(hours, panel, settings, readings)
    assert len(out) == len(hours)
    # the last three origins: enough lead-1 nowcast residuals (8 series × 3 folds) for a
    # band of their own at that lead
    late = out["origin"] >= sorted(out["origin"].unique())[-3]
    lead1 = out[late & (out["h"] == 1) & (out["nowcast_quantile_method"] == "conformal")]
    assert len(lead1) >= 3 * 8
    nowcast_width = (lead1["nowcast_q_0_975"] - lead1["nowcast_q_0_025"]).mean()
    forecast_width = (lead1["q_0_975"] - lead1["q_0_025"]).mean()
    # a reading of the hour (2 % noise) leaves far smaller errors than the forecast's
    assert nowcast_width < 0.5 * forecast_width
    inside = (lead1["actual"] >= lead1["nowcast_q_0_025"]) & (
        lead1["actual"] <= lead1["nowcast_q_0_975"]
    )
    assert inside.mean() > 0.8
    # strictly out of sample: readings of the last origin do not move earlier origins' bands
    last = out["origin"].max()
    altered = readings.copy()
    at_last = altered.index.get_level_values("origin") == last
    altered[at_last] = altered[at_last] * 5
    again = calibrate_nowcast(hours, panel, settings, altered)
    before = out["origin"] < last
    cols = ["nowcast_q_0_025", "nowcast_q_0_975", "nowcast_point"]
    pd.testing.assert_frame_equal(out.loc[before, cols], again.loc[before, cols])
    assert not np.allclose(out.loc[~before, "nowcast_point"], again.loc[~before, "nowcast_point"])
    # nor do the panel's hours from the last origin on (each origin's offset reads only the
    # hours before it; an offset from the whole panel's mean fails this)
    factor = np.where(panel.observed.index >= last, 50.0, 1.0)[:, None]
    grown = Panel(panel.observed * factor, panel.filled * factor)
    third = calibrate_nowcast(hours, grown, settings, readings)
    pd.testing.assert_frame_equal(out.loc[before, cols], third.loc[before, cols])


def test_the_hourly_forecast_uses_the_nowcast_band_when_it_read_the_hour() -> None:
    from planner.forecast.backtest import BacktestSettings
    from planner.forecast.pipeline import ForecastSettings, forecast, select_models
    from planner.forecast.series import SeriesKey
    from tests.helpers import TIMEZONES, demand_frame

    demand = demand_frame(days=10, series=GROUP)
    origin = demand["hour"].max() + pd.Timedelta(hours=1)
    settings = ForecastSettings(
        metrics=("token_rate",),
        backtest=BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24),
    )
    readings = _readings(demand, 0.02)
    selection = select_models(demand, origin, settings, readings=readings)
    assert all(f.nowcast_residuals is not None for f in selection.fitted.values())
    past = demand[demand["hour"] < origin - pd.Timedelta(hours=1)]
    last = origin - pd.Timedelta(hours=1)
    now = {s: float(v) for (s, o), v in readings.items() if o == last}
    plain = forecast(past, selection.fitted, last, settings, TIMEZONES)
    read = forecast(past, selection.fitted, last, settings, TIMEZONES, now)
    width = {
        name: (f.loc[f["h"] == 1, "q_0_975"] - f.loc[f["h"] == 1, "q_0_025"]).mean()
        for name, f in (("plain", plain), ("read", read))
    }
    assert width["read"] < 0.5 * width["plain"]
    # a series with no arrival in the hour read (the others had some) reads 0: its lead 1
    # falls towards 0 with its nowcast band, later leads keep the forecast
    quiet = sorted(s for s in now if s.endswith("|token_rate"))[0]
    rest = {s: v for s, v in now.items() if s != quiet}
    silent = forecast(past, selection.fitted, last, settings, TIMEZONES, rest)
    key = SeriesKey.parse(quiet)

    def of_quiet(f: pd.DataFrame) -> pd.DataFrame:
        cols = ["region", "model", "tier", "metric"]
        return f[(f[cols] == [key.region, key.model, key.tier, key.metric]).all(axis=1)]

    mine = {n: of_quiet(f).set_index("h") for n, f in (("p", plain), ("s", silent))}
    assert len(mine["s"]) == 24
    assert mine["s"].loc[1, "point"] < 0.1 * mine["p"].loc[1, "point"]
    assert mine["s"].loc[1, "q_0_975"] - mine["s"].loc[1, "q_0_025"] < 0.5 * width["plain"]
    pd.testing.assert_series_equal(mine["s"].loc[2:, "point"], mine["p"].loc[2:, "point"])
