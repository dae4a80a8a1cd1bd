"""`sageserve evaluate --sweep`: every policy family over its dial on one replay window, the
two references, and the frontier (see planner/sim/sweep.py for the families and targets).

The warehouse is read in this process only: the replay's minute demand, and per hour of the
window the forecasts at its origin (made now if missing, as the hourly job would) and the
token mix. Everything else runs in one process pool, scheduled so no worker waits on work it
does not need:

* the points that need no plan (reactive, SLO-aware, siloed) are queued first and replay
  while this process reads (or makes) the forecasts;
* then one rolling plan sequence per planning quantile (shared by LT-I, LT-U, LT-UA and LT-R:
  plans are made once per quantile, never per mode);
* each quantile's plan points are queued the moment its sequence is back, so they fill the
  workers while the other sequences are still solving;
* last, each family's best point refined on its dial (``planner.sim.refine``).

The window's arrays (fleet, demand, serving model, references) reach each worker once, when
it starts, never with each point. Workers receive plain values, never a connection.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.evaluation import rolling_plans, window_fleet, with_solver
from flows.forecasting import ensure_forecasts
from flows.policy_names import DEFAULT_QUANTILES
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig, config_hash
from planner.fleet_index import input_shares
from planner.ilp.data import FleetState, PlanningData, build_data, plan_horizon
from planner.ilp.demand import interactive_means, planning_demand
from planner.ilp.plan import Plan
from planner.sim.bounds import Clairvoyant
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.plans import plan_targets
from planner.sim.refine import refine as refine_points
from planner.sim.serving import ServingModel
from planner.sim.sweep import (
    TARGETS,
    PlanTargets,
    Point,
    frontier,
    grid,
    references,
    run_point,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HourInputs:
    """What the plan for one hour is made from, read from the warehouse beforehand."""

    as_of: pd.Timestamp
    forecasts: pd.DataFrame
    shares: dict[tuple[str, str], float]


@dataclass
class Sweep:
    start: pd.Timestamp
    end: pd.Timestamp
    rows: list[dict[str, Any]]
    frontier: dict[str, Any]
    references: dict[str, float]
    config_hash: str
    seed: int
    plans: dict[float, list[str]]
    seconds: dict[str, float]


def hour_inputs(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, start: pd.Timestamp, hours: int
) -> list[HourInputs]:
    """Per hour of the window: forecasts at origin = the hour before (made if missing) and
    the token mix up to it, as ``flows.planning.planning_data`` reads them."""
    out = []
    for h in range(hours):
        as_of = start + pd.Timedelta(hours=h) - pd.Timedelta(minutes=cfg.planner.plan_lead_min)
        origin = as_of.floor("h")
        forecasts, _ = ensure_forecasts(con, cfg, origin, plan_horizon(cfg, as_of))
        shares = dict(input_shares(run(con, "plans/history_for_shares", as_of=origin).df()))
        out.append(HourInputs(as_of, forecasts, shares))
    return out


def at_quantile(cfg: FleetConfig, q: float) -> FleetConfig:
    """``cfg`` with every interactive tier planning on quantile ``q``."""
    tiers = [
        t.model_copy(update={"planning_quantile": q}) if t.kind == "interactive" else t
        for t in cfg.tiers
    ]
    return cfg.model_copy(update={"tiers": tiers})


def plan_sequence_from(cfg: FleetConfig, inputs: Sequence[HourInputs]) -> list[Plan]:
    """The rolling hourly plans of ``flows.evaluation.plan_sequence`` from prepared inputs
    (pure: runs in a worker process)."""
    at = {hour.as_of: hour for hour in inputs}

    def data(as_of: pd.Timestamp, state: FleetState) -> PlanningData:
        hour = at[as_of]
        demand = planning_demand(hour.forecasts, cfg, hour.shares)
        means = interactive_means(hour.forecasts, cfg)
        when, origin = as_of.to_pydatetime(), as_of.floor("h")
        return build_data(
            cfg, demand, state, when, hour.shares, forecast_origin=origin, interactive_mean=means
        )

    return rolling_plans(cfg, list(at), data)


ACTUAL = {"token_rate": "token_rate", "peak_token_rate": "peak_minute_token_rate"}


def oracle(inputs: list[HourInputs], actual: pd.DataFrame) -> list[HourInputs]:
    """Every forecast row with its hour's *true* value in the point and every quantile column
    (``request_rate`` from the hour's requests): the plan of a perfect forecast. A comparator
    for decomposing the plan's cost (issue #15), never a policy: it sees its future."""
    act = actual.assign(hour=pd.to_datetime(actual["hour"]), request_rate=actual["requests"] / 3600)
    act = act.rename(columns={v: k for k, v in ACTUAL.items()})
    long = act.melt(
        id_vars=["hour", "region", "model", "tier"],
        value_vars=["token_rate", "peak_token_rate", "request_rate"],
        var_name="metric",
        value_name="true",
    )
    out = []
    for hour in inputs:
        fc = hour.forecasts.assign(hour=pd.to_datetime(hour.forecasts["hour"]))
        fc = fc.merge(long, on=["hour", "region", "model", "tier", "metric"], how="left")
        known = fc["true"].notna()
        for col in [c for c in fc.columns if c == "point" or c.startswith("q_")]:
            fc.loc[known, col] = fc.loc[known, "true"]
        out.append(HourInputs(hour.as_of, fc.drop(columns="true"), hour.shares))
    return out


def oracle_actuals(
    con: duckdb.DuckDBPyConnection, begin: pd.Timestamp, stop: pd.Timestamp
) -> pd.DataFrame:
    """The true hourly demand the oracle comparator's forecasts are replaced by: from an hour
    before the warm-up's ``begin`` (every planned hour, warm-up and window) to 48 h after
    ``stop`` (the last plan's horizon)."""
    since, until = begin - pd.Timedelta(hours=1), stop + pd.Timedelta(hours=48)
    return run(con, "forecast/demand_history", since=since, as_of=until).df()


def replay_setup(
    con: duckdb.DuckDBPyConnection, cfg: FleetConfig, hours: int, end: datetime | None
) -> tuple[pd.Timestamp, pd.Timestamp, FleetParams, MinuteDemand, ServingModel, float, Clairvoyant]:
    """What every point of a sweep replays against, built once: the window's fleet
    (:func:`flows.evaluation.window_fleet`), the work bound and the clairvoyant fleet."""
    start, stop, p, demand, serving = window_fleet(con, cfg, hours, end)
    wb, clair = references(cfg, p, demand, serving)
    return start, stop, p, demand, serving, wb, clair


@dataclass(frozen=True)
class Window:
    """What every point replays against: shipped to each worker once (a pool's initializer,
    or one broadcast to a Dask cluster), never with each point."""

    p: FleetParams
    demand: MinuteDemand
    work_bound: float
    clairvoyant: Clairvoyant
    serving: ServingModel

    def replay(self, point: Point, plans: dict[float, PlanTargets]) -> dict[str, Any]:
        return run_point(
            point, self.p, self.demand, plans, self.work_bound, self.clairvoyant, self.serving
        )


_WINDOW: list[Window] = []


def _set_window(window: Window) -> None:
    """Pool initializer."""
    _WINDOW[:] = [window]


def _replay(point: Point, plans: dict[float, PlanTargets]) -> dict[str, Any]:
    """One point on the window the worker was started with (``_set_window``)."""
    return _WINDOW[0].replay(point, plans)


def _replay_on(window: Window, point: Point, plans: dict[float, PlanTargets]) -> dict[str, Any]:
    return window.replay(point, plans)


def dask_address(cfg: FleetConfig) -> str | None:
    """The Dask scheduler the sweep runs on: the planner's (``planner.dask_address``, also
    the region subproblems') or SAGESERVE_DASK_ADDRESS; None: a local process pool."""
    return cfg.planner.dask_address or os.environ.get("SAGESERVE_DASK_ADDRESS") or None


def process_pool(workers: int, window: Window | None = None) -> ProcessPoolExecutor:
    """A local process pool (spawn: the parent holds a DuckDB connection and its threads,
    which a fork would copy), its workers started with ``window`` when given."""
    context = multiprocessing.get_context("spawn")
    if window is None:
        return ProcessPoolExecutor(workers, mp_context=context)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_set_window, initargs=(window,)
    )


class Engine:
    """Where the sweep's tasks run: a local process pool of ``workers`` (:func:`process_pool`), or
    the Dask cluster at ``address``. Both hand back ``concurrent.futures`` futures."""

    def __init__(self, window: Window, workers: int, address: str | None = None) -> None:
        self._client: Any = None
        self._window: Any = None
        self._pool: Executor
        if address:
            from distributed import Client

            self._client = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
            self._window = self._client.scatter(window, broadcast=True)
            self._pool = self._client.get_executor(pure=False)
        else:
            self._pool = process_pool(workers, window)

    def point(self, point: Point, plans: dict[float, PlanTargets]) -> Future[dict[str, Any]]:
        if self._client is not None:
            return self._pool.submit(_replay_on, self._window, point, plans)
        return self._pool.submit(_replay, point, plans)

    def sequence(self, cfg: FleetConfig, inputs: Sequence[HourInputs]) -> Future[list[Plan]]:
        return self._pool.submit(plan_sequence_from, cfg, inputs)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown()
        if self._client is not None:
            self._client.close()


def run_sweep(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    hours: int,
    end: datetime | None = None,
    families: Sequence[str] = ("reactive", "slo-reactive", "plan", "siloed"),
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
    time_limit_s: float | None = None,
    seed: int = 0,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
    refine: bool = True,
) -> Sweep:
    """Replay the window through every point of the families' grids (module docstring), then
    (``refine``) each family's best point refined on its dial (``planner.sim.refine``, rows
    marked ``refined``). ``seconds`` in the result: the set-up, the forecasts (while the
    planless points replay), the plans (while the finished quantiles' points replay), the
    rest of the replays and the refinement."""
    points = grid(families, quantiles)
    lap = _Laps()
    progress = progress or (lambda _n: None)
    cfg = with_solver(cfg, seed, time_limit_s)
    start, stop, p, demand, serving, wb, clair = replay_setup(con, cfg, hours, end)
    lap("demand_and_references")
    wanted = sorted({float(pt.params["quantile"]) for pt in points if pt.family == "plan"})
    sequences: dict[float, list[Plan]] = {}
    with Engine(Window(p, demand, wb, clair, serving), workers, dask_address(cfg)) as pool:
        replays = _queue(pool, points, {}, progress)
        inputs = hour_inputs(con, cfg, start, hours) if wanted else []
        lap("forecasts")
        solving = {pool.sequence(at_quantile(cfg, q), inputs): q for q in wanted}
        for f in as_completed(solving):
            q = solving[f]
            sequences[q] = f.result()
            progress(hours)
            replays |= _queue(pool, points, {q: plan_targets(sequences[q], p)}, progress)
        lap("plans")
        rows = [replays[i].result() for i in range(len(points))]
        lap("replays")
        if refine:
            rows += _refined(pool, rows, {q: plan_targets(sequences[q], p) for q in wanted})
            lap("refinement")
    ids = {q: [pl.plan_id for pl in sequences[q]] for q in wanted}
    refs = _references(wb, clair, demand)
    return Sweep(start, stop, rows, frontier(rows), refs, config_hash(cfg), seed, ids, lap.seconds)


def _refined(
    pool: Engine, rows: list[dict[str, Any]], plans: dict[float, PlanTargets]
) -> list[dict[str, Any]]:
    """The rows of each family's best point refined on its dial, marked ``refined``."""
    futures = [pool.point(pt, plans if pt.family == "plan" else {}) for pt in refine_points(rows)]
    return [{**f.result(), "refined": True} for f in futures]


def _queue(
    pool: Engine,
    points: Sequence[Point],
    plans: dict[float, PlanTargets],
    progress: Callable[[int], None],
) -> dict[int, Future[dict[str, Any]]]:
    """Queue the points that need no plan (``plans`` empty) or that follow one of ``plans``
    (by quantile), by their position in ``points``; each done is one step of ``progress``."""
    queued = {}
    for i, pt in enumerate(points):
        wants = pt.family == "plan"
        if wants == bool(plans) and (not wants or float(pt.params["quantile"]) in plans):
            queued[i] = pool.point(pt, plans)
            queued[i].add_done_callback(lambda _f: progress(1))
    return queued


class _Laps:
    """Seconds between calls, by the name of the part that just ended."""

    def __init__(self) -> None:
        self.clock = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.clock, 2)
        self.clock = now


def _references(wb: float, clair: Clairvoyant, demand: MinuteDemand) -> dict[str, Any]:
    """What the sweep's points are compared with: the work bound and the clairvoyant fleet."""
    return {
        "work_bound_gpu_hours": round(wb, 2),
        "clairvoyant_gpu_hours": round(clair.gpu_hours, 2),
        "clairvoyant_unpacked_gpu_hours": round(clair.unpacked_gpu_hours, 2),
        "clairvoyant_cost": round(clair.cost, 2),
        "floor_gpu_hours": round(clair.floor_gpu_hours, 2),
        "clairvoyant_reachable": clair.reachable,
        "requests": round(demand.total_requests),
    }


def sweep_json(sweep: Sweep) -> dict[str, Any]:
    return {
        "window": [str(sweep.start), str(sweep.end)],
        "config_hash": sweep.config_hash,
        "seed": sweep.seed,
        "targets": TARGETS,
        "references": sweep.references,
        "frontier": sweep.frontier,
        "results": sweep.rows,
        "plans": {f"{q:g}": ids for q, ids in sweep.plans.items()},
        "points": len(sweep.rows),
        "seconds": sweep.seconds,
    }


def write_sweep(sweep: Sweep, out: Path) -> dict[str, Path]:
    """sweep.json, frontier.md, sweep.csv and the frontier plots into ``out``."""
    from reports.sweep import frontier_markdown, write_frontier_plots

    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sweep.json", "md": out / "frontier.md", "csv": out / "sweep.csv"}
    paths["json"].write_text(json.dumps(sweep_json(sweep), indent=1, default=str))
    frame = pd.DataFrame(sweep.rows)
    frame.assign(params=frame["params"].map(json.dumps)).to_csv(paths["csv"], index=False)
    paths["md"].write_text(
        f"# Frontier at equal SLA {sweep.start} .. {sweep.end}\n\n"
        f"config {sweep.config_hash}, seed {sweep.seed}\n\n"
        + frontier_markdown(sweep.frontier, sweep.references)
        + "\n"
    )
    paths.update(write_frontier_plots(sweep.rows, sweep.references, out))
    return paths
