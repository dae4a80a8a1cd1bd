"""The day-shift band (planner.forecast.dayshift): nominal coverage when errors share a day,
day shifts only from folds wholly over, and every chunk of a selection sees them all."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from scipy.stats import t as student

from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import peer_group
from planner.forecast.dayshift import (
    DayShift,
    DayShifts,
    scale_mixed,
)
from planner.forecast.pipeline import ForecastSettings, select_models
from planner.forecast.reband import with_day_shifts
from planner.forecast.series import Panel, build_panel
from planner.quantiles import HIGH, LOW, QUANTILES, quantile_column
from tests.helpers import demand_frame

T0 = pd.Timestamp("2024-06-01")
DAY_H = pd.Timedelta(days=1)
DAY = DayShift(width=6, pool="all")


def _panel_rows(groups: int, origins: int, day_sd: float, seed: int) -> tuple[pd.DataFrame, Panel]:
    """Daily folds (24 leads, point 100) of one forecaster on ``groups`` peer groups of 3
    series; log error = the series' day error that day (σ ``day_sd``, shared by the fold's 24
    hours) + hourly noise (σ 0.1)."""
    rng = np.random.default_rng(seed)
    series = [f"r{r}|m|T{g}|token_rate" for g in range(groups) for r in range(3)]
    hours = pd.date_range(T0, periods=24 * origins, freq="h")
    day = rng.normal(0.0, day_sd, (origins, len(series))).repeat(24, axis=0)
    actual = 100.0 * np.exp(day + rng.normal(0.0, 0.1, (len(hours), len(series))))
    wide = pd.DataFrame(actual, index=hours, columns=series)
    frames = []
    for k in range(origins):
        origin = T0 + pd.Timedelta(days=k)
        at = wide.loc[origin : origin + pd.Timedelta(hours=23)]
        frame = at.stack().rename("actual").reset_index()
        frame.columns = ["hour", "series", "actual"]
        frame["forecaster"], frame["origin"], frame["point"] = "ets", origin, 100.0
        frame["h"] = ((frame["hour"] - origin) / pd.Timedelta(hours=1)).astype(int) + 1
        for tau in QUANTILES:
            frame[f"native_{tau}"] = 100.0
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), Panel(wide, wide)


def _covered(rows: pd.DataFrame) -> pd.Series:
    conf = rows[rows["quantile_method"] == "conformal"]
    inside = (conf["actual"] >= conf[LOW]) & (conf["actual"] <= conf[HIGH])
    return inside.groupby(conf["origin"]).mean()


def test_day_shift_band_covers_a_day_error_at_its_nominal_level() -> None:
    """60 series in 20 peer groups, errors mostly a day level (σ 0.4, one draw per series and
    day, shared by the day's 24 hours) over hourly noise (σ 0.1), 10 daily origins. The band
    in use sizes the day level from its peer group's 3 series: it under-covers throughout.
    The day-shift band sizes it from every series' day shifts: once the series have 6-9
    earlier days (the last 4 origins) it covers 95 % within its sampling error (60 independent
    day errors per origin: ±2.8 points per origin, ±1.4 over four; tolerance 2 se). With 2-5
    earlier days it is lower (about 92 % over seeds 10-17): the bias it adds back is the mean
    of those few days' levels, and that estimate's error is not in the band."""
    hours, panel = _panel_rows(20, 10, 0.4, seed=0)
    settings = BacktestSettings()
    plain = recalibrate(hours, panel, settings)
    banded = with_day_shifts(plain, panel, settings, DayShifts.of(plain, DAY))
    day, base = _covered(banded), _covered(plain)
    assert len(day) == 8  # origins 3-10: the first two have < 48 own residuals
    assert day.iloc[-4:].mean() == pytest.approx(0.95, abs=0.028), day
    assert base.mean() < 0.90 and base.iloc[-4:].mean() < 0.92, base  # same points
    assert (banded["quantile_method"] == plain["quantile_method"]).all()


def test_the_predictive_band_carries_the_bias_error_with_few_days() -> None:
    """The panel above at its first conformal origins (2-5 earlier days): the band in use
    adds back a bias that is the mean of those few days' levels and under-covers (about
    90 % on seed 10; 92 % over seeds 10-17); carrying that mean's error
    (``predictive="bias"``: the shifts widened by √(1 + 1/k)) brings it to nominal within its
    sampling error (240 independent day errors: ±1.4 points; 95.3 % over seeds 10-17; the
    correction is for days shared by the peer group, a little wide here, where they are not)."""
    taken: dict[str, list[float]] = {"off": [], "bias": []}
    hours, panel = _panel_rows(20, 10, 0.4, seed=10)
    settings = BacktestSettings()
    plain = recalibrate(hours, panel, settings)
    for predictive, out in taken.items():
        setting = DayShift(width=6, pool="all", predictive=predictive)
        banded = with_day_shifts(plain, panel, settings, DayShifts.of(plain, setting))
        out.append(_covered(banded).iloc[:4].mean())
    off, bias = np.mean(taken["off"]), np.mean(taken["bias"])
    assert off < 0.92, taken
    assert bias == pytest.approx(0.95, abs=0.02), taken
    assert abs(bias - 0.95) < abs(off - 0.95)


def test_scale_mixed_shifts_are_students_t_when_gaussian() -> None:
    """Gaussian shift quantiles mixed with √(ν/χ²_ν) give Student's t_ν (to the grid's
    resolution), never narrower than the shifts: σ known from few days is not assumed."""
    levels = DAY.levels
    gauss = norm.ppf(levels)
    for dof in (3, 5, 30):
        mixed = scale_mixed(gauss[None, :], dof, levels)[0]
        inner = slice(2, -2)  # levels 0.05..0.95 (the grid's ends are its coarsest)
        np.testing.assert_allclose(mixed[inner], student.ppf(levels, dof)[inner], atol=0.03)
        assert (np.abs(mixed) >= np.abs(gauss) - 1e-9).all()


def test_day_shifts_count_only_folds_wholly_over() -> None:
    """A day shift is known once its later fold's last target hour is over: changing the
    fold that ends at an origin's last hour moves the shifts known one hour later, not at
    that origin or before."""
    hours, panel = _panel_rows(2, 5, 0.4, seed=1)
    rows = recalibrate(hours, panel, BacktestSettings())
    altered = rows.copy()
    fold = altered["origin"] == T0 + pd.Timedelta(days=2)  # over at T0 + 3 days
    altered.loc[fold, "log_residual"] += 1.0
    setting = DayShift(min_shifts=1)
    a, b = DayShifts.of(rows, setting), DayShifts.of(altered, setting)
    series = str(rows["series"].iloc[0])
    over = T0 + pd.Timedelta(days=3)
    for at in (over - pd.Timedelta(hours=1), over - pd.Timedelta(days=1)):
        np.testing.assert_array_equal(*(s.before(at, "ets", series)[0] for s in (a, b)))
    assert not np.allclose(a.before(over, "ets", series)[0], b.before(over, "ets", series)[0])
    assert a.before(T0 + pd.Timedelta(days=1), "ets", series) is None  # no two folds over


def test_spec_and_settings_are_checked() -> None:
    assert DayShift.parse("dayshift:width=2/pool=metric") == DayShift(width=2, pool="metric")
    with pytest.raises(ValueError, match="unknown setting"):
        DayShift.parse("dayshift:wide=2")
    with pytest.raises(ValueError, match="width must be an integer"):
        DayShift.parse("dayshift:width=x")
    with pytest.raises(ValueError, match="pool"):
        DayShift(pool="region")
    assert DayShift.parse("dayshift:predictive=days").predictive == "days"
    with pytest.raises(ValueError, match="predictive"):
        DayShift(predictive="t")


SERIES = (("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F"), ("us-east", "m1", "NIW"))
PLAIN = ForecastSettings(
    metrics=("token_rate",),
    backtest=BacktestSettings(candidates=("snaive24", "ets")),
)
WITH_DAY = dataclasses.replace(
    PLAIN, backtest=dataclasses.replace(PLAIN.backtest, day_shift=DayShift(min_shifts=3))
)


def test_every_chunk_bands_with_the_whole_selections_day_shifts() -> None:
    """Two chunks (IW-F: 2 series; NIW: 1). The selection's rows and stored bands with the
    day-shift band are those of the whole selection's day shifts: the NIW series' band takes
    the IW-F series' shifts too (its own chunk's alone give another band)."""
    demand = demand_frame(days=10, series=SERIES)
    as_of = T0 + pd.Timedelta(days=12)
    plain = select_models(demand, as_of, PLAIN)
    day = select_models(demand, as_of, WITH_DAY)
    panel = build_panel(demand, as_of, PLAIN.history_h, PLAIN.metrics)
    setting = WITH_DAY.backtest.day_shift
    assert setting is not None
    whole = with_day_shifts(
        plain.hours, panel, WITH_DAY.backtest, DayShifts.of(plain.hours, setting)
    )
    key = ["series", "forecaster", "origin", "h"]
    cols = [quantile_column(t) for t in QUANTILES]
    got = day.hours.sort_values(key).reset_index(drop=True)
    want = whole.sort_values(key).reset_index(drop=True)
    np.testing.assert_allclose(got[cols], want[cols])
    assert not np.allclose(got[cols], plain.hours.sort_values(key)[cols])
    assert (day.deployed["in_band"] != plain.deployed["in_band"]).any() or not np.allclose(
        day.folds["scaled_pinball"], plain.folds["scaled_pinball"]
    )
    niw = next(s for s in panel.series if "NIW" in s)
    alone = plain.hours[plain.hours["series"] == niw]
    own_chunk = with_day_shifts(alone, panel, WITH_DAY.backtest, DayShifts.of(alone, setting))
    rows = got[got["series"] == niw].reset_index(drop=True)
    assert not np.allclose(rows[cols], own_chunk.sort_values(key).reset_index(drop=True)[cols])
    # the stored band is the band the backtest gives a fold at the selection's own time (a
    # made-up origin at as_of, its points the last fold's): same shifts, same within-day part
    fs = day.fitted[niw]
    mine = day.hours[(day.hours["series"] == niw) & (day.hours["forecaster"] == fs.forecaster)]
    fake = mine[mine["origin"] == mine["origin"].max()].copy()
    fake["origin"] = as_of
    fake["hour"] = as_of + pd.to_timedelta(fake["h"] - 1, unit="h")
    fake["actual"] = np.nan
    rows_at = pd.concat([day.hours, fake], ignore_index=True)
    banded = with_day_shifts(rows_at, panel, WITH_DAY.backtest, DayShifts.of(day.hours, setting))
    at = banded[(banded["origin"] == as_of) & (banded["series"] == niw)].sort_values("h")
    stored = fs.residuals.apply(at["point"].to_numpy(), at["h"].to_numpy())
    for tau in QUANTILES:
        np.testing.assert_allclose(at[quantile_column(tau)].to_numpy(), stored[tau], atol=1e-9)
    assert fs.residuals != plain.fitted[niw].residuals
    assert peer_group(niw) == "NIW|token_rate"


def test_an_origin_read_as_0_publishes_the_day_shift_band_after_lead_1() -> None:
    """Leads ≥ 2 of an origin whose reading was 0 publish the forecast's band (as the hourly
    job does with the stored day-shift band); every other nowcast band is left alone."""
    hours, panel = _panel_rows(2, 6, 0.4, seed=2)
    plain = recalibrate(hours, panel, BacktestSettings())
    zero = (plain["series"] == plain["series"].iloc[0]) & (plain["origin"] == plain["origin"].max())
    plain["nowcast_reading"] = np.where(zero, 0.0, 5.0)
    for col in [quantile_column(t) for t in QUANTILES] + ["quantile_method"]:
        plain["nowcast_" + col] = plain[col]
    banded = with_day_shifts(plain, panel, BacktestSettings(), DayShifts.of(plain, DAY))
    copied = zero & (plain["h"] > 1)
    for tau in QUANTILES:
        col = quantile_column(tau)
        np.testing.assert_array_equal(banded.loc[copied, "nowcast_" + col], banded.loc[copied, col])
        np.testing.assert_array_equal(
            banded.loc[~copied, "nowcast_" + col], plain.loc[~copied, col]
        )
    assert not np.allclose(banded.loc[copied, HIGH], plain.loc[copied, HIGH])


def test_the_first_pass_leaves_the_band_to_the_re_band(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the day-shift band the chunks' first pass keeps the model's own intervals
    (finish_backtest(banded=False)): the re-band makes every row's band again from the same
    rows, so the selection (rows, scores, choices, stored bands) is what it was when the
    first pass made the band in use first. Without it (no re-band) the first pass bands."""
    demand = demand_frame(days=10, series=SERIES)
    as_of = T0 + pd.Timedelta(days=12)
    plain = select_models(demand, as_of, PLAIN)
    assert (plain.hours["quantile_method"] == "conformal").any()
    fast = select_models(demand, as_of, WITH_DAY)
    import planner.forecast.pipeline as pipeline

    banded = pipeline.finish_backtest

    def first_banded(*args: object) -> object:
        assert args[4] is False  # the skip is taken
        return banded(*args[:4], True)  # type: ignore[arg-type]  # the band in use first

    monkeypatch.setattr(pipeline, "finish_backtest", first_banded)
    before = select_models(demand, as_of, WITH_DAY)
    pd.testing.assert_frame_equal(fast.hours, before.hours)
    pd.testing.assert_frame_equal(fast.folds, before.folds)
    pd.testing.assert_frame_equal(fast.chosen, before.chosen)
    assert fast.fitted.keys() == before.fitted.keys()
    for series, fs in fast.fitted.items():
        was = before.fitted[series]
        assert fs.residuals == was.residuals and fs.nowcast_residuals == was.nowcast_residuals
        assert fs.fallback_residuals == was.fallback_residuals


def test_min_days_counts_the_days_shifts_end_on_not_the_shifts() -> None:
    """60 series give 60 day shifts from one pair of days: ``min_days`` counts that as one."""
    hours, panel = _panel_rows(20, 4, 0.4, seed=2)
    rows = recalibrate(hours, panel, BacktestSettings())
    series = str(rows["series"].iloc[0])
    one_pair, two_pairs = T0 + pd.Timedelta(days=2), T0 + pd.Timedelta(days=3)
    by_shifts = DayShifts.of(rows, DayShift(min_shifts=60))
    by_days = DayShifts.of(rows, DayShift(min_days=2))
    assert by_shifts.before(one_pair, "ets", series) is not None  # 60 shifts, one day pair
    assert by_days.before(one_pair, "ets", series) is None
    assert by_days.before(two_pairs, "ets", series) is not None


def test_min_days_counts_calendar_days_with_origins_12_hours_apart() -> None:
    """Folds 12 hours apart (step_h 12, 24 leads): their day shifts end at two hours of a
    day, and ``min_days`` counts that day once (not each fold-end hour)."""
    rng = np.random.default_rng(4)
    step = pd.Timedelta(hours=12)
    rows = pd.DataFrame(
        [
            ("r0|m|T0|token_rate", "ets", T0 + k * step, h, rng.normal(0.0, 0.3))
            for k in range(5)
            for h in range(1, 25)
        ],
        columns=["series", "forecaster", "origin", "h", "log_residual"],
    )
    shifts = DayShifts.of(rows, DayShift(min_shifts=1, min_days=3))
    # shifts end at T0 + 36 h, 48 h, 60 h, 72 h: days 1, 2, 2, 3
    assert shifts.before(T0 + pd.Timedelta(hours=60), "ets", "r0|m|T0|token_rate") is None
    assert shifts.before(T0 + pd.Timedelta(hours=72), "ets", "r0|m|T0|token_rate") is not None


def test_before_mixes_the_scale_by_shifts_or_by_days() -> None:
    """60 series, day shifts from 3 day pairs (180 shifts) over at the origin: under
    ``predictive="shifts"`` the grid :meth:`DayShifts.before` gives is the plain one mixed
    with ν = 180, under ``"days"`` with ν = 3; under ``"bias"`` it is the plain one."""
    hours, panel = _panel_rows(20, 5, 0.4, seed=5)
    rows = recalibrate(hours, panel, BacktestSettings())
    series, at = str(rows["series"].iloc[0]), T0 + pd.Timedelta(days=4)
    got = {
        p: DayShifts.of(rows, DayShift(predictive=p)).before(at, "ets", series)
        for p in ("off", "bias", "shifts", "days")
    }
    per, pooled = got["off"] or pytest.fail("no day shifts")
    levels, mixed = DAY.levels, {}
    for name, dof in (("shifts", 180), ("days", 3)):
        mixed[name] = got[name] or pytest.fail(name)
        np.testing.assert_allclose(mixed[name][0], scale_mixed(per, dof, levels))
        np.testing.assert_allclose(mixed[name][1], scale_mixed(pooled[None, :], dof, levels)[0])
    bias = got["bias"] or pytest.fail("bias")
    np.testing.assert_array_equal(bias[0], per)
    assert not np.allclose(mixed["shifts"][0], mixed["days"][0])


def test_the_scale_mixture_needs_three_degrees_of_freedom() -> None:
    """ν < 3 (t₁ and t₂ tails would multiply the shifts many times over): the mixture is
    left out, the grid is the plain one (the bias's widening is still carried)."""
    hours, panel = _panel_rows(20, 4, 0.4, seed=2)
    rows = recalibrate(hours, panel, BacktestSettings())
    series = str(rows["series"].iloc[0])
    one = rows[rows["series"] == series]
    for frame, at, predictive in (
        (rows, T0 + pd.Timedelta(days=2), "days"),  # 60 shifts, 1 day: ν = 1
        (one, T0 + pd.Timedelta(days=3), "shifts"),  # 2 shifts: ν = 2
    ):
        setting = DayShift(min_shifts=1, predictive=predictive)
        got = DayShifts.of(frame, setting).before(at, "ets", series) or pytest.fail(predictive)
        plain = DayShifts.of(frame, DayShift(min_shifts=1)).before(at, "ets", series)
        assert plain is not None
        np.testing.assert_array_equal(got[0], plain[0])
        np.testing.assert_array_equal(got[1], plain[1])
