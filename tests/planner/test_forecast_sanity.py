"""The forecast sanity guard (issue #18): an implausible point falls back to seasonal naive and
an implausible band is capped, each recorded with its reason; a normal series is untouched."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from planner.forecast import sanity
from planner.forecast.backtest import BacktestSettings
from planner.forecast.calibration import ResidualQuantiles, offsets_now, residuals_for
from planner.forecast.forecast import FittedSeries, fit_series, forecast_frame
from planner.forecast.models import forward_one
from planner.forecast.nowcast import NowcastParams
from planner.forecast.pipeline import ForecastSettings, select_models
from planner.forecast.series import Panel, build_panel
from planner.quantiles import QUANTILES, quantile_column
from tests.helpers import TIMEZONES, demand_frame

SERIES = "us-east|m1|IW-F|token_rate"


def _panel(token_rate: np.ndarray | None = None) -> tuple[Panel, pd.Timestamp]:
    d = demand_frame(days=10, series=(("us-east", "m1", "IW-F"),))
    if token_rate is not None:
        d = d.assign(token_rate=token_rate)
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    return build_panel(d, origin, metrics=("token_rate",)), origin


def _week_max(panel: Panel) -> float:
    return float(panel.observed[SERIES].iloc[-168:].max())


def test_an_exploding_ets_falls_back_to_seasonal_naive_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # ETS fitted at selection time on a day-on-day ×e ramp learns its trend; an hour later the
    # series is back to its normal level and the re-conditioned model extrapolates far above it
    calm, origin = _panel()
    ramp, _ = _panel(10 * np.exp(np.arange(240) / 24))
    fitted = {SERIES: fit_series(SERIES, "ets", ramp, None, "test")}
    raw = calm.filled[SERIES].to_numpy(dtype=float)
    model = fitted[SERIES].model
    assert forward_one("ets", model, raw, 24)[0]["mean"].max() > 2.5 * _week_max(calm)
    with caplog.at_level(logging.INFO, logger="planner.forecast.sanity"):
        frame = forecast_frame(fitted, calm, origin, 24, TIMEZONES)
    assert [r.getMessage().split(": ")[0] for r in caplog.records] == [SERIES]  # names it
    assert (frame["forecaster"] == "snaive24").all()
    assert frame["fallback"].str.contains(r"implausible_point: peak \d+\.\dx").all()
    assert frame["fallback"].str.contains("instead of ets").all()
    np.testing.assert_allclose(frame["point"], raw[-24:])  # seasonal naive, sp = 24


def test_a_normal_series_is_untouched() -> None:
    panel, origin = _panel()
    fitted = {SERIES: fit_series(SERIES, "ets", panel, None, "test")}
    residuals = ResidualQuantiles.fit(np.random.default_rng(0).normal(0, 0.2, 500), 1.0)
    fitted[SERIES].residuals = residuals
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    raw = panel.filled[SERIES].to_numpy(dtype=float)
    expected = np.maximum(forward_one("ets", fitted[SERIES].model, raw, 24)[0]["mean"], 0.0)
    assert frame["fallback"].isna().all() and (frame["forecaster"] == "ets").all()
    np.testing.assert_allclose(frame["point"], expected)
    for t, q in residuals.apply(expected).items():
        np.testing.assert_allclose(frame[quantile_column(t)], q)


def test_an_absurdly_wide_band_is_capped_with_its_reason() -> None:
    # a bursty series' residuals (log σ = 2.5): the upper quantiles reach ~100× the point
    panel, origin = _panel()
    fitted = {SERIES: fit_series(SERIES, "ets", panel, None, "test")}
    wide = ResidualQuantiles.fit(np.random.default_rng(0).normal(0, 2.5, 500), 1.0)
    fitted[SERIES].residuals = wide
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    cap = sanity.SANITY_RATIO * _week_max(panel)
    top = frame[quantile_column(max(QUANTILES))]
    assert top.max() == pytest.approx(cap) and (top <= cap + 1e-9).all()
    assert frame["fallback"].str.startswith("band_capped: top quantile").all()
    assert (frame["forecaster"] == "ets").all()  # the point is kept
    uncapped = wide.apply(frame["point"].to_numpy())
    np.testing.assert_allclose(frame[quantile_column(0.5)], np.minimum(uncapped[0.5], cap))


def test_no_recent_demand_leaves_the_band_alone() -> None:
    band = {0.5: np.array([1.0, 2.0]), 0.99: np.array([50.0, 80.0])}
    assert sanity.cap_quantiles(band, 0.0) == (band, None)
    assert sanity.point_exceeds(np.array([1e9]), 0.0) is None
    assert sanity.recent_max(np.array([np.nan, 3.0, np.nan])) == 3.0


def test_a_nan_quantile_is_left_alone_and_not_reported() -> None:
    band = {0.5: np.array([1.0, np.nan]), 0.99: np.array([50.0, np.nan])}
    capped, why = sanity.cap_quantiles(band, 10.0)
    assert why == "band_capped: top quantile 5.0x the last week's max; capped at 2.5x"
    np.testing.assert_array_equal(capped[0.99], [25.0, np.nan])
    only_nan = {0.5: np.array([np.nan])}
    assert sanity.cap_quantiles(only_nan, 10.0) == (only_nan, None)


def _trough() -> tuple[Panel, pd.Timestamp, dict[str, float]]:
    """A normal series cut at its daily trough (03:00 in New York), and a reading of the hour
    in progress at the week's maximum: the nowcast lifts every lead by the reading's ratio to
    the lead-1 forecast."""
    d = demand_frame(days=10, series=(("us-east", "m1", "IW-F"),))
    origin = pd.Timestamp("2024-06-12 07:00")
    panel = build_panel(d, origin, metrics=("token_rate",))
    return panel, origin, {SERIES: _week_max(panel)}


# the nowcast trusting the reading fully at every lead (a setting the tuning grid allows)
LIFT = NowcastParams(weight={"token_rate": 1.0}, decay={"token_rate": 1.0}, max_abs=3.0)


def test_the_guard_holds_the_point_after_the_nowcast() -> None:
    panel, origin, reading = _trough()
    fitted = {SERIES: fit_series(SERIES, "ets", panel, None, "test")}
    cap = sanity.SANITY_RATIO * _week_max(panel)
    plain = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    assert plain["point"].max() < cap  # the model's own point passes the guard
    off = forecast_frame(fitted, panel, origin, 24, TIMEZONES, reading, LIFT, ratio=np.inf)
    assert off["point"].max() > cap  # the nowcast lifts it above 2.5 M
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES, reading, LIFT)
    values = frame[["point", *(quantile_column(t) for t in QUANTILES)]].to_numpy()
    assert (values <= cap + 1e-9).all()  # nothing published above 2.5 M
    assert (frame["forecaster"] == "snaive24").all()
    assert frame["fallback"].str.contains("implausible_point: .* \\(instead of ets\\)").all()


def _exploding() -> tuple[dict[str, FittedSeries], Panel, pd.Timestamp]:
    calm, origin = _panel()
    ramp, _ = _panel(10 * np.exp(np.arange(240) / 24))
    return {SERIES: fit_series(SERIES, "ets", ramp, None, "test")}, calm, origin


def test_a_fallen_back_point_is_banded_by_the_fallbacks_own_residuals() -> None:
    fitted, panel, origin = _exploding()
    rng = np.random.default_rng(0)
    fitted[SERIES].residuals = ResidualQuantiles.fit(rng.normal(0, 0.02, 500), 1.0)
    naive = ResidualQuantiles.fit(rng.normal(0, 0.3, 500), 1.0)
    fitted[SERIES].fallback_residuals = {"snaive24": naive}
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    assert (frame["forecaster"] == "snaive24").all()
    for t, q in naive.apply(frame["point"].to_numpy()).items():
        np.testing.assert_allclose(frame[quantile_column(t)], q)
    assert not frame["fallback"].str.contains("band of").any()


def test_without_the_fallbacks_residuals_the_band_says_whose_it_is() -> None:
    fitted, panel, origin = _exploding()
    ets = ResidualQuantiles.fit(np.random.default_rng(0).normal(0, 0.02, 500), 1.0)
    fitted[SERIES].residuals = ets
    frame = forecast_frame(fitted, panel, origin, 24, TIMEZONES)
    for t, q in ets.apply(frame["point"].to_numpy()).items():
        np.testing.assert_allclose(frame[quantile_column(t)], q)
    assert frame["fallback"].str.contains("band of ets \\(no snaive24 residuals\\)").all()


def test_the_selection_keeps_the_fallbacks_band() -> None:
    d = demand_frame(days=10, series=(("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F")))
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    settings = ForecastSettings(
        metrics=("token_rate",),
        backtest=BacktestSettings(candidates=("snaive24", "theta", "ets"), min_residuals=24),
    )
    selection = select_models(d, origin, settings)
    hours = selection.hours
    # the loop below checks only series whose choice is not seasonal naive: there must be one
    assert any(fs.forecaster != "snaive24" for fs in selection.fitted.values())
    for series, fs in selection.fitted.items():
        if fs.forecaster == "snaive24":
            assert fs.fallback_residuals == {}
            continue
        naive = fs.fallback_residuals["snaive24"]
        group = list(selection.fitted)
        offset = float(
            offsets_now(build_panel(d, origin, metrics=("token_rate",)).observed)[series]
        )
        assert naive == residuals_for(hours, series, "snaive24", group, offset)
        assert naive != fs.residuals
