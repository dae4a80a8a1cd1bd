"""Replay benchmark: the fleet fluid replay at scale, and the calibrated pool fluid against the
iteration-level reference on bursty ServeGen traffic.

1. Fleet: a 7-day, 10-million-request log (synthetic, O365-shaped, default fleet) through the
   fluid simulator (minute buckets from DuckDB, then the simulation), reactive and siloed.
2. Agreement: ServeGen m-mid request rows (day 1, 10:00-14:00 local, scale 0.02, Llama2-70B on
   A100; prompts clipped to its 4,096-token context window; ``--day``, ``--start-hour`` and
   ``--seed`` pick a held-out trace: another day, or another draw of arrivals, sizes and the
   clients' tiers)
   through one pool of ``--instances`` round-robin instances at utilisations 0.5, 0.7,
   0.85, 0.95 of what the instances sustain (κ): the iteration-level model
   (planner.sim.instances) and the fluid pool replay (planner.sim.pool) side by side. The
   fluid's attainment comes from the request-level fluid
   (planner.sim.request_fluid: each request's own arrival and sizes, the minute's
   mean-value state, each instance's own queue in an overload; ``fluid_sla``), beside it
   from the per-minute latency model (planner.sim.minute_model: the minute's aggregates
   only, what a replay without rows has; ``minute_sla``) and from the stored latency curves
   (``curve_sla``; ``--curves stored``, the default:
   configs/capacity/latency_curves.csv, measured by bench/calibrate.py on day 2, so the
   calibration and the test trace differ); ``--curves trace`` measures them on this trace's
   own request sizes instead (the previous sessions' figure)). The model's minute queue
   serves each minute at κ of its own mix (planner.sim.mix_kappa; ``queue_kappa``: the
   table at the trace's own mix), its backlog uneven across the instances
   (planner.sim.backlog); the request-level fluid queues each instance's own requests at
   that κ (planner.sim.pool.admission). Printed: per-tier SLA
   attainment of the four (``agreement``), rows within 1 point and the mean absolute error
   of each fluid, the requests/s of each fluid (its minute aggregates and the trace's κ
   table included; ``*_replay_requests_per_s`` without the κ table) and of the reference.

    flock /tmp/sageserve-heavy.lock .venv/bin/python bench/simulate.py [--json]
        [--requests 10000000] [--days 7] [--skip-fleet] [--instances 24] [--hours 4]
        [--day 1] [--start-hour 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig, load_config
from planner.sim.agreement import AgreementRow, compare
from planner.sim.capacity import load_latency_curves
from planner.sim.demand import MinuteDemand, from_buckets
from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import simulate
from planner.sim.latency import LatencyCurves, TierTarget, measure_curve, tier_targets
from planner.sim.profile import InstanceProfile, fit_context, profiles_for_config
from planner.sim.scenario import make_policies
from planner.utc import naive_utc
from planner.workload.synth import SynthSpec, hourly_rates, synthesize
from planner.workload.tokens import TokenSampler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate import servegen_rows

ROOT = Path(__file__).resolve().parents[1]
MINUTES_TABLE = (ROOT / "sql" / "migrations" / "0019_create_demand_minutes.sql").read_text()
PERF_FILE = "perf_model_4_models.csv"
MODEL, VM = "llama2-70b", "a100x8"  # the agreement's pool


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def generate(path: Path, requests: int, days: int, shared: Path) -> None:
    """The synthetic log as one Parquet file (day by day through DuckDB)."""
    cfg = load_config()
    spec = SynthSpec(days=days, seed=3, requests_per_day=requests // days)
    # the nominal daily volume is a weekday's; scale it so the week totals ``requests``
    expected = float(hourly_rates(cfg, spec)["rate"].sum())
    spec = SynthSpec(
        days=days, seed=3, requests_per_day=round(spec.requests_per_day * requests / expected)
    )
    tokens = TokenSampler.from_azure(shared / "data" / "azure2023")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for i, (_, frame) in enumerate(synthesize(cfg, spec, tokens)):
        frame["arrival_time"] = frame["arrival_time"].dt.tz_convert("UTC").dt.tz_localize(None)
        con.register("day", frame)
        verb = "CREATE TABLE requests AS" if i == 0 else "INSERT INTO requests"
        con.execute(f"{verb} SELECT * FROM day")
        con.unregister("day")
    tmp = path.with_suffix(".tmp")
    con.execute(f"COPY requests TO '{tmp}' (FORMAT parquet)")
    tmp.replace(path)


def fleet_log(args: argparse.Namespace) -> tuple[Path, float]:
    """The synthetic log's Parquet file and the seconds generating it took (0 when it was
    there): generated in a child process, so the RSS measured after is the replay's own."""
    log_file = ROOT / "bench" / "out" / f"sim-{args.requests}-{args.days}d.parquet"
    if log_file.exists():
        return log_file, 0.0
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--generate",
            str(log_file),
            "--requests",
            str(args.requests),
            "--days",
            str(args.days),
            "--shared",
            str(args.shared),
        ],
        check=True,
    )
    return log_file, time.perf_counter() - started


def replay_policies(
    p: FleetParams, demand: MinuteDemand, rows: int, bucket_s: float
) -> dict[str, dict[str, float | int]]:
    """Per policy (reactive and siloed, as the evaluation builds them) its replay's seconds,
    the log's requests per second of replay (buckets included) and the requests counted."""
    results: dict[str, dict[str, float | int]] = {}
    for policy in make_policies(["reactive", "siloed"], p, demand, {}):  # the evaluation's own
        t0 = time.perf_counter()
        result = simulate(p, demand, policy)
        sim_s = time.perf_counter() - t0
        counted = sum(o.counts()["requests"] for o in result.tiers.values())
        results[policy.name] = {
            "simulate_s": round(sim_s, 2),
            "replay_s": round(sim_s + bucket_s, 2),
            "requests_per_s": round(rows / (sim_s + bucket_s)),
            "requests_counted": counted,
        }
    return results


def fleet_replay(args: argparse.Namespace) -> dict[str, object]:
    """The 10 M-request log through the fleet fluid simulator (reactive and siloed)."""
    cfg = load_config()
    spec = SynthSpec(days=args.days, seed=3, requests_per_day=args.requests // args.days)
    log_file, generate_s = fleet_log(args)
    con = duckdb.connect()
    con.execute(f"CREATE VIEW requests AS SELECT * FROM read_parquet('{log_file}')")
    # the replay reads minute aggregates beside the rows (none here): the warehouse's own table
    con.execute(MINUTES_TABLE)
    rows = con.execute("SELECT count(*) FROM requests").fetchone()[0]  # type: ignore[index]
    start = naive_utc(spec.start)
    end = start + pd.Timedelta(days=args.days)
    t0 = time.perf_counter()
    buckets = run(con, "sim/minute_buckets", start=start, end=end).df()
    base = params_from_config(cfg)
    demand = from_buckets(buckets, base, start, end)
    p = params_from_config(cfg, demand.input_share(base))
    bucket_s = time.perf_counter() - t0
    results = replay_policies(p, demand, rows, bucket_s)
    return {
        "requests": rows,
        "days": args.days,
        "generate_s": round(generate_s, 1),
        "minute_buckets": len(buckets),
        "buckets_s": round(bucket_s, 2),
        **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
    }


def agreement_trace(
    args: argparse.Namespace, cfg: FleetConfig, targets: list[TierTarget], max_context: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The held-out trace's rows (``--day``, ``--start-hour``, ``--hours``, ``--scale``,
    ``--seed``), each request's tier (index into ``targets``) and its prompt and output
    sizes as a Llama2-70B deployment receives them (clipped to its ``max_context`` window)."""
    source = args.shared / "data" / "servegen" / "language" / "m-mid"
    start_s = args.day * 86400.0 + args.start_hour * 3600.0
    rows = servegen_rows(cfg, source, MODEL, start_s, args.hours, args.scale, seed=args.seed)
    rows = rows[rows["t"] < args.hours * 3600.0]
    tier = np.asarray(rows["tier"].map({t.tier: i for i, t in enumerate(targets)}), np.int64)
    prompt, output = fit_context(
        rows["input_tokens"].to_numpy(np.int64),
        rows["output_tokens"].to_numpy(np.int64),
        max_context,
    )
    return rows, tier, prompt, output


def agreement_inputs(
    args: argparse.Namespace,
) -> tuple[
    InstanceProfile, list[TierTarget], tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]
]:
    """The pool's instance profile (Llama2-70B on A100), the config's tier targets and the
    agreement trace (:func:`agreement_trace`)."""
    cfg = load_config()
    prof = profiles_for_config(cfg, args.shared / "data" / "sageserve_perf" / PERF_FILE)[
        (MODEL, VM)
    ]
    targets = tier_targets(cfg)
    return prof, targets, agreement_trace(args, cfg, targets, prof.max_context)


def agreement_curves(
    args: argparse.Namespace,
    prof: InstanceProfile,
    targets: list[TierTarget],
    sizes: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[LatencyCurves, float]:
    """The latency curves the curves' fluid reads (``--curves``: the stored ones, or measured
    on the trace's own ``sizes``: prompt, output, tier) and the seconds measuring took."""
    t0 = time.perf_counter()
    if args.curves == "trace":
        prompt, output, tier = sizes
        table = measure_curve(prof, targets, prompt, output, args.requests_per_point, tier=tier)
        lc = LatencyCurves.from_frame(table.assign(model=MODEL, vm_type=VM))
    else:
        lc = load_latency_curves()
    return lc, time.perf_counter() - t0


def agreement(args: argparse.Namespace) -> dict[str, object]:
    """Calibrated pool fluid against the iteration-level reference (module docstring)."""
    prof, targets, (rows, tier, prompt, output) = agreement_inputs(args)
    lc, curve_s = agreement_curves(args, prof, targets, (prompt, output, tier))
    curves = [lc.curve(MODEL, VM, t.tier) for t in targets]
    kappa = lc.capacity[(MODEL, VM)]
    result = compare(
        rows["t"].to_numpy(float),
        prompt,
        output,
        tier,
        prof,
        targets,
        curves,
        kappa,
        args.instances,
    )
    fluid_rate = result.requests / result.fluid_s
    ref_rate = result.requests / result.reference_s
    return {
        "agreement_trace": (
            f"servegen m-mid day {args.day} {args.start_hour:02d}:00+{args.hours}h"
            f" scale {args.scale} seed {args.seed}"
        ),
        "agreement_requests": len(rows),
        "agreement_instances": args.instances,
        "curves": args.curves,
        "kappa": round(kappa, 4),
        "queue_kappa": round(result.queue_capacity, 4),
        "curve_measure_s": round(curve_s, 1),
        "fluid_requests_per_s": round(fluid_rate),
        "minute_fluid_requests_per_s": round(result.requests / result.minute_s),
        # the same without the κ table, one saturation run through the reference per trace
        "kappa_table_s": round(result.kappa_s, 2),
        "fluid_replay_requests_per_s": round(result.requests / (result.fluid_s - result.kappa_s)),
        "minute_replay_requests_per_s": round(result.requests / (result.minute_s - result.kappa_s)),
        "curve_fluid_requests_per_s": round(result.requests / result.curve_s),
        "reference_requests_per_s": round(ref_rate),
        "fluid_over_reference": round(fluid_rate / ref_rate, 1),
        **agreement_errors(result.rows, targets[-1].tier),
    }


WITHIN_POINTS = 1.0 + 1e-9  # a row exactly 1 point off (after any rounding) is within


def error_points(model: list[float], reference: list[float]) -> tuple[int, float, float]:
    """``model``'s rows within 1 point of ``reference`` (shares), and its mean and largest
    absolute error in points (at least one row)."""
    err = 100.0 * np.abs(np.asarray(model, float) - np.asarray(reference, float))
    return (
        int((err <= WITHIN_POINTS).sum()),
        round(float(err.mean()), 2),
        round(float(err.max()), 2),
    )


def agreement_errors(rows: list[AgreementRow], niw: str) -> dict[str, object]:
    """Over the interactive rows (every tier but ``niw``): each fluid's (request-level,
    per-minute model, curves) largest and mean absolute error against the reference in points
    and its rows within 1 point; then every row's attainments (``agreement``)."""
    interactive = [r for r in rows if r.tier != niw]
    out: dict[str, object] = {}
    for prefix, column in (("", "fluid_sla"), ("minute_", "minute_sla"), ("curve_", "curve_sla")):
        within, mean, worst = error_points(
            [getattr(r, column) for r in interactive], [r.reference_sla for r in interactive]
        )
        out[f"{prefix}max_abs_error_points"] = worst
        out[f"{prefix}mean_abs_error_points"] = mean
        out[f"{prefix}rows_within_1_point"] = within
    return {
        **out,
        "interactive_rows": len(interactive),
        "agreement": [
            {
                "utilisation": r.utilisation,
                "tier": r.tier,
                "fluid_sla": round(r.fluid_sla, 4),
                "reference_sla": round(r.reference_sla, 4),
                "minute_sla": round(r.minute_sla, 4),
                "curve_sla": round(r.curve_sla, 4),
            }
            for r in rows
        ],
    }


def pool_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the data is, the pool's size and every agreement trace's span and scale."""
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--instances", type=int, default=24)
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--scale", type=float, default=0.02)


def trace_arguments(parser: argparse.ArgumentParser) -> None:
    """The agreement trace's options (:func:`agreement_trace`) and the pool's size."""
    pool_arguments(parser)
    parser.add_argument("--day", type=int, default=1, help="agreement trace: ServeGen day")
    parser.add_argument("--start-hour", type=int, default=10, help="agreement trace: local hour")
    parser.add_argument("--seed", type=int, default=7, help="agreement trace: synthesis seed")


def print_report(out: dict[str, object], rows: str, columns: tuple[str, ...]) -> None:
    """``out``'s figures as ``key value`` lines, then its list ``rows`` as a table of
    utilisation, tier and ``columns``."""
    for k, v in out.items():
        if k != rows:
            print(f"{k:32s} {v}")
    print(f"{'utilisation':>12s} {'tier':>6s}" + "".join(f" {c:>18s}" for c in columns))
    for r in out[rows]:  # type: ignore[attr-defined]
        cells = "".join(f" {r[c]:18.4f}" for c in columns)
        print(f"{r['utilisation']:12.2f} {r['tier']:>6s}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--skip-fleet", action="store_true", help="agreement part only")
    trace_arguments(parser)
    parser.add_argument("--requests-per-point", type=int, default=10_000)
    parser.add_argument("--curves", choices=("stored", "trace"), default="stored")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.generate:
        generate(args.generate, args.requests, args.days, args.shared)
        return
    out = {} if args.skip_fleet else fleet_replay(args)
    out.update(agreement(args))
    out["peak_rss_gb"] = round(peak_rss_gb(), 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print_report(out, "agreement", ("fluid_sla", "reference_sla", "minute_sla", "curve_sla"))


if __name__ == "__main__":
    main()
