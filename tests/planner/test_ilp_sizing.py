"""Interactive capacity sized on the latency target (planner.ilp.sizing): the demand handed to
the program holds exactly the capacity curves' instances for the tiers' pooled load."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest

from planner.config import FleetConfig, load_config
from planner.ilp.data import build_data, state_from_config
from planner.ilp.demand import planning_demand
from planner.ilp.sizing import pool_instances
from planner.sim.capacity import instances_needed

HOUR = datetime(2024, 6, 3, 10, 0)
MODEL = "llama3.1-8b"


def _cfg(sizing: str) -> FleetConfig:
    cfg = load_config("configs/default.yaml")
    planner = cfg.planner.model_copy(update={"interactive_sizing": sizing})
    return cfg.model_copy(update={"planner": planner})


def _forecasts(peaks: dict[str, float], rps: dict[str, float]) -> pd.DataFrame:
    rows = []
    for tier, peak in peaks.items():
        for metric, value in (
            ("peak_token_rate", peak),
            ("token_rate", peak / 2),
            ("request_rate", rps[tier] / 2),
        ):
            q = {c: value for c in ("q_0_5", "q_0_9", "q_0_95")}
            rows.append(
                {"hour": HOUR, "region": "us-east", "model": MODEL, "tier": tier, "metric": metric}
                | q
            )
    return pd.DataFrame(rows)


def test_latency_demand_holds_the_curves_instances_for_the_pooled_load() -> None:
    cfg = _cfg("latency")
    peaks, rps = {"IW-F": 40_000.0, "IW-N": 20_000.0}, {"IW-F": 40.0, "IW-N": 20.0}
    shares = {(MODEL, k): 0.8 for k in cfg.tier_ids}
    demand = planning_demand(_forecasts(peaks, rps), cfg, shares)
    data = build_data(cfg, demand, state_from_config(cfg), HOUR - timedelta(minutes=20), shares)
    sized = pool_instances(
        cfg, MODEL, peaks, {"IW-F": 1000.0, "IW-N": 1000.0}, {"IW-F": 0.8, "IW-N": 0.8}
    )
    assert sized is not None
    g, n = sized
    held = sum(data.demand[("us-east", MODEL, k, 1)] / data.theta[(MODEL, g, k)] for k in peaks)
    assert held == pytest.approx(n)
    # n is the larger tier's curve at the pooled rate (60 requests/s), not a sum per tier
    t = cfg.model(MODEL).vm_types[g].throughput
    busy = 1000.0 * (
        0.8 / max(x.input for x in t.values()) + 0.2 / max(x.output for x in t.values())
    )
    want = max(instances_needed(MODEL, g, k, 60.0, 1.0, busy_s_per_request=busy) for k in peaks)
    assert n == want
    # no flat headroom on the interactive tiers in this mode
    tp = cfg.model(MODEL).vm_types[g].throughput["IW-F"]
    assert data.theta[(MODEL, g, "IW-F")] == pytest.approx(1 / (0.8 / tp.input + 0.2 / tp.output))


def test_headroom_sizing_is_each_tiers_peak() -> None:
    cfg = _cfg("headroom")
    peaks, rps = {"IW-F": 4000.0, "IW-N": 2000.0}, {"IW-F": 4.0, "IW-N": 2.0}
    demand = planning_demand(_forecasts(peaks, rps), cfg)
    got = dict(zip(demand["tier"], demand["value"], strict=True))
    assert got == peaks


def test_more_load_never_sizes_fewer_instances() -> None:
    cfg = _cfg("latency")
    tpr, share = {"IW-F": 1000.0, "IW-N": 1000.0}, {"IW-F": 0.8, "IW-N": 0.8}
    sizes = [
        pool_instances(cfg, MODEL, {"IW-F": p, "IW-N": p / 2}, tpr, share)
        for p in (1_000.0, 10_000.0, 100_000.0)
    ]
    counts = [s[1] for s in sizes if s is not None]
    assert len(counts) == 3 and counts == sorted(counts) and counts[0] < counts[-1]
