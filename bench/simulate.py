"""Replay benchmark: a 7-day, 10-million-request log (synthetic, O365-shaped, default fleet)
through the fluid simulator, against the iteration-level instance reference side by side.

Figures: wall time and requests/s of the fluid replay (minute buckets from DuckDB over the
request rows, then the simulation) for the reactive and siloed policies; the reference's
requests/s on a slice of the same log through one pool (continuous batching per instance,
iteration times from the measured profile); the ratio; peak RSS of the process.

    .venv/bin/python bench/simulate.py [--requests 10000000] [--days 7] [--json]
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

from planner.config import load_config
from planner.sim.demand import from_buckets
from planner.sim.fleet import params_from_config
from planner.sim.fluid import simulate
from planner.sim.instances import Requests, simulate_instances
from planner.sim.policies import Reactive, Siloed
from planner.sim.profile import profiles_for_config
from planner.workload.synth import SynthSpec, hourly_rates, synthesize
from planner.workload.tokens import TokenSampler

ROOT = Path(__file__).resolve().parents[1]
BUCKETS = (ROOT / "sql" / "sim" / "minute_buckets.sql").read_text()
PERF_FILE = "perf_model_4_models.csv"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--reference-requests", type=int, default=200_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.generate:
        generate(args.generate, args.requests, args.days, args.shared)
        return
    cfg = load_config()
    spec = SynthSpec(days=args.days, seed=3, requests_per_day=args.requests // args.days)
    log_file = ROOT / "bench" / "out" / f"sim-{args.requests}-{args.days}d.parquet"
    generate_s = 0.0
    if not log_file.exists():  # generated in a child process: RSS below is the replay's own
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
        generate_s = time.perf_counter() - started
    con = duckdb.connect()
    con.execute(f"CREATE VIEW requests AS SELECT * FROM read_parquet('{log_file}')")
    rows = con.execute("SELECT count(*) FROM requests").fetchone()[0]  # type: ignore[index]
    start = pd.Timestamp(spec.start).tz_convert("UTC").tz_localize(None)
    end = start + pd.Timedelta(days=args.days)

    t0 = time.perf_counter()
    buckets = con.execute(BUCKETS, {"start": start, "end": end}).df()
    base = params_from_config(cfg)
    demand = from_buckets(buckets, base, start, end)
    p = params_from_config(cfg, demand.input_share(base))
    bucket_s = time.perf_counter() - t0

    results = {}
    first_hour = demand.tokens[:60].mean(axis=0) / 60.0
    peak = demand.tokens.max(axis=0) / 60.0
    inter = peak.copy()
    inter[:, :, p.deferrable] = 0.0
    niw = demand.hourly_tokens_per_s("mean")[:, :, :, p.deferrable].max(axis=0)
    for name, policy in (("reactive", Reactive(p, first_hour)), ("siloed", Siloed(p, inter, niw))):
        t0 = time.perf_counter()
        result = simulate(p, demand, policy)
        sim_s = time.perf_counter() - t0
        counted = sum(o.counts()["requests"] for o in result.tiers.values())
        results[name] = {
            "simulate_s": round(sim_s, 2),
            "replay_s": round(sim_s + bucket_s, 2),
            "requests_per_s": round(rows / (sim_s + bucket_s)),
            "requests_counted": counted,
        }

    # the reference: one pool (the busiest), its first N requests through the iteration-level
    # instance model, instances sized for a pool utilisation of 0.7
    sample = con.execute(
        """
        SELECT epoch(arrival_time - $start) AS t, input_tokens, output_tokens
        FROM requests WHERE region = 'us-east' AND model = 'llama2-70b'
        ORDER BY arrival_time LIMIT $n
        """,
        {"start": start, "n": args.reference_requests},
    ).df()
    prof = profiles_for_config(cfg, args.shared / "data" / "sageserve_perf" / PERF_FILE)[
        ("llama2-70b", "a100x8")
    ]
    ref_req = Requests(
        sample["t"].to_numpy(float),
        np.maximum(sample["input_tokens"].to_numpy(np.int64), 1),
        np.maximum(sample["output_tokens"].to_numpy(np.int64), 1),
    )
    span = float(ref_req.arrival_s.max() - ref_req.arrival_s.min()) or 1.0
    ref_instances = max(
        int(np.ceil(prof.busy_s(ref_req.prompt, ref_req.output).sum() / span / 0.7)), 1
    )
    t0 = time.perf_counter()
    simulate_instances(ref_req, prof, ref_instances)
    ref_s = time.perf_counter() - t0
    ref_rate = len(sample) / ref_s
    out = {
        "requests": rows,
        "days": args.days,
        "generate_s": round(generate_s, 1),
        "minute_buckets": len(buckets),
        "buckets_s": round(bucket_s, 2),
        **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
        "reference_requests": len(sample),
        "reference_instances": ref_instances,
        "reference_requests_per_s": round(ref_rate),
        "speedup_vs_reference": round(results["reactive"]["requests_per_s"] / ref_rate, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            print(f"{k:32s} {v}")


if __name__ == "__main__":
    main()
