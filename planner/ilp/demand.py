"""What the planner covers: per tier, the forecast quantile of the metric it plans on."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from planner.config import FleetConfig
from planner.ilp.frames import rows


def quantile_column(q: float) -> str:
    """Forecast column of quantile q (as stored: q_0_95 for 0.95)."""
    return "q_" + f"{q:g}".replace(".", "_")


def planning_demand(
    forecasts: pd.DataFrame,
    cfg: FleetConfig,
    input_share: Mapping[tuple[str, str], float] | None = None,
) -> pd.DataFrame:
    """Rows (hour, region, model, tier, value): each tier's ``planning_quantile`` of its
    ``planning_metric`` (tokens/s). ``forecasts`` has the columns of the forecasts table.
    With ``planner.interactive_sizing: latency`` the interactive rows are what the latency
    target needs (:mod:`planner.ilp.sizing`; ``input_share`` φ per (model, tier))."""
    base = _tier_quantiles(forecasts, cfg)
    if cfg.planner.interactive_sizing == "latency":
        from planner.ilp.sizing import latency_sized_demand

        return latency_sized_demand(forecasts, cfg, base, input_share)
    return base


def _tier_quantiles(forecasts: pd.DataFrame, cfg: FleetConfig) -> pd.DataFrame:
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


def interactive_means(forecasts: pd.DataFrame, cfg: FleetConfig) -> pd.DataFrame:
    """Rows (hour, region, model, tier, value): each interactive tier's median forecast of
    its hour's mean token rate (tokens/s), what trough filling reads as the load the hour
    keeps busy on average."""
    inter = [t.id for t in cfg.tiers if t.kind == "interactive"]
    sel = forecasts[forecasts["tier"].isin(inter) & (forecasts["metric"] == "token_rate")]
    return pd.DataFrame(
        {
            "hour": pd.to_datetime(sel["hour"]),
            "region": sel["region"],
            "model": sel["model"],
            "tier": sel["tier"],
            "value": sel["q_0_5"].astype(float),
        }
    ).reset_index(drop=True)


def input_shares(history: pd.DataFrame) -> Mapping[tuple[str, str], float]:
    """φ per (model, tier): input tokens / all tokens over the given demand-mart rows."""
    if history.empty:
        return {}
    g = history.groupby(["model", "tier"])[["input_tokens", "output_tokens"]].sum()
    total = g["input_tokens"] + g["output_tokens"]
    share = (g["input_tokens"] / total).where(total > 0)
    return {(str(k[0]), str(k[1])): float(v) for k, v in share.dropna().items()}  # type: ignore[index]


def trough_shares(
    cfg: FleetConfig,
    demand: Mapping[tuple[str, str, str, int], float],
    index: Mapping[datetime, int],
    mean: pd.DataFrame | None,
) -> dict[tuple[str, str, str, int], float]:
    """α[r,m,k,t] = min(1, mean load / planned demand) · θ[m,g,k] / θ₀[m,g,k]: the share of
    the capacity the program holds for the tier that its mean load keeps busy (θ₀ without
    headroom, so the ratio is 1 − headroom, or 1 when sized on the latency target)."""
    if mean is None or mean.empty or not cfg.planner.trough_filling:
        return {}
    latency = cfg.planner.interactive_sizing == "latency"
    out: dict[tuple[str, str, str, int], float] = {}
    for row in rows(mean):
        hour = pd.Timestamp(row.hour)
        if hour.tzinfo is not None:
            hour = hour.tz_convert("UTC").tz_localize(None)
        t = index.get(hour.to_pydatetime())
        if t is None:
            continue
        key = (str(row.region), str(row.model), str(row.tier), t)
        d = demand.get(key, 0.0)
        if d <= 0 or not math.isfinite(row.value):
            continue
        keep = 1.0 if latency else 1.0 - cfg.tier(row.tier).headroom
        out[key] = min(1.0, max(float(row.value), 0.0) / d) * keep
    return out
