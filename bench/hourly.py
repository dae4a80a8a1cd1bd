"""Hourly-run benchmark: one `hourly-plan` flow run at the SageServe size (3 regions, 4 models,
2 VM types, 3 tiers, 24 h) on the demo warehouse, broken down by step, from the run's own
task runs as the Prefect API recorded them, plus the flow's wall time.

Needs the demo warehouse (`make demo`); works on a copy so the demo's plans stay as they were.

    .venv/bin/python bench/hourly.py [--warehouse .sageserve/warehouse.duckdb] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


async def step_times(flow_run_id: Any) -> dict[str, float]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    out: dict[str, float] = {}
    async with get_client() as client:
        flows = [flow_run_id]
        subflows = await client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id])
            )
        )
        flows += [f.id for f in subflows]
        for fid in flows:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [fid]}))
            for r in runs:
                name = r.name.rsplit("-", 1)[0]
                out[name] = out.get(name, 0.0) + float(r.total_run_time.total_seconds())
        for f in subflows:
            full = await client.read_flow_run(f.id)
            out["forecast-fanout (subflow, wall)"] = float(full.total_run_time.total_seconds())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=ROOT / ".sageserve" / "warehouse.duckdb")
    parser.add_argument("--as-of", default="2024-06-17T00:05:00")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not args.warehouse.exists():
        raise SystemExit(f"no warehouse at {args.warehouse}: run `make demo` first")
    from flows.hourly_plan import hourly_plan  # imported before the clock starts

    with tempfile.TemporaryDirectory() as tmp:
        wh = Path(tmp) / "wh.duckdb"
        shutil.copy(args.warehouse, wh)
        started = time.perf_counter()
        state = hourly_plan(
            inbox=str(Path(tmp) / "inbox"),
            warehouse=str(wh),
            out=str(Path(tmp) / "out"),
            as_of=args.as_of,
            return_state=True,
        )
        wall = time.perf_counter() - started
        result = state.result()
        steps = asyncio.run(step_times(state.state_details.flow_run_id))
    summary = result["summary"]
    out = {
        "flow_wall_s": round(wall, 1),
        "steps_s": {k: round(v, 2) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])},
        "plan_id": result["plan_id"],
        "solver": f"{summary['status']} gap {summary['gap']}",
        "goal_s": 60,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"hourly-plan flow: {out['flow_wall_s']} s wall (goal ≤ 60 s); by step:")
        for name, seconds in out["steps_s"].items():
            print(f"  {name:36s} {seconds:7.2f} s")
        print(f"plan {out['plan_id']}: {out['solver']}")


if __name__ == "__main__":
    main()
