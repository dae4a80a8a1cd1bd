"""The plan family's sizing levers on the frontier at equal SLA (issue #15): one replay window,
the reactive families once, and the plan family once per planning variant, every variant's
plans made from the same forecasts (origin = the hour before each planned hour, as the hourly
job makes them; ``flows.sweep.hour_inputs``).

Variants (``--variants``, comma-separated):

* ``headroom``: the config's default (each tier's busiest minute over its flat headroom, NIW
  stacked on top);
* ``latency``: ``planner.interactive_sizing: latency`` (the capacity curves, the calibrated θ on
  target; ``planner.ilp.sizing``) at ``--attainment``;
* ``latency+trough``: the same with ``planner.trough_filling`` (NIW in the capacity the plan
  holds idle);
* ``headroom+trough``: trough filling alone;
* ``floor``, ``floor+trough``: the plan as a floor (issue #15's next step): latency sizing of
  the interactive tiers' forecast hour *mean* token rate (their ``planning_metric`` set to
  ``token_rate``) instead of their busiest minute, so the plan buys what the forecast makes
  predictable (the hour's load and its ramps, ahead of the hour) and LT-R's SLO-aware layer
  scales above it on observed pressure; with and without trough filling.

    .venv/bin/python bench/levers.py --warehouse W --hours 24 --end 2024-06-13T00:00 \
        --out levers.json

Prints per variant the plan family's cheapest point meeting the targets, its saving against
the cheapest point of either reactive family and its ratio to the clairvoyant fleet; ``--out``
writes every row as JSON. Every family's grid carries each point uncapped and with NIW capped
at ``NIW_CAP`` (``planner.sim.sweep.with_niw_cap``).

Plans are solved to a deterministic work limit (``planner.work_limit``; ``--no-deterministic``:
``--time-limit`` of wall clock), so two runs make the same plans (the printed sequence digests
are equal) at any machine load. Every family replays ``--warmup`` hours before the window,
each its own policy from its own first fleet; only the window is metered. Then each family's
best point is refined on its continuous dial, the same rule for every family
(``planner.sim.refine``; ``--no-refine``: the coarse grid alone).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.evaluation import load_demand
from flows.plan_cache import PlanRecord, plan_report, plans_for
from flows.plan_variants import banded, variant
from flows.sweep import (
    HourInputs,
    at_quantile,
    hour_inputs,
    oracle,
    oracle_actuals,
    process_pool,
    replay_setup,
)
from planner.config import FleetConfig, config_hash, load_config
from planner.config.work_limit import WorkLimit
from planner.quantiles import QUANTILES
from planner.sim.attainment_bound import AttainmentBound, attainment_bound
from planner.sim.bounds import Clairvoyant
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.serving import ServingModel
from planner.sim.sweep import (
    TARGETS,
    PlanTargets,
    Point,
    floors,
    frontier,
    grid,
    plan_grid,
    run_point,
    with_attainment_bound,
)
from planner.sim.warmup import warmup_hours

sys.path.insert(0, str(Path(__file__).resolve().parent))
from levers_refine import coarse_from, collect, refined
from levers_report import print_frontiers, print_plan_modes

log = logging.getLogger("bench.levers")


def solve_limits(cfg: FleetConfig, a: argparse.Namespace) -> FleetConfig:
    """``cfg`` with the bench's solver limits: by default a deterministic work limit
    (``planner.work_limit``: the same plans on any machine at any load); with
    ``--no-deterministic`` the wall-clock ``--time-limit`` per plan (as before session 32), a
    work limit in the config file cleared. The work limit is the config file's
    ``planner.work_limit`` (``WorkLimit()``'s defaults when it has none) with the limits given
    on the command line in its place."""
    update: dict[str, Any] = {"time_limit_s": a.time_limit, "work_limit": None}
    if a.deterministic:
        given = {"nodes": a.node_limit, "root_cut_rounds": a.root_cut_rounds, "cap_s": a.cap}
        base = cfg.planner.work_limit or WorkLimit()
        update["work_limit"] = base.model_copy(
            update={k: v for k, v in given.items() if v is not None}
        )
    return cfg.model_copy(update={"planner": cfg.planner.model_copy(update=update)})


def cache_window(a: argparse.Namespace, start: pd.Timestamp, warm: int) -> str:
    """The plan cache's window key: config, window start and length, warm-up, and the
    warehouse (its resolved path, digested), so no two windows or warehouses share a file."""
    where = hashlib.sha256(str(Path(a.warehouse).resolve()).encode()).hexdigest()[:8]
    return f"{Path(a.config).stem}-{start:%Y%m%dT%H%M}-{a.hours}h-w{warm}-{where}"


def parser() -> argparse.ArgumentParser:
    """The window, the variants and families, and the replays' options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--end", default=None)
    ap.add_argument("--quantiles", default="0.5,0.9")
    ap.add_argument("--variants", default="headroom,latency,latency+trough")
    ap.add_argument("--families", default="reactive,slo-reactive")
    ap.add_argument("--attainment", type=float, default=0.99)
    ap.add_argument(
        "--slo-layer",
        action="store_true",
        help="add LT-R at every dial setting of the SLO-aware family's grid (the plan floor "
        "with the baseline's own layer above it; planner.sim.sweep.layer_grid)",
    )
    ap.add_argument(
        "--attainment-bound",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compute the bound at per-window attainment (planner.sim.attainment_bound)",
    )
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="hours replayed before the window by every family (each its own policy from its "
        "own first fleet) and not metered; default: warmup_hours (the longest scale-in window "
        "replayed + lead time + model load)",
    )
    ap.add_argument(
        "--refine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="refine each family's best point on its continuous dial, the same rule for every "
        "family (planner.sim.refine); the JSON marks those rows refined",
    )
    ap.add_argument(
        "--coarse-from",
        default=None,
        help="an earlier --out JSON of the same window and plans: its coarse rows are read back "
        "(every family's best point replayed again and checked), only the refinement replayed",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="write every row and the frontiers as JSON here")
    _plan_args(ap)
    return ap


def _plan_args(ap: argparse.ArgumentParser) -> None:
    """The plans' options: their inputs, solver limits and cache."""
    ap.add_argument(
        "--oracle",
        action="store_true",
        help="plans from the true hourly demand instead of forecasts (a comparator that sees "
        "its future, for decomposing the plan's cost; never a policy)",
    )
    ap.add_argument(
        "--rise-quantile",
        type=float,
        default=None,
        help="LT-F buys only the rise the plans at this (lower) stored quantile support "
        "(planner.sim.plan_ramp; its plans are made and cached as the others)",
    )
    ap.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="solve plans to a work limit (SCIP nodes and the gap; planner.work_limit), "
        "not to --time-limit of wall clock, so a loaded machine makes the same plans",
    )
    ours = "default: the config's planner.work_limit, else"
    ap.add_argument("--node-limit", type=int, help=f"{ours} {WorkLimit().nodes}")
    ap.add_argument("--root-cut-rounds", type=int, help=f"{ours} {WorkLimit().root_cut_rounds}")
    ap.add_argument("--cap", type=float, help=f"safety cap, s/solve; {ours} {WorkLimit().cap_s:g}")
    ap.add_argument("--time-limit", type=float, default=3.0, help="with --no-deterministic")
    ap.add_argument(
        "--plans-only",
        action="store_true",
        help="solve the plans (never read from the cache), print their ids, write --out, stop",
    )
    ap.add_argument(
        "--plans-cache",
        default=None,
        help="directory: each variant's plan targets per quantile are stored there and read "
        "back on the next run with the same window (so a policy change is re-measured on the "
        "same plans without solving them again)",
    )


@dataclass
class Bench:
    """The parsed run, its config (solver limits applied) and the replay window, the warm-up
    before it and the plans' hourly inputs over both."""

    a: argparse.Namespace
    cfg: FleetConfig
    quantiles: list[float]
    names: list[str]
    families: list[str]
    start: pd.Timestamp
    stop: pd.Timestamp
    p: FleetParams
    demand: MinuteDemand
    serving: ServingModel
    wb: float
    clair: Clairvoyant
    warm: int
    replayed: MinuteDemand
    inputs: list[HourInputs]

    def cfg_of(self, v: str, q: float) -> FleetConfig:
        return at_quantile(variant(self.cfg, v, self.a.attainment), q)

    def cached(self, v: str, q: float) -> Path | None:
        """The cache file of variant ``v`` at ``q``: keyed on the window, its warm-up, the
        warehouse and the one config hash (solver limits, deterministic or not, included)."""
        a = self.a
        tag = f"{cache_window(a, self.start, self.warm)}-{v}-q{q:g}-a{a.attainment:g}"
        tag += "-oracle" if a.oracle else ""
        cache = Path(a.plans_cache) if a.plans_cache else None
        return cache / f"{tag}-{config_hash(self.cfg_of(v, q))}.pkl" if cache else None


def setup(a: argparse.Namespace, clock: float) -> Bench:
    """Demand, references and the plans' inputs over warm-up and window (the replay covers
    both; references and fleet: the window's alone)."""
    cfg = solve_limits(load_config(a.config), a)
    quantiles = [float(q) for q in a.quantiles.split(",") if q]
    names = [v for v in a.variants.split(",") if v]
    con = duckdb.connect(a.warehouse)
    end = pd.Timestamp(a.end).to_pydatetime() if a.end else None
    start, stop, p, demand, serving, wb, clair = replay_setup(con, cfg, a.hours, end)
    families = [f for f in a.families.split(",") if f]
    points = grid(families, quantiles) + plan_grid(quantiles, slo_layer=a.slo_layer)
    warm = warmup_hours(points, p) if a.warmup is None else a.warmup
    begin = start - pd.Timedelta(hours=warm)
    replayed = load_demand(con, p, begin, stop) if warm else demand
    inputs = hour_inputs(con, cfg, begin, a.hours + warm)
    if a.oracle:
        inputs = oracle(inputs, oracle_actuals(con, begin, stop))
    con.close()
    took = time.perf_counter() - clock
    log.info("demand, references, forecasts (warm-up %d h from %s): %.0f s", warm, begin, took)
    return Bench(
        a, cfg, quantiles, names, families, start, stop, p, demand, serving, wb, clair, warm,
        replayed, inputs,
    )  # fmt: skip


def _bounds(b: Bench, clock: float) -> tuple[AttainmentBound, AttainmentBound]:
    """The bound at per-window attainment: on every policy (no floors), and on every policy
    keeping the availability floors (every family of the sweep keeps them)."""
    if b.a.attainment_bound:
        ab_free = attainment_bound(b.p, b.demand, b.serving, TARGETS)
        ab_floor = attainment_bound(b.p, b.demand, b.serving, TARGETS, floor=floors(b.cfg, b.p))
    else:
        ab_free = ab_floor = AttainmentBound(float("nan"), {}, 0)
    gpu_h, took = (ab_free.gpu_hours, ab_floor.gpu_hours), time.perf_counter() - clock
    log.info("attainment bounds %.1f / %.1f GPU-h (no floors / floors): %.0f s", *gpu_h, took)
    return ab_free, ab_floor


def bench_plans(
    b: Bench, pool: Executor, clock: float
) -> tuple[dict[str, dict[float, PlanTargets]], dict[str, PlanRecord]]:
    """Each variant's plan targets per quantile (and at ``--rise-quantile``): read from the
    cache unless ``--plans-only``, the rest solved on ``pool`` and stored; their records."""
    a = b.a
    if a.rise_quantile is not None and a.rise_quantile not in QUANTILES:
        raise SystemExit(f"--rise-quantile {a.rise_quantile} is not a stored quantile {QUANTILES}")
    made = b.quantiles + ([a.rise_quantile] if a.rise_quantile is not None else [])
    keys = [(v, q) for v in b.names for q in made]
    jobs = [(b.cfg_of(v, q), b.cached(v, q)) for v, q in keys]
    n = sum(path is None or a.plans_only or not path.exists() for _, path in jobs)
    targets, recs = plans_for(jobs, b.inputs, b.p, pool, read=not a.plans_only)
    log.info("plans: %.0f s (%d made, the rest cached)", time.perf_counter() - clock, n)
    plans: dict[str, dict[float, PlanTargets]] = {v: {} for v in b.names}
    for (v, q), t in zip(keys, targets, strict=True):
        plans[v][q] = t
    records = {f"{keys[i][0]} q{keys[i][1]:g}": rec for i, rec in recs.items()}
    return plans, records


def _replays(
    b: Bench, plans: dict[str, dict[float, PlanTargets]], pool: Executor
) -> list[dict[str, Any]]:
    """Every reactive point once and every plan point per variant (LT-F banded at
    ``--rise-quantile``), over warm-up and window, the window metered; a plan row names its
    variant."""

    def submit(pt: Point, targets: dict[float, PlanTargets]) -> Future[dict[str, Any]]:
        refs = (b.wb, b.clair, b.serving, 60 * b.warm)
        return pool.submit(run_point, pt, b.p, b.replayed, targets, *refs)

    pts = [("", pt) for pt in grid(b.families, b.quantiles)]
    for v in b.names:
        plan_pts = banded(plan_grid(b.quantiles, slo_layer=b.a.slo_layer), b.a.rise_quantile)
        pts += [(v, pt) for pt in plan_pts]
    if b.a.coarse_from:
        expect = (b.warm, {(v, pt.label) for v, pt in pts})
        rows = coarse_from(Path(b.a.coarse_from), b.names, plans, submit, expect)
    else:
        rows = collect([(v, submit(pt, plans[v] if v else {})) for v, pt in pts])
    return rows + refined(rows, b.names, plans, submit) if b.a.refine else rows


def _summary(
    b: Bench, rows: list[dict[str, Any]], bounds: tuple[AttainmentBound, AttainmentBound]
) -> dict[str, Any]:
    """The window, its references and each variant's frontier (the reactive rows with that
    variant's plan rows)."""
    ab_free, ab_floor = bounds
    base_rows = [r for r in rows if r["family"] != "plan"]
    return {
        "window": [str(b.start), str(b.stop)],
        "references": {
            "work_bound_gpu_hours": round(b.wb, 2),
            "clairvoyant_gpu_hours": round(b.clair.gpu_hours, 2),
            "clairvoyant_unpacked_gpu_hours": round(b.clair.unpacked_gpu_hours, 2),
            "clairvoyant_reachable": b.clair.reachable,
            "floor_gpu_hours": round(b.clair.floor_gpu_hours, 2),
            "attainment_bound_gpu_hours": round(ab_floor.gpu_hours, 2),
            "attainment_bound_no_floor_gpu_hours": round(ab_free.gpu_hours, 2),
            "attainment_bound_prices": ab_floor.prices,
        },
        "frontier": {
            v: frontier(base_rows + [r for r in rows if r.get("variant") == v]) for v in b.names
        },
    }


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    clock = time.perf_counter()
    b = setup(a, clock)
    bounds = _bounds(b, clock)
    with process_pool(a.workers) as pool:
        plans, records = bench_plans(b, pool, clock)
        lines, bad = plan_report(records)
        print("\n".join(lines))
        if a.plans_only:
            if a.out:
                Path(a.out).write_text(json.dumps({"plan_ids": records}, indent=1))
            return 1 if bad else 0
        rows = _replays(b, plans, pool)
    log.info("replays: %.0f s", time.perf_counter() - clock)
    with_attainment_bound(rows, bounds[1].gpu_hours)
    out = _summary(b, rows, bounds)
    out |= {"seconds": round(time.perf_counter() - clock, 1), "warmup_hours": b.warm}
    out |= {"plan_ids": records, "determinism_lost": bad}
    print_frontiers(out, b.names)
    print_plan_modes(rows, b.names)
    if a.out:
        Path(a.out).write_text(json.dumps({**out, "results": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
