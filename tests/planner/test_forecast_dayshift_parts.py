"""The day-shift band on folds over in parts (a backtest horizon of 48 h, daily origins):
day shifts at every lead, and the backtest's band at the selection's time is the stored one
(k counts whole folds; the bias is a mean over folds, not fold parts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import offsets_at
from planner.forecast.dayshift import (
    DayShift,
    DayShifts,
    WithinDay,
    live_quantiles,
    live_within,
)
from planner.forecast.reband import with_day_shifts
from planner.forecast.series import Panel
from planner.quantiles import HIGH, LOW, QUANTILES, quantile_column

T0 = pd.Timestamp("2024-06-01")
DAY_H = pd.Timedelta(days=1)


def _two_day_rows(seed: int) -> tuple[pd.DataFrame, Panel]:
    """Daily folds of 48 leads (a backtest horizon of 48) on 2 peer groups of 3 series: the
    error is a level per series, fold and day of the fold (σ 0.1 on the first day, leads
    1-24; σ 0.5 on the second, leads 25-48) over hourly noise (σ 0.05)."""
    rng = np.random.default_rng(seed)
    series = [f"r{r}|m|T{g}|token_rate" for g in range(2) for r in range(3)]
    lead = np.arange(1, 49)
    frames = []
    for k in range(8):
        origin = T0 + pd.Timedelta(days=k)
        for name in series:
            level = np.where(lead <= 24, rng.normal(0, 0.1), rng.normal(0, 0.5))
            err = level + rng.normal(0, 0.05, 48)
            frame = pd.DataFrame({"h": lead, "point": 100.0, "actual": 100.0 * np.exp(err)})
            frame["series"], frame["forecaster"], frame["origin"] = name, "ets", origin
            for tau in QUANTILES:
                frame[f"native_{tau}"] = 100.0
            frames.append(frame)
    hours = pd.date_range(T0, periods=24 * 9, freq="h")
    wide = pd.DataFrame(100.0, index=hours, columns=series)
    return pd.concat(frames, ignore_index=True), Panel(wide, wide)


def test_day_shifts_follow_a_backtest_horizon_past_24() -> None:
    """A backtest horizon of 48 (was: an index error past lead 24): the day shifts are kept
    for every lead, so the band at the second day's leads is sized by its own (wider) day
    moves, not by lead 24's."""
    hours, panel = _two_day_rows(seed=3)
    settings = BacktestSettings(horizon=48)
    plain = recalibrate(hours, panel, settings)
    setting = DayShift(width=3, pool="all", min_shifts=3)
    shifts = DayShifts.of(plain, setting)
    assert shifts.leads == 48
    banded = with_day_shifts(plain, panel, settings, shifts)
    last = banded[banded["origin"] == banded["origin"].max()]
    width = np.log(last[HIGH] / last[LOW]).groupby(last["h"]).mean()
    assert width.loc[36:48].min() > 1.5 * width.loc[12:24].max(), width


def _backtest_band_is_stored_band(
    hours: pd.DataFrame, panel: Panel, setting: DayShift, fakes: tuple[pd.Timestamp, ...]
) -> None:
    """48-lead folds ``hours`` banded with ``setting``: the band the backtest gives a made-up
    fold (no actuals) at the selection's time (the last of ``fakes``, each a made-up fold: a
    resolve that day) equals the band the selection stores."""
    settings = BacktestSettings(horizon=48)
    plain = recalibrate(hours, panel, settings)
    shifts = DayShifts.of(plain, setting)
    as_of, series = fakes[-1], str(plain["series"].iloc[0])
    last = plain[(plain["series"] == series) & (plain["origin"] == plain["origin"].max())]
    made_up = [last.assign(origin=at, actual=np.nan) for at in fakes]
    banded = with_day_shifts(
        pd.concat([plain, *made_up], ignore_index=True), panel, settings, shifts
    )
    at = banded[banded["origin"] == as_of].sort_values("h")
    offset = float(offsets_at(panel.observed, pd.DatetimeIndex([as_of]))[series].iloc[0])
    within = live_within(plain, setting)
    stored = live_quantiles(within, series, "ets", offset, shifts, as_of) or pytest.fail("none")
    made = stored.apply(at["point"].to_numpy(), at["h"].to_numpy())
    assert (at["quantile_method"] == "conformal").all()
    for tau in QUANTILES:
        np.testing.assert_allclose(at[quantile_column(tau)].to_numpy(), made[tau], rtol=1e-9)


def test_the_bias_error_counts_whole_folds_in_the_backtest_as_in_the_stored_band() -> None:
    """48 leads, daily origins: a fold is over in two parts (a day each), and k (the bias's
    fold count, √(1 + 1/k)) counts the folds wholly over, not the parts. The band the
    backtest gives a fold at the selection's own time (all 8 folds over: k = 8, not its 16
    parts) is the stored band, which sees each fold whole (width 0: no within-day part)."""
    hours, panel = _two_day_rows(seed=3)
    setting = DayShift(width=0, pool="all", min_shifts=3, predictive="bias")
    as_of = T0 + pd.Timedelta(days=9)
    _backtest_band_is_stored_band(hours, panel, setting, (as_of - DAY_H, as_of))


def test_the_bias_is_a_mean_over_folds_when_a_day_is_missing() -> None:
    """48 leads, daily origins, no origin on day 4 and none the day before the selection:
    folds 3 and 7 are over whole at the next origin, the others in two parts (a day each).
    The bias the backtest adds at the selection's time is a mean over folds (each fold's
    residuals summed and counted over its parts), as the stored band's, which sees every
    fold whole; a mean over parts (the old code) weighs folds 3 and 7 half as much."""
    hours, panel = _two_day_rows(seed=3)
    hours = hours[hours["origin"] != T0 + 4 * DAY_H]
    setting = DayShift(width=0, pool="all", min_shifts=3)
    _backtest_band_is_stored_band(hours, panel, setting, (T0 + pd.Timedelta(days=9),))


def test_the_bias_keys_a_peer_groups_folds_by_series_and_origin() -> None:
    """Two peer series with folds at the same origin: A's has 24 residuals (0.2 each), B's 2
    (hours missing; -0.4 each); A's next fold is over in two parts (leads 1-12 at 0.0, 13-24
    at 0.6: fold mean 0.3). The bias is half the series' mean over its folds, half its peer
    group's mean over the group's folds, one fold per (series, origin): for A
    (0.25 + (0.2 - 0.4 + 0.3) / 3) / 2, for B (-0.4 + 0.1 / 3) / 2. Keyed by origin alone,
    A and B's folds at the first origin would merge into one fold of 26 residuals."""
    within = WithinDay(width=3)
    a, b, group = "r0|m|T0|token_rate", "r1|m|T0|token_rate", "T0|token_rate"
    o1, o2 = T0, T0 + DAY_H
    day, first = np.arange(1, 25), np.arange(1, 13)
    within.add(a, "ets", group, np.full(24, 0.2), day, o1)
    within.add(b, "ets", group, np.full(2, -0.4), np.array([1, 2]), o1)
    within.add(a, "ets", group, np.full(12, 0.0), first, o2)
    within.add(a, "ets", group, np.full(12, 0.6), first + 12, o2)
    group_mean = (0.2 - 0.4 + 0.3) / 3
    assert within.bias(a, "ets", group) == pytest.approx((0.25 + group_mean) / 2, rel=1e-12)
    assert within.bias(b, "ets", group) == pytest.approx((-0.4 + group_mean) / 2, rel=1e-12)
