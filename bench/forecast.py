"""Forecast benchmark: daily selection (backtest of every candidate at 14 daily origins, choice,
final fit) plus a 24-hour forecast for 500 hourly series of 28 days, on this machine.

Series: 7 regions × 8 models × 3 tiers × 3 metrics = 504, generated here with daily and weekly
cycles in each region's local time, growth, AR(1) noise, bursts and a few collection gaps.
Chunks of series run in a process pool (``--workers``); peak memory is the max RSS of the
parent and the workers. The baseline run is the two seasonal-naive candidates alone on the
same series, so the ratio says what model fitting costs over bookkeeping.

    .venv/bin/python bench/forecast.py [--series 504] [--workers 2] [--json]
        [--day-shift dayshift:width=6/pool=all|off]
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from flows.forecasting import process_mapper, settings_from_config
from planner.config import load_config
from planner.forecast.backtest import BacktestSettings
from planner.forecast.dayshift import DayShift
from planner.forecast.models import REGISTRY
from planner.forecast.pipeline import ForecastSettings, forecast, select_models
from planner.forecast.select import summary

TIMEZONES = {
    "r0": "America/New_York",
    "r1": "America/Chicago",
    "r2": "America/Denver",
    "r3": "America/Los_Angeles",
    "r4": "Europe/London",
    "r5": "Europe/Berlin",
    "r6": "Asia/Tokyo",
}


def demand_frame(n_series: int, days: int = 28, seed: int = 1) -> pd.DataFrame:
    """A demand mart (demand_hourly shape) with ``n_series / 3`` region×model×tier series."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2024-05-06", periods=days * 24, freq="h")
    rows = []
    combos = [(r, f"m{m}", t) for r in TIMEZONES for m in range(8) for t in ("IW-F", "IW-N", "NIW")]
    for region, model, tier in combos[: max(1, n_series // 3)]:
        local = hours.tz_localize("UTC").tz_convert(TIMEZONES[region])
        hod, dow = local.hour.to_numpy(), local.dayofweek.to_numpy()
        base = rng.lognormal(3, 1)
        daily = 1 + 0.6 * np.sin(2 * np.pi * (hod - 9) / 24)
        weekly = np.where(dow >= 5, 0.5 if tier != "NIW" else 0.85, 1.0)
        ar = np.zeros(len(hours))
        for i in range(1, len(hours)):
            ar[i] = 0.8 * ar[i - 1] + rng.normal(0, 0.1)
        bursts = np.where(rng.random(len(hours)) < 0.01, rng.uniform(2, 5, len(hours)), 1.0)
        rate = (
            base * daily * weekly * np.exp(ar) * bursts * (1 + 0.004 * np.arange(len(hours)) / 24)
        )
        requests = rng.poisson(rate * 3600 / 1000)
        coverage = np.where(rng.random(len(hours)) < 0.005, 0.0, 1.0)
        rows.append(
            pd.DataFrame(
                {
                    "hour": hours,
                    "region": region,
                    "model": model,
                    "tier": tier,
                    "requests": requests,
                    "input_tokens": requests * 800,
                    "output_tokens": requests * 200,
                    "token_rate": requests * 1000 / 3600.0,
                    "peak_minute_token_rate": requests
                    * 1000
                    / 3600.0
                    * rng.uniform(1.2, 2.0, len(hours)),
                    "coverage": coverage,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def pool_mapper(workers: int):  # type: ignore[no-untyped-def]
    """The product's pool (largest task first, forkserver), as the daily flow runs it."""
    return process_mapper(workers)


def run(
    demand: pd.DataFrame, settings: ForecastSettings, workers: int
) -> tuple[float, dict[str, Any]]:
    as_of = demand["hour"].max() + pd.Timedelta(hours=1)
    started = time.perf_counter()
    selection = select_models(demand, as_of, settings, pool_mapper(workers))
    fc = forecast(demand, selection.fitted, as_of, settings, TIMEZONES)
    wall = time.perf_counter() - started
    return wall, {
        "series": len(selection.fitted),
        "forecast_rows": len(fc),
        "chosen": selection.chosen["forecaster"].value_counts().to_dict(),
        "deployed": {k: round(v, 3) for k, v in summary(selection.deployed).items()},
    }


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=504)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--candidates", default="default", help="'default', 'all' (adds arima) or a list"
    )
    parser.add_argument("--champion", help="the selection's default (default: the config's)")
    parser.add_argument(
        "--day-shift",
        help="the day-shift band on, e.g. 'dayshift:width=6/pool=all' ('off': the band in use; "
        "default: the config's)",
    )
    args = parser.parse_args()
    demand = demand_frame(args.series)
    full = _settings(args.candidates, args.champion)
    if args.day_shift:
        day = None if args.day_shift == "off" else DayShift.parse(args.day_shift)
        full = replace(full, backtest=replace(full.backtest, day_shift=day))
    baseline = replace(
        full, backtest=replace(BacktestSettings(), candidates=("snaive24", "snaive168"))
    )
    base_wall, _ = run(demand, baseline, args.workers)
    # on stderr at once: a run stopped by a time limit still leaves its baseline
    print(f"seasonal-naive-only run: {base_wall:.1f} s", file=sys.stderr, flush=True)
    wall, info = run(demand, full, args.workers)
    out = {
        "series": info["series"],
        "history_days": 28,
        "candidates": list(full.backtest.candidates),
        "champion": full.selection.default,
        "day_shift": str(full.backtest.day_shift),
        "workers": args.workers,
        "wall_s": round(wall, 1),
        "baseline_snaive_only_s": round(base_wall, 1),
        "ratio_to_baseline": round(wall / base_wall, 1),
        "peak_rss_mb": round(peak_rss_mb()),
        "goal": "<= 300 s, <= 4096 MB",
        **info,
    }
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print_table(out)


def _settings(candidates: str, champion: str | None) -> ForecastSettings:
    """The config's forecast settings (candidates and champion as deployed), with the
    candidates (``all``: every registered forecaster) and champion replaced where given."""
    full = settings_from_config(load_config())
    if candidates != "default":
        names = tuple(REGISTRY) if candidates == "all" else tuple(candidates.split(","))
        full = replace(full, backtest=replace(full.backtest, candidates=names))
    if champion:
        full = replace(
            full,
            backtest=replace(full.backtest, keep=(champion,)),
            selection=replace(full.selection, default=champion),
        )
    return full


def print_table(out: dict[str, Any]) -> None:
    print(
        f"forecast benchmark: {out['series']} series × 28 days, {out['workers']} workers, "
        f"candidates {out['candidates']}, champion {out['champion']}"
    )
    print(f"  selection + fit + forecast : {out['wall_s']:7.1f} s  (goal ≤ 300 s)")
    print(
        f"  seasonal-naive-only run    : {out['baseline_snaive_only_s']:7.1f} s  "
        f"(ratio {out['ratio_to_baseline']}x)"
    )
    print(f"  peak RSS                   : {out['peak_rss_mb']:7d} MB (goal ≤ 4096 MB)")
    print(f"  chosen                     : {out['chosen']}")
    print(f"  deployed backtest          : {out['deployed']}")


if __name__ == "__main__":
    main()
