"""The rule every conformal band keeps, the band in use and the pooled ones alike: a residual
counts only once its target hour is over."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import Pooling
from planner.forecast.dayshift import DayShift, DayShifts
from planner.forecast.reband import with_day_shifts
from planner.forecast.series import Panel
from planner.quantiles import QUANTILES, quantile_column

SERIES = [f"r{i}|m|IW-F|token_rate" for i in range(3)]
T0 = pd.Timestamp("2024-06-01")


def _backtest(step_h: int, n: int) -> tuple[pd.DataFrame, Panel]:
    """Rows of one forecaster on 3 series, ``n`` origins ``step_h`` apart × 24 leads, point
    100, actuals log-normal around it."""
    rng = np.random.default_rng(5)
    frames = []
    for k in range(n):
        origin = T0 + pd.Timedelta(hours=step_h * k)
        for series in SERIES:
            frame = pd.DataFrame({"hour": pd.date_range(origin, periods=24, freq="h")})
            frame["series"], frame["forecaster"], frame["origin"] = series, "ets", origin
            frame["h"] = np.arange(1, 25)
            frame["point"] = 100.0
            frame["actual"] = 100 * np.exp(rng.normal(0, 0.1, 24))
            for tau in QUANTILES:
                frame[f"native_{tau}"] = 100.0
            frames.append(frame)
    hours = pd.concat(frames, ignore_index=True)
    # the actual of an hour is one value, whichever origin forecast it
    hours["actual"] = hours.groupby(["series", "hour"])["actual"].transform("first")
    wide = hours.pivot_table(index="hour", columns="series", values="actual")
    return hours, Panel(wide, wide)


def _band(hours: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    at = hours[hours["origin"] == origin].sort_values(["series", "h"])
    out: np.ndarray = at[[quantile_column(t) for t in QUANTILES]].to_numpy()
    return out


def _recalibrate(
    hours: pd.DataFrame, panel: Panel, settings: BacktestSettings, spec: str
) -> pd.DataFrame:
    if spec.startswith("dayshift"):  # the day shifts of every row, the future's included
        plain = recalibrate(hours, panel, settings)
        return with_day_shifts(plain, panel, settings, DayShifts.of(plain, DayShift.parse(spec)))
    pool = None if spec == "none" else Pooling.parse(spec)
    return recalibrate(hours, panel, settings, pool)


@pytest.mark.parametrize(
    "spec",
    [
        "none",
        "pool:group=tier",
        "pool:own=0/tail=0.8",
        "dayshift:width=6/pool=all/min_shifts=2",
        "dayshift:width=0/pool=tier/min_shifts=2",
    ],
)
def test_bands_use_only_hours_already_over_when_folds_overlap(spec: str) -> None:
    """Origins 12 h apart, 24 leads: at an origin only the first half of the previous fold is
    over. Every hour from origin 4 on is altered: no band up to origin 4 may move (before,
    a whole fold joined the past at the next origin, so origin 4's band read fold 3's leads
    13-24, hours after origin 4); origin 5's must (origin 4's first 12 hours are over)."""
    settings = dataclasses.replace(BacktestSettings(), step_h=12)
    hours, panel = _backtest(12, 7)
    origins = sorted(hours["origin"].unique())
    future = hours.copy()
    after = future["hour"] >= origins[4]
    future.loc[after, "actual"] *= np.exp(np.random.default_rng(9).normal(0, 1.0, after.sum()))
    plain = _recalibrate(hours, panel, settings, spec)
    altered = _recalibrate(future, panel, settings, spec)
    assert (plain.loc[plain["origin"] == origins[3], "quantile_method"] == "conformal").all()
    for origin in origins[:5]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, origins[5]), _band(altered, origins[5]))
    if spec.startswith("dayshift"):  # the day-shift band is the one tested at origins 3-4
        in_use = _recalibrate(hours, panel, settings, "none")
        for origin in origins[3:5]:
            assert not np.allclose(_band(plain, origin), _band(in_use, origin))
