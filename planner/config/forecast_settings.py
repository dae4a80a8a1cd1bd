"""The config's ``forecast`` section: which forecasters the daily selection tries, how far
ahead, and how its bands are made (planner.forecast)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# The forecasters the daily selection tries by default (planner.forecast.models registers them).
# ARIMA stays available but off by default: on ServeGen-derived logs it won 5-7 of 54 series
# yet the deployed selection scored no better without it (token rate 15.6 % vs 15.2 % better
# than seasonal naive) at 2.3x the selection time (0.2-0.4 s per fit).
DEFAULT_FORECAST_CANDIDATES: tuple[str, ...] = (
    "snaive24",
    "snaive168",
    "ets",
    "theta",
    "ets_theta",
    "mstl",
    "gbm",
    "ets_theta_gbm",
)


class ForecastSettingsConfig(BaseModel):
    """How demand is forecast (see planner.forecast). As every section: unknown keys are
    errors, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    horizon_h: int = Field(default=24, ge=1, le=168)
    history_days: int = Field(default=28, ge=3, description="history the models see")
    candidates: list[str] = Field(
        min_length=1,
        default_factory=lambda: list(DEFAULT_FORECAST_CANDIDATES),
        description="registry names; 'arima' is registered but off by default (cost)",
    )
    champion: str = Field(default="ets_theta_gbm", description="default choice for every series")
    challenger_margin: float = Field(default=0.05, ge=0, lt=1)
    min_folds: int = Field(default=3, ge=1)
    backtest_days: int = Field(default=14, ge=2, description="daily origins looked back")
    screen_origins: int = Field(default=3, ge=1)
    finalist_margin: float = Field(default=0.10, ge=0)
    workers: int = Field(default=2, ge=1, description="processes for the daily selection")
    calibrate_by_horizon: bool = Field(
        default=True,
        description="conformal bands per hour ahead (1..horizon) instead of one pooled band",
    )
    day_shift_band: bool = Field(
        default=True,
        description="the day-shift band (planner.forecast.dayshift): day-level moves pooled "
        "over the selection's series; off: the band pooled per peer group alone (README, #18)",
    )
    day_shift_width_h: int = Field(
        default=6, ge=0, le=24, description="the day level at lead h: mean over leads h ± this"
    )
    day_shift_pool: Literal["all", "metric", "tier", "tier_metric"] = Field(
        default="metric", description="whose day shifts a series' band takes"
    )
