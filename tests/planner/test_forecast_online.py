"""The online band (adaptive conformal inference on the miscoverage level, per lead) and the
rule every conformal band keeps: a residual counts only once its target hour is over."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from planner.forecast.adaptive import BandAdapt, LevelState, ScaleState
from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import Pooling
from planner.forecast.series import Panel
from planner.quantiles import HIGH, LOW, QUANTILES, quantile_column

SERIES = [f"r{i}|m|IW-F|token_rate" for i in range(3)]
T0 = pd.Timestamp("2024-06-01")
LEVEL = "level:scope=own/gamma=0.05/lo=0.25/hi=2"
STUD = "stud:scope=own/window_h=24/lo=0.5/hi=2"


def _backtest(step_h: int, n: int, shock_at: int | None = None) -> tuple[pd.DataFrame, Panel]:
    """Rows of one forecaster on 3 series, ``n`` origins ``step_h`` apart × 24 leads, point
    100, actuals log-normal around it (× 3 from origin ``shock_at`` on)."""
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
            if shock_at is not None and k >= shock_at:
                frame["actual"] *= 3.0
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
    pool = Pooling.parse(spec) if spec.startswith("pool:") else None
    adapt = None if spec == "none" or pool else BandAdapt.parse(spec)
    return recalibrate(hours, panel, settings, adapt, pool)


@pytest.mark.parametrize(
    "spec",
    [
        "none",
        LEVEL,
        "level:scope=log/gamma=0.02/lo=0.25/hi=2",
        STUD,
        "stud:scope=tier/window_h=6/lo=0.5/hi=2",
        "pool:group=tier",
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


def test_aci_updates_each_lead_once_its_hour_is_over() -> None:
    """α_h ← α_h + γ(α − err_h), clipped to [lo·α, hi·α]; a lead whose hour is not over yet
    keeps its α."""
    state = LevelState(BandAdapt.parse("level:scope=own/gamma=0.1/lo=0.25/hi=2"), horizon=3)
    assert state.tails("s", "f") is None
    state.observe("s", "f", T0, np.array([1, 2, 3]), np.array([False, True, True]))
    state.advance(T0 + pd.Timedelta(hours=2))  # leads 1 and 2 (hours T0, T0+1) are over
    tails = state.tails("s", "f")
    assert tails is not None
    # lead 1 missed: 0.05 + 0.1 (0.05 - 1) < 0.0125 → the floor; lead 2 hit: 0.055
    np.testing.assert_allclose(tails, [0.25, 1.1, 1.0])
    state.advance(T0 + pd.Timedelta(hours=3))
    np.testing.assert_allclose(state.tails("s", "f"), [0.25, 1.1, 1.1])  # type: ignore[arg-type]
    assert state.tails("other", "f") is None  # scope own: each series its own level


def test_the_level_band_widens_after_misses_and_narrows_after_hits() -> None:
    settings = BacktestSettings()
    hours, panel = _backtest(24, 6, shock_at=3)
    plain = recalibrate(hours, panel, settings)
    online = recalibrate(hours, panel, settings, BandAdapt.parse(LEVEL))
    origins = sorted(hours["origin"].unique())

    def width(frame: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
        at = frame[frame["origin"] == origin].sort_values(["series", "h"])
        out: np.ndarray = (at[HIGH] - at[LOW]).to_numpy()
        return out

    # origin 2: the first conformal band, no update yet; at origin 3 a (series, lead) whose
    # point at origin 2 fell inside narrows, one that fell outside widens
    np.testing.assert_array_equal(width(online, origins[2]), width(plain, origins[2]))
    at2 = online[online["origin"] == origins[2]].sort_values(["series", "h"])
    inside = ((at2["actual"] >= at2[LOW]) & (at2["actual"] <= at2[HIGH])).to_numpy()
    assert 0 < (~inside).sum() < len(inside) / 4
    narrower = width(online, origins[3]) <= width(plain, origins[3])
    np.testing.assert_array_equal(narrower, inside)
    # origin 3's band (made before the shock) missed: origin 4's band is wider at every lead
    assert (width(online, origins[4]) > width(plain, origins[4])).all()


def test_day_level_bands_refuse_overlapping_folds() -> None:
    settings = dataclasses.replace(BacktestSettings(), step_h=12)
    hours, panel = _backtest(12, 4)
    with pytest.raises(ValueError, match="origins ≥ horizon apart"):
        recalibrate(hours, panel, settings, BandAdapt.parse("aci"))


def test_the_local_scale_reads_only_hours_already_over() -> None:
    """σ = mean |r| of the last ``window_h`` realised hours over the mean of all realised
    hours, clipped; 1 for a key with no realised hour."""
    state = ScaleState(BandAdapt.parse("stud:scope=own/window_h=1/lo=0.5/hi=2"))
    state.observe("s", "f", T0, np.array([1.0, -1.0, 3.0, -3.0]), np.array([1, 2, 3, 4]))
    state.advance(T0 + pd.Timedelta(hours=2))  # hours T0 and T0+1 are over: |r| 1, 1
    assert state.sigma("s", "f") == 1.0
    state.advance(T0 + pd.Timedelta(hours=4))  # the last hour |r| 3, all four mean 2
    assert state.sigma("s", "f") == pytest.approx(1.5)
    assert state.sigma("other", "f") == 1.0
    state.observe("s", "f", T0 + pd.Timedelta(hours=4), np.array([30.0]), np.array([1]))
    state.advance(T0 + pd.Timedelta(hours=5))
    assert state.sigma("s", "f") == 2.0  # clipped to hi


def test_the_studentized_band_widens_once_a_shock_is_over() -> None:
    """Actuals × 3 from origin 3 on: at origin 4 the studentized band (σ from the last day)
    is wider than the plain one at every lead and series."""
    settings = BacktestSettings()
    hours, panel = _backtest(24, 6, shock_at=3)
    plain = recalibrate(hours, panel, settings)
    stud = recalibrate(hours, panel, settings, BandAdapt.parse(STUD))
    at = sorted(hours["origin"].unique())[4]

    def width(frame: pd.DataFrame) -> np.ndarray:
        rows = frame[frame["origin"] == at].sort_values(["series", "h"])
        out: np.ndarray = (rows[HIGH] - rows[LOW]).to_numpy()
        return out

    assert (width(stud) > width(plain)).all()
