"""Selection and forecasting end to end on small synthetic demand: no look-ahead, fallbacks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from planner.forecast.backtest import BacktestSettings, run_backtest
from planner.forecast.dayshift import DayShift
from planner.forecast.forecast import (
    FittedSeries,
    detect_level_shift,
    fit_series,
    forecast_frame,
    post_shift_window,
)
from planner.forecast.pipeline import ForecastSettings, forecast, select_models
from planner.forecast.series import SeriesKey, build_panel
from tests.helpers import TIMEZONES, demand_frame

T0 = pd.Timestamp("2024-06-03")
SETTINGS = ForecastSettings(
    metrics=("token_rate",),
    backtest=BacktestSettings(candidates=("snaive24", "ets", "theta", "ets_theta")),
)


@pytest.fixture(scope="module")
def demand() -> pd.DataFrame:
    return demand_frame(days=10)


def _tamper_after(demand: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    altered = demand.copy()
    later = altered["hour"] >= t
    for col in ("requests", "token_rate", "peak_minute_token_rate"):
        altered.loc[later, col] = altered.loc[later, col] * 7 + 13
    return altered


# the day-shift band (planner.forecast.dayshift), its day shifts from every chunk
DAY_SHIFT = replace(SETTINGS, backtest=replace(SETTINGS.backtest, day_shift=DayShift(min_shifts=3)))


@pytest.mark.parametrize("settings", [SETTINGS, DAY_SHIFT], ids=["band in use", "day shift"])
def test_a_forecast_at_t_is_unchanged_when_data_after_t_changes(
    demand: pd.DataFrame, settings: ForecastSettings
) -> None:
    origin = T0 + pd.Timedelta(days=8, hours=5)
    selection = select_models(demand, origin, settings)
    before = forecast(demand, selection.fitted, origin, settings, TIMEZONES)
    altered = _tamper_after(demand, origin)
    selection2 = select_models(altered, origin, settings)
    after = forecast(altered, selection2.fitted, origin, settings, TIMEZONES)
    pd.testing.assert_frame_equal(before, after)
    pd.testing.assert_frame_equal(selection.folds, selection2.folds)
    pd.testing.assert_frame_equal(selection.hours, selection2.hours)
    assert (before["hour"] >= origin).all() and before["h"].min() == 1
    # and the check can fail: data before the origin does change the forecast
    earlier = _tamper_after(demand, origin - pd.Timedelta(hours=3))
    changed = forecast(earlier, selection.fitted, origin, settings, TIMEZONES)
    assert not np.allclose(changed["point"], before["point"])


def test_backtest_folds_never_see_their_own_future(demand: pd.DataFrame) -> None:
    end = T0 + pd.Timedelta(days=10)
    panel = build_panel(demand, end, metrics=("token_rate",))
    result = run_backtest(panel, SETTINGS.backtest)
    last_origin = result.origins[-1]
    altered = build_panel(_tamper_after(demand, last_origin), end, metrics=("token_rate",))
    result2 = run_backtest(altered, SETTINGS.backtest)
    key = ["series", "forecaster", "origin", "h"]
    a = result.hours.sort_values(key).reset_index(drop=True)
    b = result2.hours.sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(a["point"], b["point"])  # predictions identical ...
    assert not np.allclose(a["actual"], b["actual"])  # ... though the last fold's actuals moved
    assert len(result.origins) == 7 and result.origins[-1] == end - pd.Timedelta(hours=24)


def test_selection_scores_and_choices(demand: pd.DataFrame) -> None:
    selection = select_models(demand, T0 + pd.Timedelta(days=10), SETTINGS)
    scores = selection.scores()
    assert set(scores["forecaster"]) == {"snaive24", "ets", "theta", "ets_theta"}
    assert scores.groupby("series")["chosen"].sum().eq(1).all()
    for fitted in selection.fitted.values():
        assert fitted.residuals is not None and fitted.model is not None


def test_a_series_that_appears_later_gets_the_peer_profile(demand: pd.DataFrame) -> None:
    origin = T0 + pd.Timedelta(days=9)
    selection = select_models(demand, origin, SETTINGS)
    newcomer = demand_frame(days=10, series=(("us-west", "m1", "NIW"),), seed=5)
    newcomer = newcomer[newcomer["hour"] >= origin - pd.Timedelta(hours=30)]
    fc = forecast(pd.concat([demand, newcomer]), selection.fitted, origin, SETTINGS, TIMEZONES)
    rows = fc[(fc["region"] == "us-west") & (fc["tier"] == "NIW")]
    assert len(rows) == 24 and (rows["forecaster"] == "peer_profile").all()
    assert rows["fallback"].iloc[0].startswith("new_series")
    observed = newcomer["token_rate"].mean()
    assert 0.3 * observed < rows["point"].mean() < 3 * observed
    # the profile is the peers' local-time shape: west's peak is 3 h after east's in UTC
    peak_utc = pd.Timestamp(rows.loc[rows["point"].idxmax(), "hour"]).hour
    assert peak_utc in range(17, 24)


def test_no_history_forecasts_zero_with_the_reason(demand: pd.DataFrame) -> None:
    origin = T0 + pd.Timedelta(days=9)
    selection = select_models(demand, origin, SETTINGS)
    ghost = SeriesKey("us-west", "m1", "NIW", "token_rate").id
    nothing = FittedSeries(ghost, "none", None, None, None, None, "", "no_history")
    fitted = selection.fitted | {ghost: nothing}
    quiet = demand_frame(days=10, series=(("us-west", "m1", "NIW"),))
    quiet[["requests", "token_rate", "peak_minute_token_rate"]] = np.nan
    quiet["coverage"] = 0.0
    fc = forecast(pd.concat([demand, quiet]), fitted, origin, SETTINGS, TIMEZONES)
    rows = fc[(fc["tier"] == "NIW") & (fc["region"] == "us-west")]
    assert (rows["point"] == 0).all() and (rows["fallback"] == "no_history").all()


def test_level_shift_detection() -> None:
    idx = pd.date_range(T0, periods=24 * 10, freq="h")
    base = 100 + 30 * np.sin(2 * np.pi * np.arange(len(idx)) / 24)
    steady = pd.Series(base, index=idx)
    assert detect_level_shift(steady) is None
    shifted = steady.copy()
    shifted.iloc[-24:] *= 3
    assert detect_level_shift(shifted) == pytest.approx(3.0, rel=0.05)
    burst = steady.copy()
    burst.iloc[-4:] *= 10  # a few hours: not a shift
    assert detect_level_shift(burst) is None


@pytest.mark.parametrize("factor", [0.25, 4.0])
def test_post_shift_window_brings_the_hours_before_the_shift_to_the_new_level(
    factor: float,
) -> None:
    hours = np.arange(24 * 10)
    base = 100 + 30 * np.sin(2 * np.pi * hours / 24)
    y = base.copy()
    y[-30:] *= factor  # the last 30 h of the 72-h window moved
    window = post_shift_window(y)
    assert len(window) == 72
    np.testing.assert_allclose(window[-30:], y[-30:])
    np.testing.assert_allclose(window[:42], factor * base[-72:-30], rtol=0.15)
    # no shift: the window as it is
    np.testing.assert_allclose(post_shift_window(base), base[-72:])


def test_a_client_leaving_falls_back_with_its_reason_and_does_not_stick(
    demand: pd.DataFrame,
) -> None:
    origin = T0 + pd.Timedelta(days=10)
    shifted = demand.copy()
    hit = (shifted["region"] == "us-east") & (shifted["tier"] == "IW-F")
    hit &= shifted["hour"] >= origin - pd.Timedelta(hours=30)
    cols = ["requests", "token_rate", "peak_minute_token_rate"]
    shifted[cols] = shifted[cols].astype(float)
    shifted.loc[hit, cols] *= 0.25
    panel = build_panel(shifted, origin, metrics=("token_rate",))
    series = "us-east|m1|IW-F|token_rate"
    fitted = {series: fit_series(series, "ets_theta", panel, None, "test")}
    assert (fitted[series].fallback or "").startswith("level_shift: last 24 h at 0.2")
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    assert frame["fallback"].str.startswith("level_shift").all()
    new_level = panel.observed[series].iloc[-24:].mean()
    old_level = panel.observed[series].iloc[-72:-48].mean()
    assert 0.6 * new_level < frame["point"].mean() < 1.6 * new_level < old_level


def test_config_controls_the_candidates(demand: pd.DataFrame) -> None:
    only_naive = replace(
        SETTINGS,
        backtest=replace(SETTINGS.backtest, candidates=("snaive24",)),
        selection=replace(SETTINGS.selection, default="snaive24"),
    )
    selection = select_models(demand, T0 + pd.Timedelta(days=10), only_naive)
    assert set(selection.chosen["forecaster"]) == {"snaive24"}


def test_the_selection_is_what_it_was_with_banded_screens_and_sorted_mixtures(
    demand: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two cuts of the selection's time change nothing, bit for bit (rows, scores, choices,
    deployed scores, stored bands; day-shift band on): the screen's folds keep the model's
    own intervals (only their MASE is read) and the residual mixture places the own
    residuals without np.insert. Patched back: the screen banded first and the mixture as
    a stable sort of [own, peers] (add7db1's order)."""
    import planner.forecast.backtest as backtest
    import planner.forecast.calibration as calibration
    from planner.forecast.bands import calibrate
    from planner.forecast.scores import score
    from tests.planner.test_calibration import sorted_mixture

    day = DayShift(min_shifts=3)  # margin 0, none kept: the screen drops all but the best
    bt = replace(SETTINGS.backtest, day_shift=day, finalist_margin=0, keep=())
    settings = replace(SETTINGS, backtest=bt)
    as_of = T0 + pd.Timedelta(days=10)
    now = select_models(demand, as_of, settings)

    def banded_screen(screened: pd.DataFrame, panel: object, bt: BacktestSettings) -> object:
        return score(calibrate(screened.copy(), panel, bt), panel, bt.quantiles)  # type: ignore[arg-type]

    monkeypatch.setattr(backtest, "_screen_folds", banded_screen)
    monkeypatch.setattr(calibration, "mixture_quantiles", sorted_mixture)
    was = select_models(demand, as_of, settings)
    for name in ("hours", "folds", "chosen", "deployed"):
        pd.testing.assert_frame_equal(getattr(now, name), getattr(was, name), check_exact=True)
    assert (now.hours["quantile_method"] == "conformal").any()
    kept = now.hours.groupby(["series", "forecaster"])["origin"].nunique()
    assert kept.nunique() > 1, kept  # the screen dropped some
    assert now.fitted.keys() == was.fitted.keys()
    for series, fs in now.fitted.items():
        old = was.fitted[series]
        assert (fs.forecaster, fs.residuals, fs.fallback_residuals) == (
            old.forecaster,
            old.residuals,
            old.fallback_residuals,
        )
