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
each its own policy from its own first fleet; only the window is metered.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.evaluation import load_demand
from flows.sweep import (
    _pool,
    at_quantile,
    hour_inputs,
    oracle,
    oracle_actuals,
    plan_sequence_from,
    replay_setup,
)
from planner.config import FleetConfig, config_hash, load_config
from planner.config.work_limit import WorkLimit
from planner.ilp.plan import Plan
from planner.quantiles import QUANTILES
from planner.sim.attainment_bound import AttainmentBound, attainment_bound
from planner.sim.plans import plan_targets
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

log = logging.getLogger("bench.levers")
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


def _kind(row: dict[str, Any]) -> str:
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


def solve_limits(cfg: FleetConfig, a: argparse.Namespace) -> FleetConfig:
    """``cfg`` with the bench's solver limits: by default a deterministic work limit
    (``planner.work_limit``: the same plans on any machine at any load); with
    ``--no-deterministic`` the wall-clock ``--time-limit`` per plan (as before session 32), a
    work limit in the config file cleared."""
    update: dict[str, Any] = {"time_limit_s": a.time_limit, "work_limit": None}
    if a.deterministic:
        update["work_limit"] = WorkLimit(
            nodes=a.node_limit, root_cut_rounds=a.root_cut_rounds, cap_s=a.cap
        )
    return cfg.model_copy(update={"planner": cfg.planner.model_copy(update=update)})


def cache_window(a: argparse.Namespace, start: pd.Timestamp, warm: int) -> str:
    """The plan cache's window key: config, window start and length, warm-up, and the
    warehouse (its resolved path, digested), so no two windows or warehouses share a file."""
    where = hashlib.sha256(str(Path(a.warehouse).resolve()).encode()).hexdigest()[:8]
    return f"{Path(a.config).stem}-{start:%Y%m%dT%H%M}-{a.hours}h-w{warm}-{where}"


def plan_report(records: dict[str, dict[str, list[str]]]) -> list[str]:
    """Print each plan sequence's digest (of its plans' ids: an id digests the plan's tables,
    config and status, so equal digests are equal plans); the ids of plans whose safety cap
    bound (their determinism note), logged as an error."""
    for k, rec in records.items():
        digest = hashlib.sha256("".join(rec["ids"]).encode()).hexdigest()[:16]
        print(f"plans[{k}] {len(rec['ids'])} plans, sequence digest {digest}")
    bad = [i for r in records.values() for i, n in zip(r["ids"], r["notes"], strict=True) if n]
    if bad:
        log.error("determinism lost (the safety cap bound) in %d plans: %s", len(bad), bad)
    return bad


def plan_record(seq: list[Plan]) -> dict[str, list[str]]:
    """Each plan's id, its determinism note ("" when none) and how its solve ended."""
    notes = ["; ".join(n for n in pl.notes if n.startswith("determinism")) for pl in seq]
    ends = [f"{f.status} {f.nodes} nodes {f.solve_seconds:.1f} s" for f in (p.solver for p in seq)]
    return {"ids": [pl.plan_id for pl in seq], "notes": notes, "solves": ends}


def main(argv: list[str] | None = None) -> int:
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
    ap.add_argument("--node-limit", type=int, default=WorkLimit().nodes)
    ap.add_argument("--root-cut-rounds", type=int, default=WorkLimit().root_cut_rounds)
    ap.add_argument("--cap", type=float, default=WorkLimit().cap_s, help="safety cap, s/plan")
    ap.add_argument("--time-limit", type=float, default=3.0, help="with --no-deterministic")
    ap.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="hours replayed before the window by every family (each its own policy from its "
        "own first fleet) and not metered; default: warmup_hours (the longest scale-in window "
        "replayed + lead time + model load)",
    )
    ap.add_argument(
        "--plans-only",
        action="store_true",
        help="solve the plans (never read from the cache), print their ids, write --out, stop",
    )
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None, help="write every row and the frontiers as JSON here")
    ap.add_argument(
        "--plans-cache",
        default=None,
        help="directory: each variant's plan targets per quantile are stored there and read "
        "back on the next run with the same window (so a policy change is re-measured on the "
        "same plans without solving them again)",
    )
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    clock = time.perf_counter()
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
    # the replay covers warm-up and window (references and fleet: the window's alone)
    replayed = load_demand(con, p, begin, stop) if warm else demand
    inputs = hour_inputs(con, cfg, begin, a.hours + warm)
    if a.oracle:
        inputs = oracle(inputs, oracle_actuals(con, begin, stop))
    con.close()
    log.info(
        "demand, references, forecasts (warm-up %d h from %s): %.0f s",
        warm,
        begin,
        time.perf_counter() - clock,
    )
    # the bound at per-window attainment: on every policy (no floors), and on every policy
    # keeping the availability floors (every family of the sweep keeps them)
    if a.attainment_bound:
        ab_free = attainment_bound(p, demand, serving, TARGETS)
        ab_floor = attainment_bound(p, demand, serving, TARGETS, floor=floors(cfg, p))
    else:
        ab_free = ab_floor = AttainmentBound(float("nan"), {}, 0)
    log.info(
        "attainment bounds %.1f / %.1f GPU-h (no floors / floors): %.0f s",
        ab_free.gpu_hours,
        ab_floor.gpu_hours,
        time.perf_counter() - clock,
    )
    cache = Path(a.plans_cache) if a.plans_cache else None
    plans: dict[str, dict[float, PlanTargets]] = {v: {} for v in names}
    records: dict[str, dict[str, list[str]]] = {}

    def cfg_of(v: str, q: float) -> FleetConfig:
        return at_quantile(variant(cfg, v, a.attainment), q)

    def cached(v: str, q: float) -> Path | None:
        """The cache file of variant ``v`` at ``q``: keyed on the window, its warm-up, the
        warehouse and the one config hash (solver limits, deterministic or not, included)."""
        tag = f"{cache_window(a, start, warm)}-{v}-q{q:g}-a{a.attainment:g}"
        tag += "-oracle" if a.oracle else ""
        return cache / f"{tag}-{config_hash(cfg_of(v, q))}.pkl" if cache else None

    if a.rise_quantile is not None and a.rise_quantile not in QUANTILES:
        raise SystemExit(f"--rise-quantile {a.rise_quantile} is not a stored quantile {QUANTILES}")
    made = quantiles + ([a.rise_quantile] if a.rise_quantile is not None else [])
    for v in names:
        for q in made:
            path = cached(v, q)
            if path is not None and path.exists() and not a.plans_only:
                plans[v][q] = pickle.loads(path.read_bytes())
                ids = path.with_suffix(".ids.json")
                if ids.exists():
                    records[f"{v} q{q:g}"] = json.loads(ids.read_text())
    jobs = [(v, q) for v in names for q in made if q not in plans[v]]
    metered = 60 * warm
    with _pool(a.workers) as pool:
        seqs = list(
            pool.map(plan_sequence_from, [cfg_of(v, q) for v, q in jobs], [inputs] * len(jobs))
        )
        log.info("plans: %.0f s (%d made, the rest cached)", time.perf_counter() - clock, len(jobs))
        for (v, q), seq in zip(jobs, seqs, strict=True):
            plans[v][q] = plan_targets(seq, p)
            records[f"{v} q{q:g}"] = plan_record(seq)
            path = cached(v, q)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(pickle.dumps(plans[v][q]))
                path.with_suffix(".ids.json").write_text(json.dumps(records[f"{v} q{q:g}"]))
        bad = plan_report(records)
        if a.plans_only:
            if a.out:
                Path(a.out).write_text(json.dumps({"plan_ids": records}, indent=1))
            return 1 if bad else 0
        futures = [
            ("", pool.submit(run_point, pt, p, replayed, {}, wb, clair, serving, metered))
            for pt in grid(families, quantiles)
        ]
        for v in names:
            futures += [
                (v, pool.submit(run_point, pt, p, replayed, plans[v], wb, clair, serving, metered))
                for pt in banded(plan_grid(quantiles, slo_layer=a.slo_layer), a.rise_quantile)
            ]
        rows = []
        for v, f in futures:
            r = f.result()
            if v:
                r["variant"] = v
            rows.append(r)
    log.info("replays: %.0f s", time.perf_counter() - clock)
    with_attainment_bound(rows, ab_floor.gpu_hours)
    base_rows = [r for r in rows if r["family"] != "plan"]
    out: dict[str, Any] = {
        "window": [str(start), str(stop)],
        "references": {
            "work_bound_gpu_hours": round(wb, 2),
            "clairvoyant_gpu_hours": round(clair.gpu_hours, 2),
            "clairvoyant_unpacked_gpu_hours": round(clair.unpacked_gpu_hours, 2),
            "clairvoyant_reachable": clair.reachable,
            "floor_gpu_hours": round(clair.floor_gpu_hours, 2),
            "attainment_bound_gpu_hours": round(ab_floor.gpu_hours, 2),
            "attainment_bound_no_floor_gpu_hours": round(ab_free.gpu_hours, 2),
            "attainment_bound_prices": ab_floor.prices,
        },
        "frontier": {
            v: frontier(base_rows + [r for r in rows if r.get("variant") == v]) for v in names
        },
        "seconds": round(time.perf_counter() - clock, 1),
        "warmup_hours": warm,
        "plan_ids": records,
        "determinism_lost": bad,
    }
    print(f"window {start} .. {stop}; references {out['references']}")
    for v, fr in out["frontier"].items():
        for fam, best in fr.items():
            if fam != "plan" and v != names[0]:
                continue
            label = f"plan[{v}]" if fam == "plan" else fam
            if best is None:
                print(f"{label:24s} none meets the targets")
                continue
            print(
                f"{label:24s} {best['gpu_hours']:>10,.0f} GPU-h  vs reactive families "
                f"{-100 * (best['saving_vs_reactive_families'] or 0):+.1f} %  vs clairvoyant "
                f"{best['vs_bound']:.2f}  vs attainment bound {best['vs_attainment_bound']:.2f}"
                f"  util {best['utilisation']:.2f}  {best['policy']}"
            )
    for v in names:  # the plan family's best IW-F/IW-N per variant, met or not
        mine = [r for r in rows if r.get("variant") == v]
        top = max(mine, key=lambda r: (r["IW-F_sla"] + r["IW-N_sla"], -r["gpu_hours"]))
        print(
            f"plan[{v}] highest attainment: IW-F {top['IW-F_sla']:.4f} IW-N {top['IW-N_sla']:.4f}"
            f" NIW {top['niw_on_time']:.4f} at {top['gpu_hours']:,.0f} GPU-h ({top['policy']})"
        )
    for v in names:  # the plan family's best point per plan mode (LT-R with the SLO dials apart)
        for kind in ("lt-i", "lt-u", "lt-ua", "lt-r", "lt-r+slo-dials", "lt-f"):
            mine = [r for r in rows if r.get("variant") == v and _kind(r) == kind]
            best = frontier(base_rows + mine).get("plan")
            text = "none meets" if best is None else f"{best['gpu_hours']:,.0f} GPU-h"
            extra = "" if best is None else f" ({best['policy']})"
            print(f"plan[{v}] {kind:15s} {text}{extra}")
    if a.out:
        Path(a.out).write_text(json.dumps({**out, "results": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
