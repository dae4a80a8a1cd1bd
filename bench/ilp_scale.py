"""ILP scale benchmark: the planning program built, solved by SCIP as the planner runs it, and
the same model solved by HiGHS side by side.

SageServe rungs: real plan hours of the demo's last day (the demo warehouse, copied to a
temporary folder so the bench never writes to it): for each hour the planning data
`sageserve plan` would build (forecasts at the hour, the week's token mix), starting from the
fleet an LP-rounding plan made an hour earlier has running then (that plan is also the warm
start); then the plan (LP rounding and greedy starts, SCIP for the rest of the time limit) and
HiGHS (highspy) on the same model, written by SCIP to MPS, cold (no starts), one thread, the
same time limit and gap goal. Gaps use SCIP's definition for both, |primal − dual| /
min(|primal|, |dual|); "bound" says where SCIP's dual bound came from (root relaxation or
search tree). ``--plain`` also solves each hour without planner.ilp.cuts (the before).

Generated rungs (tiny, mid, large; ``--rung 12x15x4:80:120`` any other size, its daily
requests in millions and its time limit): fleets with the default's structure, synthetic
O365-shaped demand, rolling warm state (bench/ilp_fleets.py).

    .venv/bin/python bench/ilp_scale.py [--only sageserve] [--plain] [--json]
        [--warehouse .sageserve/warehouse.duckdb] [--hours 2024-06-16T00:00,...]
        [--only large --workers 2 --no-highs --verbose] [--rung RxMxG:MREQ:LIMIT]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from planner.config import config_hash as cfg_hash
from planner.config import load_config
from planner.config.loader import parse_config
from planner.config.models import FleetConfig
from planner.ilp.build import create_model
from planner.ilp.data import PlanningData, build_data, state_from_config
from planner.ilp.greedy import greedy_values
from planner.ilp.plan import SolverFacts
from planner.ilp.planner import choose_method, make_plan, solver_settings
from planner.ilp.readback import from_values
from planner.ilp.rounding import lp_rounding_start

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ilp_fleets import START, demand_for, generated_fleet, warm_state
from tree_memory import TreeMemory, peak_rss_gb


def lp_bound(data: PlanningData, limit: float) -> tuple[float | None, float]:
    """The plain LP-relaxation optimum (no valid inequalities), or None when SCIP does not
    finish it within ``limit``."""
    started = time.perf_counter()
    built = create_model(data, relax=True, valid_cuts=False)
    built.model.setParam("limits/time", limit)
    built.model.optimize()
    ok = built.model.getStatus() == "optimal"
    return (built.model.getObjVal() if ok else None), time.perf_counter() - started


def scip_gap(primal: float, dual: float) -> float | None:
    """SCIP's gap definition, for any solver's primal and dual values (None: unknown)."""
    if not (math.isfinite(primal) and math.isfinite(dual)) or max(abs(primal), abs(dual)) > 1e19:
        return None
    return abs(primal - dual) / max(min(abs(primal), abs(dual)), 1e-9)


def highs_solve(
    data: PlanningData, limit: float, gap: float, valid_cuts: bool = True
) -> dict[str, Any]:
    """The planner's model (with planner.ilp.cuts unless ``valid_cuts`` is False) written by
    SCIP to MPS and solved by HiGHS cold: no primal starts, one thread, ``limit`` seconds,
    relative gap ``gap``."""
    import highspy

    built = create_model(data, valid_cuts=valid_cuts)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "plan.mps")
        built.model.writeProblem(path, verbose=False)
        h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations
        h.setOptionValue("output_flag", False)
        h.setOptionValue("time_limit", float(limit))
        h.setOptionValue("threads", 1)
        h.setOptionValue("mip_rel_gap", gap)
        h.readModel(path)
        started = time.perf_counter()
        h.run()
        seconds = time.perf_counter() - started
    info = h.getInfo()
    bound = info.mip_dual_bound
    has = info.primal_solution_status == 2  # a feasible incumbent
    objective = info.objective_function_value if has else math.inf
    return {
        "highs_version": h.version(),
        "highs_status": h.modelStatusToString(h.getModelStatus()),
        "highs_objective": round(objective, 1) if has else None,
        "highs_bound": round(bound, 1) if math.isfinite(bound) else None,
        "highs_gap": scip_gap(objective, bound),
        "highs_solve_s": round(seconds, 2),
        "highs_nodes": int(info.mip_node_count),
    }


def _scip_fields(plan: Any, check: Any, wall: float, limit: float) -> dict[str, Any]:
    s = plan.summary()
    return {
        "variables": s["variables"],
        "constraints": s["constraints"],
        "build_s": round(s["build_seconds"], 2),
        "solve_s": round(s["solve_seconds"], 2),
        "wall_s": round(wall, 1),
        "limit_s": limit,
        "status": s["status"],
        "gap": None if s["gap"] is None else round(s["gap"], 5),
        "bound_source": plan.solver.bound_source,
        "nodes": plan.solver.nodes,
        "objective": round(s["objective"], 1) if s["objective"] else None,
        "dual_bound": round(s["dual_bound"], 1) if s["dual_bound"] else None,
        "verified": check.ok,
        "fallback": s["fallback"],
    }


def demo_hours(con: Any) -> list[pd.Timestamp]:
    """00:00, 06:00, 14:00 and 20:00 of the log's last day, and 00:00 after it."""
    from flows.warehouse.sqlfiles import run

    _first, last = run(con, "marts/full_range").fetchone() or (None, None)
    # the hour of the newest arrival; a log ending at midnight has its last full day before it
    day = (pd.Timestamp(last) - pd.Timedelta(hours=1)).floor("D")
    return [day + pd.Timedelta(hours=h) for h in (0, 6, 14, 20, 24)]


def real_hour_rung(
    con: Any, cfg: FleetConfig, hour: pd.Timestamp, limit: float, plain: bool
) -> dict[str, Any]:
    """One plan hour of the demo warehouse (module docstring)."""
    from flows.forecasting import forecast_for_plan
    from flows.planning import planning_data

    for when in (hour - pd.Timedelta(hours=1), hour):  # the forecast step before each plan
        forecast_for_plan(con, cfg, when.to_pydatetime())
    earlier, _ = planning_data(con, cfg, hour - pd.Timedelta(hours=1), state_from_config(cfg))
    values = lp_rounding_start(earlier, 60.0) or greedy_values(earlier)
    facts = SolverFacts("LP rounding", math.nan, math.nan, math.nan, 0.0, 0.0, "", cfg_hash(cfg))
    previous = from_values(earlier, values, facts)
    at = hour.to_pydatetime()
    state = previous.state_at(at, backlog_hour=at - pd.Timedelta(hours=1))
    data, _ = planning_data(con, cfg, hour, state)
    settings = replace(solver_settings(cfg), time_limit_s=limit)
    started = time.perf_counter()
    plan, check = make_plan(data, settings, previous)
    out = {
        "name": f"sageserve {hour:%Y-%m-%dT%H:%M}",
        **_scip_fields(plan, check, time.perf_counter() - started, limit),
        "vm_rounding_cuts": create_model(data).constraints.get("vm_rounding", 0),
    }
    if plain:
        before, check0 = make_plan(data, settings, previous, valid_cuts=False)
        out["plain_gap"] = _scip_fields(before, check0, 0.0, limit)["gap"]
        out["plain_bound_source"] = before.solver.bound_source
        out["plain_objective"] = round(before.solver.objective, 1)
        out["plain_highs_gap"] = highs_solve(data, limit, settings.mip_gap, False)["highs_gap"]
    out.update(highs_solve(data, limit, settings.mip_gap))
    return out


SKIPPED_HIGHS: dict[str, Any] = {
    "highs_status": "not run",
    "highs_gap": None,
    "highs_solve_s": 0.0,
}


def rung(
    name: str,
    cfg: FleetConfig,
    requests_per_day: float,
    limit: float,
    workers: int = 1,
    highs: bool = True,
    split: bool = False,
) -> dict[str, Any]:
    """One generated rung (``split``: the split relaxation's path whatever its size). The
    planner picks the method by size (planner.ilp.planner
    .choose_method): the decomposed rungs skip the separate LP bound (it does not finish;
    the Lagrangian bound replaces it)."""
    small = limit <= 10.0
    planner = {**cfg.planner.model_dump(), "time_limit_s": limit, "workers": workers}
    cfg = parse_config({**cfg.model_dump(), "planner": planner})
    demand = demand_for(cfg, requests_per_day)
    state = warm_state(cfg, demand, solved=small)
    data = build_data(cfg, demand, state, START)
    settings = solver_settings(cfg)
    if split:
        settings = replace(settings, split_above_vars=0)
    decomposed = choose_method(data, settings) != "monolithic SCIP"
    lp, lp_s = (None, 0.0) if decomposed else lp_bound(data, 600.0 if small else 2 * limit)
    started = time.perf_counter()
    with TreeMemory() as tree:
        plan, check = make_plan(data, settings)
    wall = time.perf_counter() - started
    memory = {**peak_rss_gb(), "peak_tree_rss_gb": round(tree.peak_gb, 2)}
    s = plan.summary()
    return {
        "name": name,
        "regions": len(cfg.regions),
        "models": len(cfg.models),
        "vm_types": len(cfg.vm_types),
        "hours": len(data.hours),
        "integer_placement_h": cfg.planner.integer_placement_h,
        **_scip_fields(plan, check, wall, limit),
        "lp_bound": None if lp is None else round(lp, 1),
        "lp_s": round(lp_s, 2),
        "objective_over_lp": round(s["objective"] / lp, 4) if s["objective"] and lp else None,
        "vm_hours": s["vm_hours"],
        "method": plan.solver.method,
        "workers": workers,
        **memory,
        **(highs_solve(data, limit, cfg.planner.mip_gap) if highs else SKIPPED_HIGHS),
    }


def _pct(gap: float | None) -> str:
    return "unknown" if gap is None else f"{gap:.2%}"


def print_rung(r: dict[str, Any]) -> None:
    line = (
        f"{r['name']:28s} vars {r['variables']:>7} build {r['build_s']:5.2f} s "
        f"solve {r['solve_s']:5.1f}/{r['limit_s']:.0f} s {r['status']:>9} "
        f"gap {_pct(r['gap']):>7} bound {r['bound_source']:15s} "
        f"{r.get('method', '')} | HiGHS "
        f"{r['highs_status'][:14]:>14} gap {_pct(r['highs_gap']):>7} "
        f"{r['highs_solve_s']:5.1f} s"
    )
    if "plain_gap" in r:
        line += f" | without cuts: SCIP {_pct(r['plain_gap'])}, HiGHS {_pct(r['plain_highs_gap'])}"
    print(line + f" | verified {r['verified']}", flush=True)


def ladder(
    only: str | None,
    warehouse: Path,
    hours: list[pd.Timestamp] | None,
    plain: bool,
    limit: float,
    workers: int = 1,
    highs: bool = True,
    custom: str | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if custom:  # RxMxG:MREQ:LIMIT, alone
        size, mreq, seconds = custom.split(":")
        r, m, g = (int(n) for n in size.split("x"))
        cfg = generated_fleet(r, m, g)
        volume, seconds_s = float(mreq) * 1e6, float(seconds)
        out.append(rung(f"gen {size}", cfg, volume, seconds_s, workers, highs, split=True))
        print_rung(out[-1])
        return out
    if not only or only in "sageserve":
        out += sageserve_rungs(warehouse, hours, plain, limit)
    generated: list[tuple[str, Callable[[], Any], float, float]] = [
        ("tiny 1x2x1", lambda: generated_fleet(1, 2, 1), 1e6, 10.0),
        ("mid 8x10x3", lambda: generated_fleet(8, 10, 3), 40e6, 60.0),
        ("large 20x30x4", lambda: generated_fleet(20, 30, 4), 150e6, 300.0),
    ]
    for name, make, volume, rung_limit in generated:
        if only and only not in name:
            continue
        out.append(rung(name, make(), volume, rung_limit, workers, highs))
        print_rung(out[-1])
    return out


def sageserve_rungs(
    warehouse: Path, hours: list[pd.Timestamp] | None, plain: bool, limit: float
) -> list[dict[str, Any]]:
    """The SageServe rungs on a private copy of the demo warehouse."""
    from flows.warehouse.connection import connect

    if not warehouse.exists():
        raise SystemExit(f"no demo warehouse at {warehouse}: run `make demo` first")
    cfg = load_config()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "warehouse.duckdb"
        shutil.copy(warehouse, copy)
        with connect(copy, memory_limit=cfg.warehouse.memory_limit) as con:
            for hour in hours or demo_hours(con):
                out.append(real_hour_rung(con, cfg, hour, limit, plain))
                print_rung(out[-1])
    return out


def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="rungs whose name contains this")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--warehouse", type=Path, default=Path(".sageserve/warehouse.duckdb"))
    parser.add_argument("--hours", default=None, help="comma-separated plan hours (UTC)")
    parser.add_argument("--plain", action="store_true", help="also solve without the cuts")
    parser.add_argument("--limit", type=float, default=10.0, help="SageServe rungs' limit, s")
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for decomposed rungs' regions"
    )
    parser.add_argument("--no-highs", action="store_true", help="generated rungs: SCIP only")
    parser.add_argument(
        "--verbose", action="store_true", help="the decomposition's rounds on stderr"
    )
    parser.add_argument(
        "--rung", default=None, help="a generated rung RxMxG:MREQ:LIMIT, alone, split"
    )
    args = parser.parse_args()
    if args.verbose:
        for name in (
            "planner.ilp.split_portfolio",
            "planner.ilp.split_tasks",
            "planner.ilp.decompose",
            "planner.ilp.split_primal",
            "planner.ilp.polish",
        ):
            logging.getLogger(name).setLevel(logging.INFO)
    hours = [pd.Timestamp(h) for h in args.hours.split(",")] if args.hours else None
    parser_highs = not args.no_highs
    results = ladder(
        args.only,
        args.warehouse,
        hours,
        args.plain,
        args.limit,
        args.workers,
        parser_highs,
        args.rung,
    )
    if args.json:
        print(json.dumps({"rungs": results}, indent=2, default=str))


if __name__ == "__main__":
    main()
