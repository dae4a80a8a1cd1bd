"""Forecast accuracy on ServeGen-derived logs (the real-traffic test bed): 10 days of both
ServeGen language models (m-mid → llama3.1-8b, m-large → llama2-70b) turned into request rows,
ingested, and the daily selection run at the end. Prints the deployed choice vs seasonal naive
per metric (origins every day, strictly out of sample; choices from earlier folds only).

    .venv/bin/python bench/forecast_accuracy.py [--scale 0.002] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVEGEN = ROOT.parent / "shared" / "data" / "servegen" / "language"


def build(workdir: Path, scale: float, seed: int) -> Path:
    sageserve = str(Path(sys.executable).with_name("sageserve"))
    logs, wh = workdir / "logs", workdir / "wh.duckdb"
    subprocess.run(
        [
            sageserve,
            "synth-servegen",
            "--source",
            str(SERVEGEN / "m-mid"),
            "--source",
            str(SERVEGEN / "m-large"),
            "--scale",
            str(scale),
            "--seed",
            str(seed),
            "--out",
            str(logs),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [sageserve, "--warehouse", str(wh), "ingest", str(logs)], check=True, capture_output=True
    )
    return wh


def evaluate(wh: Path, workers: int = 2) -> dict[str, object]:
    from flows.forecasting import run_selection
    from flows.warehouse.connection import connect
    from planner.config import load_config
    from reports.backtest import aggregate

    cfg = load_config()
    with connect(wh) as con:
        end = con.execute("SELECT max(hour) FROM demand_hourly WHERE coverage > 0").fetchone()[0]
        started = time.perf_counter()
        import pandas as pd

        selection = run_selection(con, cfg, pd.Timestamp(end) + pd.Timedelta(hours=1), workers)
        wall = time.perf_counter() - started
    out = aggregate(selection)
    out["selection_s"] = round(wall, 1)
    out["series"] = len(selection.fitted)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.002)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = evaluate(build(Path(tmp), args.scale, args.seed))
    if args.json:
        print(json.dumps(result, indent=2, default=str))
        return
    print(
        f"ServeGen-derived logs (scale {args.scale}, seed {args.seed}): {result['series']} "
        f"series, {len(result['origins'])} daily origins, selection {result['selection_s']} s"
    )
    print(
        f"{'metric':16s} {'folds':>6s} {'MASE':>7s} {'snaive24':>9s} {'better':>7s} "
        f"{'95% band':>9s} {'<= p95':>7s}"
    )
    for name, s in [*result["by_metric"].items(), ("all", result["overall"])]:
        print(
            f"{name:16s} {s['folds']:6.0f} {s['mase']:7.3f} {s['snaive24_mase']:9.3f} "
            f"{s['improvement_vs_snaive24']:7.1%} {s['band95_coverage']:9.1%} "
            f"{s['p95_coverage']:7.1%}"
        )
    print(
        "candidates (mean fold MASE):",
        {k: v["mase"] for k, v in sorted(result["candidates"].items())},
    )
    print("chosen:", result["chosen"])


if __name__ == "__main__":
    main()
