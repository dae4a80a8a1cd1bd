"""What the planner covers: per tier, the forecast quantile of the metric it plans on."""

from __future__ import annotations

import pandas as pd

from planner.config import FleetConfig
from planner.quantiles import quantile_column


def planning_demand(forecasts: pd.DataFrame, cfg: FleetConfig) -> pd.DataFrame:
    """Rows (hour, region, model, tier, value): each tier's ``planning_quantile`` of its
    ``planning_metric`` (tokens/s). ``forecasts`` has the columns of the forecasts table."""
    parts = []
    for tier in cfg.tiers:
        sel = forecasts[
            (forecasts["tier"] == tier.id) & (forecasts["metric"] == tier.planning_metric)
        ]
        if sel.empty:
            continue
        col = quantile_column(tier.planning_quantile)
        parts.append(
            pd.DataFrame(
                {
                    "hour": pd.to_datetime(sel["hour"]),
                    "region": sel["region"],
                    "model": sel["model"],
                    "tier": tier.id,
                    "value": sel[col].astype(float),
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=["hour", "region", "model", "tier", "value"])
    return pd.concat(parts, ignore_index=True)
