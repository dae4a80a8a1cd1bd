"""The config's ``forecast`` section reaches the selection's settings (issue #18): the
day-shift band's keys become its :class:`DayShift`, and ``day_shift_band: false`` leaves the
band in use (no day shift)."""

from __future__ import annotations

from flows.forecasting import settings_from_config
from planner.config import FleetConfig
from planner.forecast.dayshift import DayShift


def _with(cfg: FleetConfig, **forecast: object) -> FleetConfig:
    return cfg.model_copy(update={"forecast": cfg.forecast.model_copy(update=forecast)})


def test_the_day_shift_keys_become_the_selections_day_shift(cfg: FleetConfig) -> None:
    default = settings_from_config(cfg).backtest.day_shift
    assert default == DayShift(width=6, pool="metric")
    tier = settings_from_config(_with(cfg, day_shift_width_h=2, day_shift_pool="tier"))
    assert tier.backtest.day_shift == DayShift(width=2, pool="tier")
    assert settings_from_config(_with(cfg, day_shift_band=False)).backtest.day_shift is None
