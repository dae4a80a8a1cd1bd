"""The plan family's sizing variants (``bench/levers.py --variants``: headroom or latency
sizing, the plan as a floor, with or without trough filling), LT-F banded at a lower quantile's
rise, and a plan row's mode as the levers bench reports it apart."""

from __future__ import annotations

from typing import Any

from planner.config import FleetConfig
from planner.sim.sweep import Point

VARIANTS = (
    "headroom",
    "latency",
    "latency+trough",
    "headroom+trough",
    "floor",
    "floor+trough",
)


def variant(cfg: FleetConfig, name: str, attainment: float) -> FleetConfig:
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    latency = name.startswith(("latency", "floor"))
    update: dict[str, Any] = {
        "interactive_sizing": "latency" if latency else "headroom",
        "trough_filling": name.endswith("+trough"),
    }
    if latency:
        update["latency_attainment"] = attainment
    out = cfg.model_copy(update={"planner": cfg.planner.model_copy(update=update)})
    if name.startswith("floor"):
        metric = "token_rate"
    elif name.startswith("latency"):
        metric = "peak_token_rate"
    else:
        return out
    tiers = [
        t.model_copy(update={"planning_metric": metric}) if t.kind == "interactive" else t
        for t in out.tiers
    ]
    return out.model_copy(update={"tiers": tiers})


def plan_kind(row: dict[str, Any]) -> str:
    """A plan row's mode; LT-R at the SLO-aware grid's dials (``layer_grid``) apart."""
    params = row.get("params", {})
    mode = str(params.get("mode", ""))
    return "lt-r+slo-dials" if mode == "lt-r" and "cooldown_in_min" in params else mode


def banded(points: list[Point], rise_quantile: float | None) -> list[Point]:
    """``points`` with every LT-F point buying only the rise the plans at ``rise_quantile``
    support (``planner.sim.plan_ramp``'s ``lower``), when given."""
    if rise_quantile is None:
        return points
    band = {"rise_quantile": rise_quantile}
    return [
        Point(pt.family, {**pt.params, **band}) if pt.params.get("mode") == "lt-f" else pt
        for pt in points
    ]
