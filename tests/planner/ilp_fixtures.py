"""A tiny, hand-solvable fleet for the planner's tests.

One instance serves 100 tokens/s in every tier (input = output = 100 tokens/s, headroom 0);
a VM (8 GPUs, TP 4) holds 2 instances and costs $10/h on demand, $4/h spot; a VM needs 15 min
to provision and a model 6 min to load (a start loses 0.1 of its first hour).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from planner.config import FleetConfig
from planner.config.loader import parse_config
from planner.ilp.data import FleetState, PlanningData, build_data

T0 = datetime(2024, 6, 3, 10, 0)


def tiny_config(**changes: Any) -> FleetConfig:
    flat = {"input": 100.0, "output": 100.0}
    data: dict[str, Any] = {
        "name": "tiny",
        "regions": [
            {"id": "a", "name": "A", "timezone": "UTC", "latency_ms": {"a": 0, "b": 30}},
            {"id": "b", "name": "B", "timezone": "UTC", "latency_ms": {"a": 30, "b": 0}},
        ],
        "vm_types": [
            {
                "id": "v8",
                "gpu": "A100-80GB",
                "gpus_per_vm": 8,
                "gpu_memory_gb": 80,
                "price_per_hour": 10.0,
                "spot_price_per_hour": 4.0,
                "lead_time_min": 15,
            }
        ],
        "fleet": [
            {
                "region": "a",
                "vm_type": "v8",
                "quota": 4,
                "spot_available": 2,
                "running": 1,
                "instances": {"m": 2},
            },
            {"region": "b", "vm_type": "v8", "quota": 4, "spot_available": 0, "running": 0},
        ],
        "models": [
            {
                "id": "m",
                "name": "M",
                "weights_gb": 20,
                "min_instances": 0,
                "vm_types": {
                    "v8": {
                        "tensor_parallel": 4,
                        "instances_per_vm": 2,
                        "load_time_min": 6,
                        "throughput": {"IW-F": flat, "IW-N": flat, "NIW": flat},
                    }
                },
            }
        ],
        "tiers": [
            {
                "id": "IW-F",
                "kind": "interactive",
                "ttft_p95_s": 1,
                "headroom": 0,
                "routing_budget_ms": 20,
                "planning_quantile": 0.95,
            },
            {
                "id": "IW-N",
                "kind": "interactive",
                "ttft_p95_s": 10,
                "headroom": 0,
                "routing_budget_ms": 50,
                "planning_quantile": 0.9,
            },
            {
                "id": "NIW",
                "kind": "deferrable",
                "deadline_h": 2,
                "headroom": 0,
                "spot_allowed": True,
                "routing_budget_ms": 1000,
                "planning_quantile": 0.5,
                "planning_metric": "token_rate",
            },
        ],
        "forecast": {"candidates": ["snaive24"], "champion": "snaive24"},
        "planner": {
            "horizon_h": 2,
            "time_limit_s": 20,
            "mip_gap": 0.0,
            "integer_placement_h": 24,
            "unmet_penalty": {"IW-F": 100, "IW-N": 50, "NIW": 20},
            "churn_cost_per_vm": 0.0,
            "latency_penalty_per_ms": 0.0,
        },
    }
    for path, value in changes.items():
        target = data
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if key.isdigit() else target[key]
        last = keys[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
    return parse_config(data)


def demand(rows: list[tuple[int, str, str, float]], start: datetime = T0) -> pd.DataFrame:
    """(hour index from 1, region, tier, tokens/s) → the planner's demand frame for model m."""
    return pd.DataFrame(
        [
            {
                "hour": start + timedelta(hours=t - 1),
                "region": r,
                "model": "m",
                "tier": k,
                "value": v,
            }
            for t, r, k, v in rows
        ]
    )


def tiny_data(
    cfg: FleetConfig,
    rows: list[tuple[int, str, str, float]],
    minutes_before: float = 0.0,
    state: FleetState | None = None,
    start: datetime = T0,
) -> PlanningData:
    from planner.ilp.data import state_from_config

    as_of = start - timedelta(minutes=minutes_before)
    return build_data(
        cfg,
        demand(rows, start),
        state or state_from_config(cfg),
        as_of,
        {("m", t): 0.5 for t in cfg.tier_ids},
    )
