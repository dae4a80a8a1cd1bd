"""ILP scale benchmark: a ladder of problem sizes, each built, solved by SCIP within its time
limit, and compared with its LP relaxation.

Per rung: build time, solve time (the configured limit), SCIP status and gap, and the ratio of
the plan's objective to the LP-relaxation optimum (how far the integer plan sits above the
best any fractional plan could do). The SageServe rung is the default fleet (3 regions,
4 models, 2 VM types, 3 tiers, 24 h) at SageServe's volume (10 M requests/day, synthetic
O365-shaped demand); the larger rungs are generated fleets with the same structure.

    .venv/bin/python bench/ilp_scale.py [--only sageserve] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from planner.config import load_config
from planner.config.loader import parse_config
from planner.config.models import FleetConfig
from planner.ilp.build import create_model
from planner.ilp.data import FleetState, PlanningData, build_data, state_from_config
from planner.ilp.greedy import greedy_values
from planner.ilp.plan import SolverFacts, from_values
from planner.ilp.planner import make_plan, solver_settings
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


def generated_fleet(regions: int, models: int, vm_types: int, seed: int = 5) -> FleetConfig:
    """A fleet like the default one, larger: regions along a line (latency ∝ distance), VM
    types cycling A100/H100-like prices, models cloned from the four real ones."""
    base = load_config().model_dump()
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.uniform(0, 300, regions))
    zones = [
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "Europe/London",
        "Europe/Berlin",
        "Asia/Tokyo",
        "Asia/Singapore",
    ]
    reg = [
        {
            "id": f"r{i:02d}",
            "name": f"region {i}",
            "timezone": zones[i % len(zones)],
            "latency_ms": {
                f"r{j:02d}": 0.0 if i == j else round(5 + abs(positions[i] - positions[j]), 1)
                for j in range(regions)
            },
        }
        for i in range(regions)
    ]
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


def lp_bound(data: PlanningData, limit: float) -> tuple[float | None, float]:
    """The LP-relaxation optimum, or None when SCIP does not finish it within ``limit``."""
    started = time.perf_counter()
    built = create_model(data, relax=True)
    built.model.setParam("limits/time", limit)
    built.model.optimize()
    ok = built.model.getStatus() == "optimal"
    return (built.model.getObjVal() if ok else None), time.perf_counter() - started


def rung(name: str, cfg: FleetConfig, requests_per_day: float, limit: float) -> dict[str, Any]:
    small = limit <= 10.0
    planner = {**cfg.planner.model_dump(), "time_limit_s": limit}
    cfg = parse_config({**cfg.model_dump(), "planner": planner})
    demand = demand_for(cfg, requests_per_day)
    state = warm_state(cfg, demand, solved=small)
    data = build_data(cfg, demand, state, START)
    lp, lp_s = lp_bound(data, 600.0 if small else 2 * limit)
    started = time.perf_counter()
    plan, check = make_plan(data, solver_settings(cfg))
    wall = time.perf_counter() - started
    s = plan.summary()
    return {
        "rung": name,
        "regions": len(cfg.regions),
        "models": len(cfg.models),
        "vm_types": len(cfg.vm_types),
        "hours": len(data.hours),
        "integer_placement_h": cfg.planner.integer_placement_h,
        "variables": s["variables"],
        "constraints": s["constraints"],
        "build_s": round(s["build_seconds"], 2),
        "solve_s": round(s["solve_seconds"], 2),
        "wall_s": round(wall, 1),
        "limit_s": limit,
        "status": s["status"],
        # SCIP reports 1e20 when it has no dual bound (root LP unfinished): no gap known
        "gap": None if s["gap"] is None or s["gap"] >= 1e10 else round(s["gap"], 5),
        "objective": round(s["objective"], 1) if s["objective"] else None,
        "lp_bound": None if lp is None else round(lp, 1),
        "lp_s": round(lp_s, 2),
        "objective_over_lp": round(s["objective"] / lp, 4) if s["objective"] and lp else None,
        "vm_hours": s["vm_hours"],
        "verified": check.ok,
        "fallback": s["fallback"],
    }


def ladder(only: str | None) -> list[dict[str, Any]]:
    default = load_config()
    rungs = [
        ("tiny 1x2x1", lambda: generated_fleet(1, 2, 1), 1e6, 10.0),
        ("sageserve 3x4x2", lambda: default, 10e6, 10.0),
        (
            "sageserve 3x4x2, all-integer placement",
            lambda: parse_config(
                {
                    **default.model_dump(),
                    "planner": {**default.planner.model_dump(), "integer_placement_h": 24},
                }
            ),
            10e6,
            10.0,
        ),
        ("mid 8x10x3", lambda: generated_fleet(8, 10, 3), 40e6, 60.0),
        ("large 20x30x4", lambda: generated_fleet(20, 30, 4), 150e6, 120.0),
    ]
    out = []
    for name, make, volume, limit in rungs:
        if only and only not in name:
            continue
        out.append(rung(name, make(), volume, limit))
        r = out[-1]
        gap = "n/a" if r["gap"] is None or r["gap"] >= 1e10 else f"{r['gap']:.2%}"
        print(
            f"{r['rung']:40s} vars {r['variables']:>7} build {r['build_s']:6.2f} s "
            f"solve {r['solve_s']:6.1f}/{r['limit_s']:.0f} s {r['status']:>9} gap {gap:>6} "
            f"obj/LP {r['objective_over_lp']} verified {r['verified']}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = ladder(args.only)
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
