"""Forecast accuracy on ServeGen-derived logs (the real-traffic test bed), per metric and lead.

Each log is 10 days of one ServeGen client population turned into request rows, ingested, and
the daily selection run at its end; the deployed choice (chosen at each origin from earlier
folds only, strictly out of sample) is scored per metric at leads 1, 6 and 24 h and pooled over
leads 1-24: MASE against seasonal naive at 24 h and 168 h, scaled pinball loss, 95 % band
coverage, and the number of daily origins each figure rests on.

Tuning and reporting use different clients: the forecasters are tuned on m-mid
(``--logs m-mid:7``); the report logs are m-large with two seeds (different clients pinned to
different regions and tiers). ``--candidates`` runs the selection again with another candidate
list on the same log, side by side (for the before/after of a new candidate).

    .venv/bin/python bench/forecast_accuracy.py [--logs m-large:7,m-large:11] [--scale 0.002]
        [--candidates default,default+gbm] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVEGEN = ROOT.parent / "shared" / "data" / "servegen" / "language"
MODEL_OF = {"m-mid": "llama3.1-8b", "m-large": "llama2-70b"}


def build(
    workdir: Path, scale: float, seed: int, sources: tuple[str, ...] = ("m-mid", "m-large")
) -> Path:
    sageserve = str(Path(sys.executable).with_name("sageserve"))
    logs, wh = workdir / "logs", workdir / "wh.duckdb"
    args = [sageserve, "synth-servegen"]
    for src in sources:
        args += ["--source", str(SERVEGEN / src), "--model", MODEL_OF[src]]
    args += ["--scale", str(scale), "--seed", str(seed), "--out", str(logs)]
    subprocess.run(args, check=True, capture_output=True)
    subprocess.run(
        [sageserve, "--warehouse", str(wh), "ingest", str(logs)], check=True, capture_output=True
    )
    return wh


def evaluate(
    wh: Path, workers: int = 2, candidates: list[str] | None = None
) -> dict[str, Any]:
    import pandas as pd

    from flows.forecasting import run_selection
    from flows.warehouse.connection import connect
    from planner.config import load_config
    from reports.backtest import aggregate

    cfg = load_config()
    if candidates is not None:
        forecast = cfg.forecast.model_copy(update={"candidates": candidates})
        cfg = cfg.model_copy(update={"forecast": forecast})
    with connect(wh) as con:
        end = con.execute("SELECT max(hour) FROM demand_hourly WHERE coverage > 0").fetchone()[0]
        started = time.perf_counter()
        selection = run_selection(con, cfg, pd.Timestamp(end) + pd.Timedelta(hours=1), workers)
        wall = time.perf_counter() - started
    out = aggregate(selection)
    out["selection_s"] = round(wall, 1)
    out["series"] = len(selection.fitted)
    out["candidates_run"] = list(cfg.forecast.candidates)
    return out


def _candidates(spec: str) -> list[str] | None:
    from planner.config import load_config

    default = list(load_config().forecast.candidates)
    if spec == "default":
        return None
    names = spec.split("+")
    out = default if names[0] == "default" else [names[0]]
    return out + [n for n in names[1:] if n not in out]


def print_table(label: str, result: dict[str, Any]) -> None:
    deployed_origins = len(result["origins"]) - 1
    print(
        f"\n== {label}: {result['series']} series, {len(result['origins'])} daily origins "
        f"({result['origins'][0]} .. {result['origins'][-1]}), the deployed choice scored at the "
        f"{deployed_origins} after the first; selection {result['selection_s']} s; "
        f"candidates {result['candidates_run']}"
    )
    print(
        f"{'metric':16s} {'lead':>5s} {'points':>6s} {'orig':>4s} {'MASE':>6s} {'sn24':>6s} "
        f"{'vs sn24':>8s} {'sn168':>6s} {'vs sn168':>8s} {'pinball':>7s} {'95% band':>8s}"
    )
    for metric, leads in result["by_horizon"].items():
        for lead, s in leads.items():
            if not s:
                continue
            print(
                f"{metric:16s} {lead:>5s} {s['points']:6.0f} {s['origins']:4.0f} "
                f"{s['mase']:6.3f} {s['snaive24_mase']:6.3f} "
                f"{s['improvement_vs_snaive24']:8.1%} {s.get('snaive168_mase', float('nan')):6.3f} "
                f"{s.get('improvement_vs_snaive168', float('nan')):8.1%} "
                f"{s['scaled_pinball']:7.3f} {s['band95_coverage']:8.1%}"
            )
    print("overall (fold means, as `sageserve backtest`):", {
        k: round(v, 4) for k, v in result["overall"].items()
    })
    print("chosen:", result.get("chosen"))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logs", default="m-large:7,m-large:11", help="source:seed,...")
    parser.add_argument("--scale", type=float, default=0.002)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--candidates",
        default="default",
        help="comma-separated runs; each 'default', 'default+gbm' or 'a+b+c'",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    for log_spec in args.logs.split(","):
        source, seed = log_spec.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            wh = build(Path(tmp), args.scale, int(seed), (source,))
            for cand in args.candidates.split(","):
                label = f"{source} seed {seed} scale {args.scale}, candidates {cand}"
                results[label] = evaluate(wh, args.workers, _candidates(cand))
                if not args.json:
                    print_table(label, results[label])
                    sys.stdout.flush()
    if args.json:
        print(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
