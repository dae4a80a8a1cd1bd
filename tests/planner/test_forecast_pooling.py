"""Pooled conformal bands (:class:`planner.forecast.calibration.Pooling`) and the calibration
offset: the default pooling is the band in use, a pooled band and the offset read only what
was over before each origin, and a series that starts mid-panel gets its metric's level as
offset (daily origins, 24 leads: no fold overlaps the next)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import recalibrate
from planner.forecast.calibration import Pooling
from planner.forecast.series import Panel
from planner.quantiles import HIGH, LOW
from tests.planner.test_forecast_band_leakage import _backtest, _band

ORIGINS = 6


def _altered(hours: pd.DataFrame, cut: pd.Timestamp, factor: np.ndarray | float) -> pd.DataFrame:
    """``hours`` with every actual from ``cut`` on multiplied by ``factor``."""
    future = hours.copy()
    after = future["hour"] >= cut
    future.loc[after, "actual"] *= factor if np.isscalar(factor) else factor[: after.sum()]
    return future


@pytest.mark.parametrize(
    "spec", ["pool:own=0", "pool:own=0.25/group=metric", "pool:group=all/tail=0.6"]
)
def test_a_pooled_band_uses_only_origins_before_its_own(spec: str) -> None:
    """Everything from origin 3 on is altered (the panel the offsets come from is kept):
    bands at origins ≤ 3 do not move (origin 3's is made before its hours are known);
    origin 4's do (it sees origin 3)."""
    settings, pool = BacktestSettings(), Pooling.parse(spec)
    hours, panel = _backtest(24, ORIGINS)
    origins = sorted(hours["origin"].unique())
    noise = np.exp(np.random.default_rng(9).normal(0, 1.0, len(hours)))
    future = _altered(hours, origins[3], noise)
    plain = recalibrate(hours, panel, settings, pool)
    altered = recalibrate(future, panel, settings, pool)
    for origin in origins[:4]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, origins[4]), _band(altered, origins[4]))


@pytest.mark.parametrize("spec", [None, "pool:own=0"])
def test_the_offset_reads_only_hours_before_the_origin(spec: str | None) -> None:
    """The panel the offsets are read from (5 % of each series' mean level) is altered from
    origin 3 on, as the rows' actuals: bands at origins ≤ 3 must not move. An offset from the
    whole panel's mean (the hours after a backtest origin included) fails this."""
    settings = BacktestSettings()
    pool = Pooling.parse(spec) if spec else None
    hours, panel = _backtest(24, ORIGINS)
    origins = sorted(hours["origin"].unique())
    future = _altered(hours, origins[3], 50.0)
    wide = future.pivot(index="hour", columns="series", values="actual")
    plain = recalibrate(hours, panel, settings, pool)
    altered = recalibrate(future, Panel(wide, wide), settings, pool)
    for origin in origins[:4]:
        np.testing.assert_array_equal(_band(plain, origin), _band(altered, origin))
    assert not np.allclose(_band(plain, origins[4]), _band(altered, origins[4]))


def test_the_default_pooling_is_the_band_in_use_and_a_smaller_tail_widens_it() -> None:
    settings = BacktestSettings()
    hours, panel = _backtest(24, ORIGINS)
    plain = recalibrate(hours, panel, settings)
    same = recalibrate(hours, panel, settings, Pooling())
    wider = recalibrate(hours, panel, settings, Pooling(tail=0.5))
    conformal = plain["quantile_method"] == "conformal"
    assert conformal.any()
    pd.testing.assert_frame_equal(plain, same)  # bit for bit, every column
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
