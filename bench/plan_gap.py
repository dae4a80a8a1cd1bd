"""Where one replayed point holds more than the clairvoyant fleet (issue #15, ServeGen track):
per region and model, and per hour, the GPU-hours of instances of

* ``clairvoyant``: the clairvoyant fleet (``planner.sim.bounds``), every minute at its true
  demand with no lead time;
* ``clairvoyant hourly max``: each hour held at that fleet's busiest minute (what an hourly
  hold needs with perfect foresight of the hour);
* ``plan floor``: the instances the plan sequence sets for each hour (``--plans``; none for a
  baseline point);
* ``replay``: the mean instances serving in the replay of ``--point`` (the floor and what
  the point's layer adds above it, or a baseline's pools),

and the tiers' misses (requests late or dropped) in the same cells. Instances are priced at
the GPUs an instance occupies on its pool's clairvoyant VM type (the models of the ServeGen
config take as many GPUs on either type), so the columns add up; the replay's metered total
(whole VMs, idle slots included) is printed beside.

    .venv/bin/python bench/plan_gap.py --config configs/servegen.yaml --warehouse W \
        --end 2024-06-13T06:00 --plans DIR/...-q0.9-a0.99.pkl \
        --point 'plan:{"quantile": 0.9, "mode": "lt-r", "target": 0.2, "niw_cap": 0.5}'
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.sweep import replay_setup
from planner.config import load_config
from planner.sim.fluid import simulate
from planner.sim.sweep import Point, build_policy

log = logging.getLogger("bench.plan_gap")


def cells(p: Any, clair: Any, result: Any, floor: np.ndarray | None) -> dict[str, np.ndarray]:
    """[H, r, m] GPU-hours per hour and pool of each column of the module docstring."""
    T, nr, nm = clair.instances.shape
    H = T // 60
    gpi = np.zeros((nr, nm))
    for (r, m), g in np.ndenumerate(clair.vm_types):
        gpi[r, m] = p.gpus_per_vm[g] / p.ipv[m, g]
    hours = clair.instances[: H * 60].reshape(H, 60, nr, nm)
    # the replay's hourly instances come in (hour, region, model) order
    replay = result.instances["instances"].to_numpy().reshape(-1, nr, nm)[:H]
    out = {
        "clairvoyant": hours.mean(axis=1) * gpi,
        "clairvoyant hourly max": hours.max(axis=1) * gpi,
        "replay": replay * gpi,
    }
    if floor is not None:
        out["plan floor"] = floor[:H] * gpi
    return out


def report(
    p: Any, start: pd.Timestamp, clair: Any, result: Any, cols: dict[str, np.ndarray]
) -> dict[str, Any]:
    """GPU-hours and attainment, and per pool and per hour each column of ``cols`` and each
    interactive tier's misses."""
    missed = {k: o.missed for k, o in result.tiers.items() if k != p.tiers[p.deferrable]}
    H = next(iter(cols.values())).shape[0]
    miss_h = {k: v[: H * 60].reshape(H, 60, *v.shape[1:]).sum(axis=1) for k, v in missed.items()}
    pools = [(r, m) for r in range(len(p.regions)) for m in range(len(p.models))]
    return {
        "metered_gpu_hours": round(result.gpu_hours, 1),
        "bound_gpu_hours": round(clair.gpu_hours, 1),
        "attainment": {k: round(o.sla_attainment, 5) for k, o in result.tiers.items()},
        "pools": {
            f"{p.regions[r]}/{p.models[m]}": {
                **{c: round(float(v[:, r, m].sum()), 1) for c, v in cols.items()},
                **{f"{k} missed": round(float(v[:, r, m].sum())) for k, v in miss_h.items()},
            }
            for r, m in pools
        },
        "hours": {
            str(start + pd.Timedelta(hours=h))[5:16]: {
                **{c: round(float(v[h].sum()), 1) for c, v in cols.items()},
                **{f"{k} missed": round(float(v[h].sum())) for k, v in miss_h.items()},
            }
            for h in range(H)
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/servegen.yaml")
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--end", default=None)
    ap.add_argument("--plans", default=None, help="a plan-target pickle (bench/levers.py cache)")
    ap.add_argument("--point", required=True, help="FAMILY:{json params}, as a sweep row's")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    cfg = load_config(a.config)
    con = duckdb.connect(a.warehouse, read_only=True)
    end = pd.Timestamp(a.end).to_pydatetime() if a.end else None
    start, stop, p, demand, serving, _, clair = replay_setup(con, cfg, a.hours, end)
    con.close()
    family, params = a.point.split(":", 1)
    point = Point(family, json.loads(params))
    plans, floor = {}, None
    if a.plans:
        seq = pickle.loads(Path(a.plans).read_bytes())
        plans = {float(point.params.get("quantile", 0.5)): seq}
        floor = np.stack([(t.instances + t.spot_instances).sum(axis=2) for t in seq.hourly])
    result = simulate(p, demand, build_policy(point, p, demand, plans), serving=serving)
    out = {"window": [str(start), str(stop)], "point": point.label}
    out |= report(p, start, clair, result, cells(p, clair, result, floor))
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        show(out)
    return 0


def show(out: dict[str, Any]) -> None:
    """The report as two tables, per pool and per hour."""
    print(f"window {out['window'][0]} .. {out['window'][1]}; {out['point']}")
    print(f"metered {out['metered_gpu_hours']:,.0f} GPU-h, bound {out['bound_gpu_hours']:,.0f}")
    print(f"attainment {out['attainment']}")
    for title in ("pools", "hours"):
        head = list(next(iter(out[title].values())))
        print(f"\n{title[:-1]:24s}" + "".join(f"{c[:13]:>14s}" for c in head))
        for key, row in out[title].items():
            print(f"{key:24s}" + "".join(f"{v:14,.0f}" for v in row.values()))
        total = {c: sum(row[c] for row in out[title].values()) for c in head}
        print(f"{'total':24s}" + "".join(f"{v:14,.0f}" for v in total.values()))


if __name__ == "__main__":
    raise SystemExit(main())
