"""The adaptive band (planner.forecast.adaptive): made from earlier origins only, and it adapts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.adaptive import BandAdapt
from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import Pooling, ResidualQuantiles
from planner.forecast.series import Panel
from planner.quantiles import HIGH, LOW, QUANTILES, quantile_column

SERIES = [f"r{i}|m|IW-F|token_rate" for i in range(3)]
T0 = pd.Timestamp("2024-06-01")
ORIGINS = [T0 + pd.Timedelta(hours=24 * k) for k in range(6)]


def _backtest(shock_at: int | None = None, factor: float = 4.0) -> tuple[pd.DataFrame, Panel]:
    """Backtest rows of one forecaster on 3 series, 6 daily origins × 24 leads, point 100;
    actuals log-normal around it, scaled by ``factor`` from origin ``shock_at`` on."""
    rng = np.random.default_rng(5)
    frames = []
    for origin in ORIGINS:
        for series in SERIES:
            hour = pd.date_range(origin, periods=24, freq="h")
            actual = 100 * np.exp(rng.normal(0, 0.1, 24))
            if shock_at is not None and origin >= ORIGINS[shock_at]:
                actual = actual * factor
            frame = pd.DataFrame(
                {"series": series, "forecaster": "ets", "origin": origin, "hour": hour}
            )
            frame["h"] = np.arange(1, 25)
            frame["point"] = 100.0
            frame["actual"] = actual
            for tau in QUANTILES:
                frame[f"native_{tau}"] = 100.0
            frames.append(frame)
    hours = pd.concat(frames, ignore_index=True)
    wide = hours.pivot(index="hour", columns="series", values="actual")
    return hours, Panel(wide, wide)


def _band(hours: pd.DataFrame, origin: pd.Timestamp) -> np.ndarray:
    at = hours[hours["origin"] == origin].sort_values(["series", "h"])
    out: np.ndarray = at[[quantile_column(t) for t in QUANTILES]].to_numpy()
    return out


@pytest.mark.parametrize("spec", ["recent", "aci", "recent:scope=own", "aci:scope=peer"])
def test_the_adaptive_band_uses_only_origins_before_its_own(spec: str) -> None:
    """Everything from origin 3 on is altered: the bands at origins ≤ 3 must not move (the
    band of origin 3 is made before its hours are known); origin 4's must (it sees origin 3)."""
    settings = BacktestSettings()
    adapt = BandAdapt.parse(spec)
    hours, panel = _backtest()
    # the panel (offsets: a level per series) is kept; only what happens after the cut moves
    future = hours.copy()
    after = future["hour"] >= ORIGINS[3]
    future.loc[after, "actual"] *= np.exp(np.random.default_rng(9).normal(0, 1.0, after.sum()))
    plain = recalibrate(hours, panel, settings, adapt)
    altered = recalibrate(future, panel, settings, adapt)
    for origin in ORIGINS[:4]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, ORIGINS[4]), _band(altered, ORIGINS[4]))


@pytest.mark.parametrize("spec", [None, "recent", "pool:own=0"])
def test_the_offset_reads_only_hours_before_the_origin(spec: str | None) -> None:
    """The panel the offsets are read from (5 % of each series' mean level) is altered from
    origin 3 on, as the rows' actuals: bands at origins ≤ 3 must not move. An offset from the
    whole panel's mean (the hours after a backtest origin included) fails this."""
    settings = BacktestSettings()
    adapt = BandAdapt.parse(spec) if spec and not spec.startswith("pool") else None
    pool = Pooling.parse(spec) if spec and spec.startswith("pool") else None
    hours, panel = _backtest()
    future = hours.copy()
    after = future["hour"] >= ORIGINS[3]
    future.loc[after, "actual"] *= 50.0
    wide = future.pivot(index="hour", columns="series", values="actual")
    plain = recalibrate(hours, panel, settings, adapt, pool)
    altered = recalibrate(future, Panel(wide, wide), settings, adapt, pool)
    for origin in ORIGINS[:4]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, ORIGINS[4]), _band(altered, ORIGINS[4]))


@pytest.mark.parametrize("spec", ["recent", "aci"])
def test_the_band_widens_after_a_shock(spec: str) -> None:
    settings = BacktestSettings()
    hours, panel = _backtest(shock_at=3, factor=3.0)
    plain = recalibrate(hours, panel, settings, None)
    adapted = recalibrate(hours, panel, settings, BandAdapt.parse(spec))
    lo, hi = QUANTILES.index(0.025), QUANTILES.index(0.975)

    def width(frame: pd.DataFrame, origin: pd.Timestamp) -> float:
        band = _band(frame, origin)
        return float(np.mean(band[:, hi] - band[:, lo]))

    # before the shock is known nothing differs much; after it the adapted band is wider
    assert width(adapted, ORIGINS[3]) == pytest.approx(width(plain, ORIGINS[3]), rel=0.25)
    assert width(adapted, ORIGINS[4]) > 1.2 * width(plain, ORIGINS[4])


def test_spread_keeps_the_median_and_scales_the_distance_to_it() -> None:
    rq = ResidualQuantiles.fit(np.linspace(-1, 1, 201), 1.0)
    wide = rq.spread_by(2.0)
    mid = QUANTILES.index(0.5)
    assert wide.values[mid] == pytest.approx(rq.values[mid])
    for v, w in zip(rq.values, wide.values, strict=True):
        assert w - wide.values[mid] == pytest.approx(2.0 * (v - rq.values[mid]))


def test_band_adapt_settings_are_checked() -> None:
    assert BandAdapt.parse("aci:scope=peer/gamma=3") == BandAdapt("aci", scope="peer", gamma=3.0)
    with pytest.raises(ValueError, match="expected one of"):
        BandAdapt.parse("wider")
    with pytest.raises(ValueError, match="unknown setting"):
        BandAdapt.parse("recent:width=2")


@pytest.mark.parametrize(
    "spec", ["pool:own=0", "pool:own=0.25/group=metric", "pool:group=all/tail=0.6"]
)
def test_a_pooled_band_uses_only_origins_before_its_own(spec: str) -> None:
    """As the adaptive band's leakage test, for the pooled bands (:class:`Pooling`): bands
    at origins ≤ 3 do not move when everything from origin 3 on changes; origin 4's do."""
    settings = BacktestSettings()
    pool = Pooling.parse(spec)
    hours, panel = _backtest()
    future = hours.copy()
    after = future["hour"] >= ORIGINS[3]
    future.loc[after, "actual"] *= np.exp(np.random.default_rng(9).normal(0, 1.0, after.sum()))
    plain = recalibrate(hours, panel, settings, pool=pool)
    altered = recalibrate(future, panel, settings, pool=pool)
    for origin in ORIGINS[:4]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, ORIGINS[4]), _band(altered, ORIGINS[4]))


def test_the_default_pooling_is_the_band_in_use_and_a_smaller_tail_widens_it() -> None:
    settings = BacktestSettings()
    hours, panel = _backtest()
    plain = recalibrate(hours, panel, settings)
    same = recalibrate(hours, panel, settings, pool=Pooling())
    wider = recalibrate(hours, panel, settings, pool=Pooling(tail=0.5))
    conformal = plain["quantile_method"] == "conformal"
    assert conformal.any()
    np.testing.assert_array_equal(plain[HIGH], same[HIGH])
    assert (wider.loc[conformal, HIGH] >= plain.loc[conformal, HIGH]).all()
    assert (wider.loc[conformal, HIGH] > plain.loc[conformal, HIGH]).any()
    assert (wider.loc[conformal, LOW] <= plain.loc[conformal, LOW]).all()


def test_pooling_settings_are_checked() -> None:
    assert Pooling.parse("pool:own=0.25/group=metric/tail=0.8") == Pooling(0.25, "metric", 0.8)
    assert Pooling(tail=0.5).levels((0.025, 0.5, 0.975)) == (0.0125, 0.5, 0.9875)
    for bad in ("pool:own=2", "pool:group=region", "pool:tail=0", "pool:width=1", "aci"):
        with pytest.raises(ValueError):
            Pooling.parse(bad)


def test_a_series_that_starts_mid_panel_gets_its_metrics_offset_not_a_tiny_one() -> None:
    """Before its first demand a series has no level of its own: its offset is its metric's
    median level before the origin, so its first hours' log residuals stay a few units (with
    the 1e-6 floor they were ~+18 and set every pooled upper quantile)."""
    from planner.forecast.pipeline import ForecastSettings, select_models
    from tests.helpers import demand_frame

    d = demand_frame(days=10, series=(("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F")))
    quiet = (d["region"] == "us-west") & (d["hour"] < d["hour"].min() + pd.Timedelta(days=6))
    d.loc[quiet, d.select_dtypes("number").columns.difference(["coverage"])] = 0
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    backtest = BacktestSettings(candidates=("snaive24", "theta"), min_residuals=24)
    sel = select_models(d, origin, ForecastSettings(metrics=("token_rate",), backtest=backtest))
    assert sel.hours["log_residual"].abs().max() < 6.0
    assert max(max(f.residuals.values) for f in sel.fitted.values() if f.residuals) < 6.0
