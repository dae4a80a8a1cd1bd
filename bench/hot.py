"""Does running hot cost SLA? The reactive scaler's target utilisation swept 0.4 → 0.9 on one
window of a warehouse's log (issue #13's motivating measurement), through the evaluation's
own replay (planner.sim.fluid.simulate).

Each point scales out above ``target + 0.2`` (at most 0.98) and in below ``target / 2``,
cooldowns 5/20 min (the default scaler's shape). Printed per target: GPU-hours and SLA
attainment per tier.

    flock /tmp/sageserve-heavy.lock .venv/bin/python bench/hot.py [--warehouse PATH]
        [--hours 24] [--end 2024-06-14T00:00] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import duckdb
import pandas as pd

from planner.config import load_config
from planner.sim.demand import from_buckets
from planner.sim.fleet import params_from_config
from planner.sim.fluid import simulate
from planner.sim.policies import Reactive

ROOT = Path(__file__).resolve().parents[1]
BUCKETS = (ROOT / "sql" / "sim" / "minute_buckets.sql").read_text()
MINUTES_TABLE = (ROOT / "sql" / "migrations" / "0019_create_demand_minutes.sql").read_text()
TARGETS = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=ROOT / ".sageserve" / "warehouse.duckdb")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--end", default="2024-06-14T00:00")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config(args.config) if args.config else load_config()
    con = duckdb.connect(str(args.warehouse))
    listed = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    tables = {r[0] for r in listed}
    if "demand_minutes" not in tables:  # a warehouse from before the minute aggregates
        con.execute(MINUTES_TABLE)
    end = pd.Timestamp(args.end)
    start = end - pd.Timedelta(hours=args.hours)
    frame = con.execute(BUCKETS, {"start": start, "end": end}).df()
    base = params_from_config(cfg)
    demand = from_buckets(frame, base, start, end)
    p = params_from_config(cfg, demand.input_share(base))
    first_hour = demand.tokens[:60].mean(axis=0) / 60.0
    rows = []
    for target in TARGETS:
        policy = Reactive(p, first_hour, up=min(target + 0.2, 0.98), down=target / 2, target=target)
        t0 = time.perf_counter()
        s = simulate(p, demand, policy).summary()
        rows.append(
            {
                "target": target,
                "gpu_hours": s["gpu_hours"],
                "utilisation": s["utilisation"],
                **{f"{k}_sla": s[f"{k}_sla"] for k in p.tiers},
                "replay_s": round(time.perf_counter() - t0, 2),
            }
        )
    out = {"window": f"{start} .. {end}", "requests": round(demand.total_requests), "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"window {out['window']}, {out['requests']:,} requests")
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
