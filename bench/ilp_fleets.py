"""Generated fleets for bench/ilp_scale.py: fleets with the default's structure at any size,
synthetic O365-shaped planning demand for the 24 h from START, and the warm state a rolling
planner would start from."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from planner.config import load_config
from planner.config.loader import parse_config
from planner.config.models import FleetConfig
from planner.ilp.data import FleetState, build_data, state_from_config
from planner.ilp.greedy import greedy_values
from planner.ilp.plan import SolverFacts
from planner.ilp.planner import make_plan, solver_settings
from planner.ilp.readback import from_values
from planner.workload.synth import SynthSpec, hourly_rates

START = datetime(2024, 6, 4, 0, tzinfo=UTC)  # a Tuesday
TOKENS = {"interactive": (1155.0, 211.0), "deferrable": (2048.0, 28.0)}  # Azure 2023 means
PEAK_FACTOR = 1.6  # peak minute over hourly mean for interactive tiers (as in the demo log)


def demand_for(cfg: FleetConfig, requests_per_day: float, seed: int = 11) -> pd.DataFrame:
    """Planning demand (tokens/s) for the 24 h from START, shaped like the synthetic log."""
    first = START - pd.Timedelta(days=1)
    base = SynthSpec().shares
    # shares over this fleet's own ids (the synthesiser's defaults name the demo fleet's only;
    # unknown ids would each get a default share and inflate the volume many times over)
    shares = {
        "region": {r: base["region"].get(r, 1.0) for r in cfg.region_ids},
        "model": {
            m: base["model"].get(m, base["model"][list(base["model"])[i % 4]])
            for i, m in enumerate(cfg.model_ids)
        },
        "tier": base["tier"],
    }
    spec = SynthSpec(
        days=3, seed=seed, start=first, requests_per_day=int(requests_per_day), shares=shares
    )
    rates = hourly_rates(cfg, spec)
    window = (rates["hour"] >= START - pd.Timedelta(hours=1)) & (
        rates["hour"] < START + pd.Timedelta(hours=24)
    )
    rates = rates[window].copy()
    tokens = rates["kind"].map(lambda k: sum(TOKENS[k]))
    factor = np.where(rates["kind"] == "interactive", PEAK_FACTOR, 1.0)
    rates["value"] = rates["rate"] / 3600.0 * tokens * factor
    rates["hour"] = rates["hour"].dt.tz_convert("UTC").dt.tz_localize(None)
    return rates[["hour", "region", "model", "tier", "value"]]


ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Asia/Singapore",
]


def _regions(regions: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """``regions`` regions at random positions along a line, latency 5 ms + the distance."""
    positions = np.sort(rng.uniform(0, 300, regions))
    return [
        {
            "id": f"r{i:02d}",
            "name": f"region {i}",
            "timezone": ZONES[i % len(ZONES)],
            "latency_ms": {
                f"r{j:02d}": 0.0 if i == j else round(5 + abs(positions[i] - positions[j]), 1)
                for j in range(regions)
            },
        }
        for i in range(regions)
    ]


def generated_fleet(regions: int, models: int, vm_types: int, seed: int = 5) -> FleetConfig:
    """A fleet like the default one, larger: regions along a line (latency ∝ distance), VM
    types cycling A100/H100-like prices, models cloned from the four real ones."""
    base = load_config().model_dump()
    reg = _regions(regions, np.random.default_rng(seed))
    vm_base = base["vm_types"]
    vms = []
    for i in range(vm_types):
        v = dict(vm_base[i % 2])
        v["id"] = f"{v['id']}-{i}" if i >= 2 else v["id"]
        v["price_per_hour"] = round(v["price_per_hour"] * (1 + 0.07 * i), 2)
        v["spot_price_per_hour"] = round(v["spot_price_per_hour"] * (1 + 0.07 * i), 2)
        vms.append(v)
    mods = []
    for i in range(models):
        m = json.loads(json.dumps(base["models"][i % 4]))
        m["id"] = f"{m['id']}-{i}" if i >= 4 else m["id"]
        m["vm_types"] = {v["id"]: m["vm_types"][vm_base[j % 2]["id"]] for j, v in enumerate(vms)}
        mods.append(m)
    fleet = [
        {"region": r["id"], "vm_type": v["id"], "quota": 200, "spot_available": 20, "running": 0}
        for r in reg
        for v in vms
    ]
    tiers = base["tiers"]
    for t in tiers:
        if t["kind"] == "deferrable":
            t["routing_budget_ms"] = 1000.0
    cfg = {**base, "regions": reg, "vm_types": vms, "models": mods, "fleet": fleet, "tiers": tiers}
    return parse_config(cfg)


def warm_state(cfg: FleetConfig, demand: pd.DataFrame, solved: bool = True) -> FleetState:
    """What runs at START in rolling operation: the placement the plan made an hour earlier
    (at START − 65 min, for the hours from START − 1 h) has for START. For the large rungs
    (``solved`` False) that earlier plan is the greedy one, to keep the bench's wall time to
    the rung being measured."""
    earlier = build_data(cfg, demand, state_from_config(cfg), START - pd.Timedelta(minutes=65))
    if solved:
        plan, _ = make_plan(earlier, solver_settings(cfg))
    else:
        plan = from_values(
            earlier,
            greedy_values(earlier),
            SolverFacts("greedy", math.nan, math.nan, math.nan, 0.0, 0.0, "", earlier.config_hash),
        )
    at = START.replace(tzinfo=None)
    return plan.state_at(at, backlog_hour=at - pd.Timedelta(hours=1))
