"""The policy comparison: replay a window of the warehouse's request log through the simulator
under each policy, with the hourly plans the product would have made at the time.

Plans for ``lt-i``/``lt-u``/``lt-ua``/``lt-f`` are made exactly as the hourly job makes them: at
``plan_lead_min`` before each hour, on forecasts from origin = the hour before (data before it
only; the daily selection runs at the window start and every 24 h, never later than the
origin), warm-started from the previous plan, with the state the previous plan left. One plan
sequence serves the four (they differ in how the plan is carried out; ``lt-f`` at the
config's ``lt_f`` dials). The oracle's plans see
the true demand of the window: each tier's planning metric measured from the log (beyond the
window end: the value 24 h earlier).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.forecasting import forecast_for_plan
from flows.planning import planning_data
from flows.policy_names import POLICIES
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig, config_hash
from planner.ilp.data import FleetState, PlanningData, state_from_config
from planner.ilp.plan import Plan
from planner.ilp.planner import make_plan, solver_settings
from planner.sim.demand import MinuteDemand, from_buckets
from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import SimResult, default_serving, simulate
from planner.sim.scenario import make_policies, truth_demand
from planner.sim.serving import ServingModel
from planner.sim.sweep import on_clairvoyant_types, references
from planner.utc import naive_utc

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    start: pd.Timestamp
    end: pd.Timestamp
    results: list[SimResult]
    plans: dict[str, list[Plan]]
    config_hash: str
    seed: int
    work_bound: float = float("nan")
    clairvoyant_gpu_hours: float = float("nan")
    niw_tier: str = "NIW"

    def table(self) -> pd.DataFrame:
        frame = pd.DataFrame([r.summary() for r in self.results])
        frame.insert(1, "params", [{} for _ in self.results])
        frame["gpu_hours_serving"] = (frame["gpu_hours"] - frame["gpu_hours_scaling"]).round(1)
        frame["niw_on_time"] = [_on_time(r, self.niw_tier) for r in self.results]
        frame["vs_bound"] = (frame["gpu_hours"] / self.clairvoyant_gpu_hours).round(4)
        frame["vs_work_bound"] = (frame["gpu_hours"] / self.work_bound).round(4)
        if "reactive" in set(frame["policy"]):
            base = float(frame.loc[frame["policy"] == "reactive", "gpu_hours"].iloc[0])
            scale = float(frame.loc[frame["policy"] == "reactive", "gpu_hours_scaling"].iloc[0])
            frame["gpu_hours_vs_reactive"] = (frame["gpu_hours"] / base - 1).round(4)
            frame["scaling_waste_vs_reactive"] = (
                (frame["gpu_hours_scaling"] / scale - 1).round(4) if scale else np.nan
            )
        if "oracle" in set(frame["policy"]):
            base = float(frame.loc[frame["policy"] == "oracle", "gpu_hours"].iloc[0])
            frame["gpu_hours_vs_oracle"] = (frame["gpu_hours"] / base - 1).round(4)
        return frame


def _on_time(result: SimResult, tier: str) -> float:
    """Share of the tier's whole requests served by their deadline."""
    c = result.tiers[tier].counts()
    return round(c["served"] / c["requests"], 6) if c["requests"] else 1.0


def window(
    con: duckdb.DuckDBPyConnection, hours: int, end: datetime | None
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The replay window: ``hours`` whole hours ending at ``end`` (default: the hour the
    log's last arrival falls in, exclusive)."""
    first, last = run(con, "sim/log_span").fetchone() or (None, None)
    if last is None:
        raise ValueError("the warehouse holds no requests to replay; ingest a log first")
    stop = naive_utc(end) if end else pd.Timestamp(last).floor("h")
    start = stop - pd.Timedelta(hours=hours)
    if start < pd.Timestamp(first).floor("h"):
        raise ValueError(
            f"a {hours} h window ending {stop} starts before the log does ({first}); "
            "pass fewer --hours"
        )
    return start, stop


def load_demand(
    con: duckdb.DuckDBPyConnection, p: FleetParams, start: pd.Timestamp, end: pd.Timestamp
) -> MinuteDemand:
    frame = run(con, "sim/minute_buckets", start=start, end=end).df()
    return from_buckets(frame, p, start, end)


def history_before(
    con: duckdb.DuckDBPyConnection, p: FleetParams, start: pd.Timestamp, hours: int = 24
) -> MinuteDemand:
    """The ``hours`` before the replay window (fewer where the log starts later; none at
    all is an empty demand): what the policies' VM type is chosen on
    (``planner.sim.sweep.on_clairvoyant_types``), never the window itself."""
    first, _ = run(con, "sim/log_span").fetchone() or (None, None)
    since = start - pd.Timedelta(hours=hours)
    if first is not None:
        since = max(since, pd.Timestamp(first).floor("h"))
    if since >= start:
        none = np.zeros((1, len(p.regions), len(p.models), len(p.tiers)))
        return MinuteDemand(start, none, none.copy(), none.copy())
    return load_demand(con, p, since, start)


def window_fleet(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, hours: int, end: datetime | None
) -> tuple[pd.Timestamp, pd.Timestamp, FleetParams, MinuteDemand, ServingModel]:
    """The window, its minute demand, the fleet at the window's input share on the VM types
    the clairvoyant fleet picks from the day *before* it, and the serving model: what the
    evaluation and every sweep point replay against."""
    start, stop = window(con, hours, end)
    base = params_from_config(cfg)
    demand = load_demand(con, base, start, stop)
    p = params_from_config(cfg, demand.input_share(base))
    serving = default_serving(p, demand)
    p = on_clairvoyant_types(cfg, p, history_before(con, base, start), serving)
    return start, stop, p, demand, serving


def plan_sequence(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    start: pd.Timestamp,
    hours: int,
    truth: pd.DataFrame | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Plan]:
    """One plan per hour of the window, made ``planner.plan_lead_min`` before the hour
    (:func:`rolling_plans`). ``truth``: plan on it instead of forecasts (the oracle)."""

    def data(as_of: pd.Timestamp, state: FleetState) -> PlanningData:
        if truth is None:  # the forecast step, then the plan (which never forecasts)
            forecast_for_plan(con, cfg, as_of.to_pydatetime())
        return planning_data(con, cfg, as_of, state, truth)[0]

    lead = pd.Timedelta(minutes=cfg.planner.plan_lead_min)
    moments = [start + pd.Timedelta(hours=h) - lead for h in range(hours)]
    return rolling_plans(cfg, moments, data, progress)


def rolling_plans(
    cfg: FleetConfig,
    moments: Sequence[pd.Timestamp],
    data: Callable[[pd.Timestamp, FleetState], PlanningData],
    progress: Callable[[int], None] | None = None,
) -> list[Plan]:
    """One plan made at each of ``moments`` from ``data(moment, state)``, rolling: each starts
    from the placement the previous one committed and is warm-started from it."""
    plans: list[Plan] = []
    settings = solver_settings(cfg)
    for as_of in moments:
        previous = plans[-1] if plans else None
        state = previous.state_at(as_of.floor("h")) if previous else state_from_config(cfg)
        plan, check = make_plan(data(as_of, state), settings, previous)
        if not check.ok:
            log.warning("plan for %s violates: %s", plan.start, check.violations[:3])
        plans.append(plan)
        if progress:
            progress(1)
    return plans


def with_solver(cfg: FleetConfig, seed: int, time_limit_s: float | None) -> FleetConfig:
    """``cfg`` with the planner's SCIP seed and, when given, its time limit replaced."""
    update: dict[str, Any] = {"seed": seed}
    if time_limit_s is not None:
        update["time_limit_s"] = time_limit_s
    return cfg.model_copy(update={"planner": cfg.planner.model_copy(update=update)})


def run_evaluation(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    policies: Sequence[str],
    hours: int,
    end: datetime | None = None,
    time_limit_s: float | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Replay the window through every policy (see the module docstring)."""
    unknown = [n for n in policies if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; choose from {', '.join(POLICIES)}")
    cfg = with_solver(cfg, seed, time_limit_s)
    start, stop, p, demand, serving = window_fleet(con, cfg, hours, end)
    plans: dict[str, list[Plan]] = {}
    if any(n.startswith("lt-") for n in policies):
        plans["forecast"] = plan_sequence(con, cfg, start, hours, progress=progress)
    if "oracle" in policies:
        truth = truth_demand(cfg, demand, p)
        plans["oracle"] = plan_sequence(con, cfg, start, hours, truth, progress)
    results = [
        simulate(p, demand, policy, serving=serving)
        for policy in make_policies(policies, p, demand, plans, cfg.lt_f.dials())
    ]
    wb, clair = references(cfg, p, demand, serving)
    return Evaluation(
        start,
        stop,
        results,
        plans,
        config_hash(cfg),
        seed,
        wb,
        clair.gpu_hours,
        p.tiers[p.deferrable],
    )


def write_outputs(evaluation: Evaluation, out: Path) -> dict[str, Path]:
    """comparison.csv / comparison.md / evaluation.json and the plots, into ``out``."""
    from reports.evaluation import markdown_table, write_plots

    out.mkdir(parents=True, exist_ok=True)
    table = evaluation.table()
    paths = {
        "csv": out / "comparison.csv",
        "md": out / "comparison.md",
        "json": out / "evaluation.json",
    }
    table.to_csv(paths["csv"], index=False)
    meta = {
        "window": [str(evaluation.start), str(evaluation.end)],
        "config_hash": evaluation.config_hash,
        "seed": evaluation.seed,
        "plans": {k: [p.plan_id for p in v] for k, v in evaluation.plans.items()},
    }
    paths["md"].write_text(
        f"# Policy comparison {evaluation.start} .. {evaluation.end}\n\n"
        f"config {evaluation.config_hash}, seed {evaluation.seed}\n\n"
        + markdown_table(table)
        + "\n"
    )
    paths["json"].write_text(
        json.dumps({**meta, "results": table.to_dict(orient="records")}, indent=1, default=str)
    )
    paths.update(write_plots(evaluation.results, out))
    return paths
