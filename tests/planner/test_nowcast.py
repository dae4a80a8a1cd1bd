"""The nowcast of the hour in progress: direction, decay with the lead, guards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from planner.forecast.nowcast import (
    NowcastParams,
    apply,
    apply_rows,
    partial_values,
    reading_values,
    series_readings,
)
from planner.forecast.pipeline import ForecastSettings, Selection
from planner.forecast.series import SeriesKey

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
    quiet, busy, lagging = "a|m|NIW|token_rate", "a|m|IW-F|token_rate", "b|m|IW-F|token_rate"
    readings = pd.Series([70.0], index=pd.MultiIndex.from_tuples([(busy, origin)]))
    key = pd.MultiIndex.from_tuples(
        [(quiet, origin), (busy, origin), (quiet, other), (lagging, origin)]
    )
    # read hour: the quiet series of a read region reads 0; an hour nobody read stays
    # unread, and so does a region with no arrival at all (its ingest may lag)
    np.testing.assert_array_equal(reading_values(readings, key), [0.0, 70.0, np.nan, np.nan])
    rows = pd.DataFrame(
        {"series": quiet, "origin": origin, "h": np.arange(1, 25), "point": 50.0, "offset": 1.0}
    )
    out = apply_rows(rows, readings, NowcastParams())
    assert out[0] == pytest.approx(51.0 * np.exp(-3.0) - 1.0)  # towards 0, to the ±3 clip
    np.testing.assert_allclose(out[1:], 50.0)  # nothing carried from a quiet start
    np.testing.assert_allclose(out, apply(rows["point"].to_numpy(), 0.0, 1.0, "token_rate"))


def test_a_region_with_no_arrival_is_unread_live_too(caplog: pytest.LogCaptureFixture) -> None:
    now = {"a|m|IW-F|token_rate": 70.0}
    ids = ["a|m|IW-F|token_rate", "a|m|NIW|token_rate", "b|m|IW-F|token_rate"]
    assert series_readings(now, ids) == dict(zip(ids, [70.0, 0.0, None], strict=True))
    assert "region(s) b " in caplog.text
    assert series_readings({}, ids) == dict.fromkeys(ids)


def test_lead_one_by_its_own_weight() -> None:
    """PARAMS: lead 1 weight 1 (the reading as is), carried weight 0.5."""
    out = apply(np.full(24, 100.0), 200.0, 5.0, "token_rate", PARAMS)
    assert out[0] == pytest.approx(200.0)
    assert out[1] == pytest.approx(105.0 * (205.0 / 105.0) ** (0.5 * 0.8) - 5.0)


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


def test_a_zero_reading_is_banded_as_the_forecast_after_lead_one_in_the_backtest() -> None:
    from planner.forecast.backtest import BacktestSettings, run_backtest
    from planner.forecast.bands import calibrate_nowcast
    from planner.forecast.series import build_panel
    from tests.helpers import demand_frame

    demand = demand_frame(days=10, series=GROUP)
    panel = build_panel(
        demand, demand["hour"].max() + pd.Timedelta(hours=1), metrics=("token_rate",)
    )
    settings = BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24)
    hours = run_backtest(panel, settings).hours
    readings = _readings(demand, 0.02)
    quiet = "us-east|m0|IW-F|token_rate"
    out = calibrate_nowcast(
        hours, panel, settings, readings[readings.index.get_level_values(0) != quiet]
    )
    mine = out[out["series"] == quiet]
    later = mine[mine["h"] > 1]
    assert len(later) and mine.loc[mine["h"] == 1, "nowcast_reading"].eq(0).all()
    cols = ["point", "quantile_method", *(c for c in out if c.startswith("q_"))]
    for col in cols:
        np.testing.assert_array_equal(later["nowcast_" + col], later[col], err_msg=col)
    assert later["nowcast_log_residual"].isna().all()  # not in the nowcasts' pool
    first = mine[mine["h"] == 1]
    assert (first["nowcast_point"] < 0.1 * first["point"]).all()


@dataclass(frozen=True)
class Hourly:
    """A selection that read its origin hours, and the hourly job's inputs after it."""

    selection: Selection
    settings: ForecastSettings
    past: pd.DataFrame
    last: pd.Timestamp
    now: dict[str, float]

    def run(self, readings: dict[str, float] | None) -> pd.DataFrame:
        from planner.forecast.pipeline import forecast
        from tests.helpers import TIMEZONES

        return forecast(
            self.past, self.selection.fitted, self.last, self.settings, TIMEZONES, readings
        )


@pytest.fixture(scope="module")
def hourly() -> Hourly:
    from planner.forecast.backtest import BacktestSettings
    from planner.forecast.pipeline import select_models
    from tests.helpers import demand_frame

    demand = demand_frame(days=10, series=GROUP)
    origin = demand["hour"].max() + pd.Timedelta(hours=1)
    settings = ForecastSettings(
        metrics=("token_rate",),
        backtest=BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24),
    )
    readings = _readings(demand, 0.02)
    selection = select_models(demand, origin, settings, readings=readings)
    last = origin - pd.Timedelta(hours=1)
    now = {s: float(v) for (s, o), v in readings.items() if o == last and s in selection.fitted}
    past = demand[demand["hour"] < last]
    return Hourly(selection, settings, past, last, now)


def _of(f: pd.DataFrame, series: str) -> pd.DataFrame:
    key = SeriesKey.parse(series)
    cols = ["region", "model", "tier", "metric"]
    mine = f[(f[cols] == [key.region, key.model, key.tier, key.metric]).all(axis=1)]
    return mine.set_index("h")


def test_the_hourly_forecast_uses_the_nowcast_band_when_it_read_the_hour(hourly: Hourly) -> None:
    assert all(f.nowcast_residuals is not None for f in hourly.selection.fitted.values())
    plain, read = hourly.run(None), hourly.run(hourly.now)
    width = {
        name: (f.loc[f["h"] == 1, "q_0_975"] - f.loc[f["h"] == 1, "q_0_025"]).mean()
        for name, f in (("plain", plain), ("read", read))
    }
    assert width["read"] < 0.5 * width["plain"]
    # a series with no arrival in the hour read (its region had some) reads 0: its lead 1
    # falls towards 0 with its nowcast band; later leads are the forecast, band included
    quiet = sorted(hourly.now)[0]
    silent = hourly.run({s: v for s, v in hourly.now.items() if s != quiet})
    mine = {"p": _of(plain, quiet), "s": _of(silent, quiet)}
    assert len(mine["s"]) == 24
    assert mine["s"].loc[1, "point"] < 0.1 * mine["p"].loc[1, "point"]
    assert mine["s"].loc[1, "q_0_975"] - mine["s"].loc[1, "q_0_025"] < 0.5 * width["plain"]
    pd.testing.assert_frame_equal(mine["s"].loc[2:], mine["p"].loc[2:])


def test_a_region_whose_ingest_lags_gets_no_nowcast(hourly: Hourly) -> None:
    """us-east's minutes have not arrived: its series are not read (not read as 0), while a
    quiet us-west series still reads 0."""
    west = sorted(s for s in hourly.now if s.startswith("us-west"))
    lagging = hourly.run({s: hourly.now[s] for s in west[1:]})
    plain, quiet = hourly.run(None), west[0]
    east = sorted(s for s in hourly.selection.fitted if s.startswith("us-east"))
    assert east
    for series in east:
        pd.testing.assert_frame_equal(_of(lagging, series), _of(plain, series))
    assert _of(lagging, quiet).loc[1, "point"] < 0.1 * _of(plain, quiet).loc[1, "point"]


def test_every_chunk_reads_the_whole_logs_readings() -> None:
    """No NIW series had an arrival in any read minutes while IW-F of the same regions did:
    the NIW series read 0 (and get nowcast residuals) though they backtest in another chunk
    than the readings' series."""
    from planner.forecast.backtest import BacktestSettings
    from planner.forecast.pipeline import select_models
    from tests.helpers import demand_frame

    series = tuple((r, "m1", t) for r in ("us-east", "us-west") for t in ("IW-F", "NIW"))
    demand = demand_frame(days=10, series=series)
    origin = demand["hour"].max() + pd.Timedelta(hours=1)
    settings = ForecastSettings(
        metrics=("token_rate",),
        backtest=BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24),
    )
    readings = _readings(demand, 0.02)
    readings = readings[~readings.index.get_level_values(0).str.contains("NIW")]
    fitted = select_models(demand, origin, settings, readings=readings).fitted
    assert len(fitted) == 4
    assert all(f.nowcast_residuals is not None for f in fitted.values())
