"""Sweep benchmark: `evaluate --sweep` (every family over its dial, plans per quantile, the
points in a process pool) over a replay window, against a baseline run side by side.

Baselines (``--baseline``):

* ``single``: the single-point evaluation of the same window (reactive, siloed, LT-I/U/UA on
  one plan sequence);
* ``sweep:PATH``: the same sweep run by another checkout's ``sageserve`` executable (e.g.
  main's ``.venv/bin/sageserve``: before and after a change to the sweep, side by side);
* ``none``: the sweep alone (a window too long to run twice in one turn on a shared machine).

Each run gets a fresh copy of the warehouse (no forecasts or plans left by the other run), in a
fresh process, one after the other. Forecasts missing at the window's hours are made in the
run, as the sweep does on a warehouse the hourly job has not filled: pick a window the
warehouse has no forecasts for to count them. Figures: wall time of each, their ratio, the
sweep's split (set-up, forecasts, plans, replays), points and plans made, and
``projected_s``: the wall time projected to ``--project-hours`` replayed hours, linearly
(every part of the sweep is per replayed hour: a forecast and a plan per quantile per hour,
a replay minute per point; the daily model selection runs once per 24 h and is counted once
per measured window, so a window shorter than 24 h over-projects it).

    .venv/bin/python bench/sweep.py --config configs/servegen.yaml \\
        --warehouse W.duckdb --hours 12 --end 2024-06-12T06:00 \\
        [--baseline single | --baseline sweep:/work/main/.venv/bin/sageserve] \\
        [--time-limit S] [--workers 2] [--project-hours 72] [--keep DIR] [--json]
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
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]


def _run(
    exe: str, args: list[str], warehouse: Path, config: Path, keep: Path | None = None
) -> tuple[float, dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "wh.duckdb"
        shutil.copy(warehouse, copy)
        cmd = [exe, "--config", str(config), "--warehouse", str(copy), "evaluate", *args]
        cmd += ["--out", str(Path(tmp) / "out"), "--json"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
        if keep is not None and done.returncode == 0:
            shutil.copytree(Path(tmp) / "out", keep, dirs_exist_ok=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--warehouse", type=Path, default=ROOT / ".sageserve/warehouse.duckdb")
    ap.add_argument("--config", type=Path, default=ROOT / "configs/default.yaml")
    ap.add_argument("--hours", type=int, default=72)
    ap.add_argument("--end", default="2024-06-14T00:00")
    ap.add_argument("--time-limit", type=float, default=None, help="default: the config's")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--quantiles", default=None, help="default: the sweep's")
    ap.add_argument("--baseline", default="single", help="none | single | sweep:PATH-TO-SAGESERVE")
    ap.add_argument("--project-hours", type=int, default=72)
    ap.add_argument("--keep", type=Path, default=None, help="copy the sweep's outputs here")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    exe = str(ROOT / ".venv/bin/sageserve")
    config = a.config.resolve()
    common = ["--hours", str(a.hours), "--end", a.end]
    common += ["--time-limit", str(a.time_limit)] if a.time_limit else []
    sweep_args = [*common, "--sweep", "--workers", str(a.workers)]
    sweep_args += ["--quantiles", a.quantiles] if a.quantiles else []
    base_s, base = _baseline(a, exe, common, sweep_args, config)
    sweep_s, sweep = _run(exe, sweep_args, a.warehouse, config, a.keep)
    out = _summary(a, base_s, sweep_s, sweep)
    if a.baseline.startswith("sweep:"):
        out |= _compared(base, sweep)
    if a.json:
        print(json.dumps(out, indent=1))
        return
    for k, v in out.items():
        print(f"{k:>18}: {v}")


def _baseline(
    a: argparse.Namespace, exe: str, common: list[str], sweep_args: list[str], config: Path
) -> tuple[float, dict[str, Any]]:
    """The ``--baseline`` run: none, the single-plan policies, or another tree's sweep."""
    if a.baseline == "none":
        return float("nan"), {}
    if a.baseline == "single":
        base_args = [*common, "--policies", "reactive,siloed,lt-i,lt-u,lt-ua"]
        return _run(exe, base_args, a.warehouse, config)
    if a.baseline.startswith("sweep:"):
        return _run(a.baseline.removeprefix("sweep:"), sweep_args, a.warehouse, config)
    sys.exit(f"--baseline: none, single or sweep:PATH, got {a.baseline!r}")


def _summary(
    a: argparse.Namespace, base_s: float, sweep_s: float, sweep: dict[str, Any]
) -> dict[str, Any]:
    return {
        "config": str(a.config),
        "window": sweep["window"],
        "hours": a.hours,
        "time_limit_s": a.time_limit or "config",
        "workers": a.workers,
        "baseline": a.baseline,
        "baseline_s": round(base_s, 1),
        "sweep_s": round(sweep_s, 1),
        "ratio": round(sweep_s / base_s, 3),
        "points": sweep["points"],
        "plans": sum(map(len, cast(dict[str, list[str]], sweep["plans"]).values())),
        "sweep_split_s": sweep["seconds"],
        "project_hours": a.project_hours,
        "projected_s": round(sweep_s * a.project_hours / a.hours, 0),
    }


def _compared(base: dict[str, Any], sweep: dict[str, Any]) -> dict[str, Any]:
    """Against another tree's sweep on the same window, config and seed: the points that
    need no plan must replay identically (plans may differ: SCIP stops at a wall-clock
    limit on a shared machine)."""

    def planless(report: dict[str, Any]) -> list[dict[str, Any]]:
        return sorted(
            (r for r in report["results"] if r["family"] != "plan"), key=lambda r: r["policy"]
        )

    return {
        "baseline_split_s": base["seconds"],
        "same_planless_rows": planless(base) == planless(sweep),
        "same_frontier": base["frontier"] == sweep["frontier"],
    }


if __name__ == "__main__":
    main()
