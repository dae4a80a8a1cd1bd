"""Small synthetic inputs shared by tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

TIMEZONES = {"us-east": "America/New_York", "us-west": "America/Los_Angeles"}


def demand_frame(
    days: int = 10,
    series: tuple[tuple[str, str, str], ...] = (
        ("us-east", "m1", "IW-F"),
        ("us-west", "m1", "IW-F"),
        ("us-east", "m1", "NIW"),
    ),
    seed: int = 0,
    start: str = "2024-06-03",
) -> pd.DataFrame:
    """A demand mart (demand_hourly columns) with daily cycles in local time and noise."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range(start, periods=days * 24, freq="h")
    frames = []
    for region, model, tier in series:
        local = hours.tz_localize("UTC").tz_convert(TIMEZONES[region]).hour.to_numpy()
        level = 100.0 if tier != "NIW" else 60.0
        shape = 1 + 0.6 * np.sin(2 * np.pi * (local - 9) / 24)
        rate = level * shape * rng.lognormal(0, 0.1, len(hours))
        requests = rng.poisson(rate * 3.6)
        frames.append(
            pd.DataFrame(
                {
                    "hour": hours,
                    "region": region,
                    "model": model,
                    "tier": tier,
                    "requests": requests,
                    "input_tokens": requests * 800,
                    "output_tokens": requests * 200,
                    "token_rate": requests * 1000 / 3600.0,
                    "peak_minute_token_rate": requests * 1000 / 3600.0 * 1.5,
                    "coverage": 1.0,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def replay(p: Any, demand: Any, policy: Any, drain: bool = True) -> Any:
    """The fluid replay on the ideal server (the config's θ, no slowdown below saturation):
    the limit case in which the accounting tests are computed by hand."""
    from planner.sim.fluid import simulate
    from planner.sim.serving import ideal

    return simulate(p, demand, policy, drain, serving=ideal(p))
