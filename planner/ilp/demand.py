"""What the planner covers: per tier, the forecast quantile of the metric it plans on."""

from __future__ import annotations

from collections.abc import Mapping

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


def input_shares(history: pd.DataFrame) -> Mapping[tuple[str, str], float]:
    """φ per (model, tier): input tokens / all tokens over the given demand-mart rows."""
    if history.empty:
        return {}
    g = history.groupby(["model", "tier"])[["input_tokens", "output_tokens"]].sum()
    total = g["input_tokens"] + g["output_tokens"]
    share = (g["input_tokens"] / total).where(total > 0)
    return {(str(k[0]), str(k[1])): float(v) for k, v in share.dropna().items()}  # type: ignore[index]
