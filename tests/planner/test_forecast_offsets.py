"""One calibration offset for the backtest and the live bands (issue #18): the selection's
stored band is applied at the offset its backtest residuals were computed with."""

from __future__ import annotations

import pandas as pd
import pytest

from planner.forecast.backtest import BacktestSettings
from planner.forecast.bands import origin_offsets
from planner.forecast.calibration import OFFSET_SHARE, offsets_at, offsets_now
from planner.forecast.pipeline import ForecastSettings, select_models
from planner.forecast.series import build_panel
from tests.helpers import demand_frame

QUIET = "us-west|m1|IW-F|token_rate"
BUSY = "us-east|m1|IW-F|token_rate"


def _quiet_demand() -> pd.DataFrame:
    """Two series of one peer group; ``QUIET`` has had no demand at all."""
    d = demand_frame(days=9, series=(("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F")))
    quiet = d["region"] == "us-west"
    cols = ["requests", "input_tokens", "output_tokens", "token_rate", "peak_minute_token_rate"]
    d.loc[quiet, cols] = 0
    return d


def test_a_series_without_demand_takes_its_peer_groups_median_level() -> None:
    d = _quiet_demand()
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    observed = build_panel(d, origin, metrics=("token_rate",)).observed
    at = offsets_at(observed, pd.DatetimeIndex([origin - pd.Timedelta(days=2), origin]))
    for when in at.index:
        busy = float(observed.loc[observed.index < when, BUSY].mean())
        assert at.loc[when, BUSY] == pytest.approx(OFFSET_SHARE * busy)
        assert at.loc[when, QUIET] == pytest.approx(OFFSET_SHARE * busy)  # not 1e-6
    # nothing after an origin: changing the last two days moves only the later offset
    later = observed.copy()
    later.loc[later.index >= origin - pd.Timedelta(days=2), BUSY] *= 3
    moved = offsets_at(later, at.index)
    assert moved.iloc[0].tolist() == at.iloc[0].tolist()
    assert moved.loc[origin, BUSY] > at.loc[origin, BUSY]


def test_the_live_band_is_applied_at_the_backtests_offset() -> None:
    d = _quiet_demand()
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    settings = ForecastSettings(
        metrics=("token_rate",), backtest=BacktestSettings(candidates=("snaive24",))
    )
    selection = select_models(d, origin, settings)
    panel = build_panel(d, origin, metrics=("token_rate",))
    # the backtest's offset of a row at an origin at the selection's as_of
    rows = pd.DataFrame({"origin": [origin, origin], "series": [QUIET, BUSY]})
    backtest = dict(zip(rows["series"], origin_offsets(rows, panel), strict=True))
    live = offsets_now(panel.observed)
    for series in (QUIET, BUSY):
        residuals = selection.fitted[series].residuals
        assert residuals is not None
        assert residuals.offset == pytest.approx(backtest[series])
        assert residuals.offset == pytest.approx(live[series])
    assert selection.fitted[QUIET].residuals.offset > 1.0  # the peers' level, not 1e-6


def test_a_quiet_peer_group_takes_its_metrics_median_level() -> None:
    """A new tier whose every series is quiet before the origin: its offset is the metric's
    median level over the other tiers (was 1e-6: a first demand of ~+18 in log residual)."""
    d = demand_frame(
        days=9,
        series=(("us-east", "m1", "IW-F"), ("us-west", "m1", "IW-F"), ("us-east", "m1", "NIW")),
    )
    new = d["tier"] == "NIW"
    cols = ["requests", "input_tokens", "output_tokens", "token_rate", "peak_minute_token_rate"]
    d.loc[new, cols] = 0
    origin = d["hour"].max() + pd.Timedelta(hours=1)
    observed = build_panel(d, origin, metrics=("token_rate", "request_rate")).observed
    at = offsets_at(observed, pd.DatetimeIndex([origin])).iloc[0]
    for metric in ("token_rate", "request_rate"):
        levels = [observed[f"{r}|m1|IW-F|{metric}"].mean() for r in ("us-east", "us-west")]
        expected = OFFSET_SHARE * float(pd.Series(levels).median())
        assert at[f"us-east|m1|NIW|{metric}"] == pytest.approx(expected)
    # a metric quiet everywhere keeps the floor (nothing to take a level from)
    silent = observed.copy()
    silent[[c for c in silent.columns if c.endswith("request_rate")]] = 0.0
    floor = offsets_at(silent, pd.DatetimeIndex([origin])).iloc[0]
    assert floor["us-east|m1|NIW|request_rate"] == pytest.approx(1e-6)
    assert floor["us-east|m1|NIW|token_rate"] == pytest.approx(at["us-east|m1|NIW|token_rate"])
