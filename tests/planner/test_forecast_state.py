"""A fitted series stored as JSON forecasts exactly as the fitted object did, for every kind of
model the selection can choose; what is not plain data is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from planner.forecast import gbm
from planner.forecast.calibration import ResidualQuantiles
from planner.forecast.forecast import attach_shared, detach_shared, fit_series
from planner.forecast.forecast import forecast_frame as frame_of
from planner.forecast.series import build_panel
from planner.forecast.state import decode, encode, fitted_from_state, fitted_state
from tests.helpers import TIMEZONES, demand_frame

T0 = pd.Timestamp("2024-06-03")
FORECASTERS = ("snaive24", "snaive168", "ets", "theta", "ets_theta", "mstl", "arima", "gbm",
               "ets_theta_gbm")  # fmt: skip


def _round_trip(fs):  # type: ignore[no-untyped-def]
    stored, shared = detach_shared(fs)
    row = {
        "series": fs.series,
        "forecaster": fs.forecaster,
        "train_start": fs.train_start,
        "train_end": fs.train_end,
        "fallback": fs.fallback,
        "reason": fs.reason,
    }
    state = json.loads(json.dumps(fitted_state(stored), allow_nan=False))
    return attach_shared(fitted_from_state(row, state), shared)


def test_every_model_kind_forecasts_the_same_after_a_json_round_trip() -> None:
    demand = demand_frame(days=16)
    selected = T0 + pd.Timedelta(days=15)
    panel = build_panel(demand, selected, metrics=("token_rate",))
    series = panel.series[0]
    bands = ResidualQuantiles.fit(np.linspace(-0.3, 0.3, 50), 1.0, horizons=np.arange(50) % 24 + 1)
    keys = list(panel.series)
    shared = gbm.GlobalGBM(replace(gbm.DEFAULT_PARAMS, n_estimators=20)).fit(
        keys,
        panel.filled[keys].to_numpy(dtype=float).T,
        panel.observed[keys].to_numpy(dtype=float).T,
        pd.DatetimeIndex(panel.filled.index),
    )  # a small booster: the test is about storing it, not its accuracy
    later = selected + pd.Timedelta(hours=7)  # re-conditioned on hours the fit never saw
    panel_later = build_panel(demand, later, metrics=("token_rate",))
    for name in FORECASTERS:
        fs = fit_series(series, name, panel, bands, "test", shared)
        fs.scores, fs.nowcast_residuals = {"mase": 0.9, "pinball": float("nan")}, bands
        fs.fallback_residuals = fs.fallback_nowcast_residuals = {"snaive24": bands}
        back = _round_trip(fs)
        assert (back.forecaster, back.train_end, back.residuals) == (name, fs.train_end, bands)
        assert back.nowcast_residuals == bands and np.isnan(back.scores["pinball"])
        assert back.fallback_residuals == back.fallback_nowcast_residuals == {"snaive24": bands}
        before = frame_of({series: fs}, panel_later, later, 24, TIMEZONES)
        after = frame_of({series: back}, panel_later, later, 24, TIMEZONES)
        pd.testing.assert_frame_equal(after, before, check_exact=True, obj=name)


def test_values_round_trip_exactly_and_objects_are_refused() -> None:
    value = {"a": (1, 2.5, float("inf")), "b": [np.arange(6.0).reshape(2, 3), np.float64(-0.0)]}
    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    assert back["a"] == (1, 2.5, float("inf"))
    np.testing.assert_array_equal(back["b"][0], value["b"][0])
    assert back["b"][1] == 0.0 and np.signbit(back["b"][1])
    with pytest.raises(TypeError, match="cannot store"):
        encode({"model": object()})
    with pytest.raises(TypeError, match="Python objects"):
        encode(np.array([object()]))
    with pytest.raises(ValueError, match="unknown tag"):
        decode({"pickle": "gASV"})
