"""Sweep benchmark: `evaluate --sweep` (every family over its dial, plans per quantile, the
points in a process pool) over a replay window, against the single-point evaluation of the
same window (reactive, siloed, LT-I/U/UA on one plan sequence) side by side.

Each run gets a fresh copy of the warehouse (no forecasts or plans left by the other run),
in a fresh process, one after the other. Figures: wall time of each, their ratio, the
sweep's split (demand and references, forecasts, plans, replays), points and plans made.

    .venv/bin/python bench/sweep.py --warehouse .sageserve/warehouse.duckdb \
        [--hours 72] [--end 2024-06-14T00:00] [--time-limit 5] [--workers 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], warehouse: Path) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "wh.duckdb"
        shutil.copy(warehouse, copy)
        cmd = [str(ROOT / ".venv/bin/sageserve"), "--warehouse", str(copy), "evaluate", *args]
        cmd += ["--out", str(Path(tmp) / "out"), "--json"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse", type=Path, default=ROOT / ".sageserve/warehouse.duckdb")
    ap.add_argument("--hours", type=int, default=72)
    ap.add_argument("--end", default="2024-06-14T00:00")
    ap.add_argument("--time-limit", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    common = ["--hours", str(a.hours), "--end", a.end, "--time-limit", str(a.time_limit)]
    single_s, _ = _run([*common, "--policies", "reactive,siloed,lt-i,lt-u,lt-ua"], a.warehouse)
    sweep_s, sweep = _run([*common, "--sweep", "--workers", str(a.workers)], a.warehouse)
    out = {
        "hours": a.hours,
        "time_limit_s": a.time_limit,
        "workers": a.workers,
        "single_evaluation_s": round(single_s, 1),
        "sweep_s": round(sweep_s, 1),
        "ratio": round(sweep_s / single_s, 2),
        "points": sweep["points"],
        "plans": sum(map(len, cast(dict[str, list[str]], sweep["plans"]).values())),
        "sweep_split_s": sweep["seconds"],
    }
    if a.json:
        print(json.dumps(out, indent=1))
        return
    for k, v in out.items():
        print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
