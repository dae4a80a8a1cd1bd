"""Where the plan's GPU-hours go (issue #15, step 1): the clairvoyant fleet
(``planner.sim.bounds.clairvoyant_fleet``: per minute, region and model the fewest whole
instances meeting each interactive tier's SLA target at that minute's true demand, one VM type
per pool, floors kept, NIW packed earliest-deadline-first into the spare; its GPU-hours packed
by the relaxation ``planner.sim.bounds.packed_gpus``, what ``vs_bound`` divides by) with one
cause switched at a time, so each cause's GPU-hours are read as a difference on one window:

* ``unpacked``: each pool on its type in whole VMs (the fleet before issue #15);
* ``repacked every minute``: the same instances placed by the planner's and the reactive
  families' heuristic (``planner.ilp.packing.repack``): a placement that exists, so the
  relaxed bound is at most it (their difference: what the relaxation gives away);
* ``no floors``: the availability floors set to zero;
* ``fractional``: instances not packed into whole VMs (GPUs per instance × instances);
* ``hourly``: each hour held at its busiest minute's fleet (what an hourly plan with perfect
  foresight of the hour's minute profile must buy; no forecast error, no headroom);
* ``hourly, no floors``;
* ``no NIW``: the NIW tier removed (its marginal cost on top of the interactive fleet);
* ``floors alone``: on the clairvoyant fleet's types, on one VM type per region, fractional;
* ``types chosen by GPU-h``: each pool's VM type chosen for GPUs (the sweep's metric) instead
  of dollars (the clairvoyant fleet's and the planner's objective);
* ``--plans``: the GPU-hours a cached plan sequence holds (``bench/levers.py --plans-cache``).

    .venv/bin/python bench/gap.py --warehouse W --hours 24 --end 2024-06-13T00:00 [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.sweep import replay_setup
from planner.config import load_config
from planner.ilp.packing import repack, vm_cost
from planner.sim.bounds import clairvoyant_fleet, vm_gpu_hours
from planner.sim.policies import packing_terms
from planner.sim.sweep import TARGETS, floors

log = logging.getLogger("bench.gap")


def repacked_gpus(p: Any, inst: np.ndarray) -> float:
    """GPUs of the fewest whole VMs holding ``inst`` [r, m, g] when instances may move to a
    type at least as fast for every tier (``p.theta``), the count per (r, m) kept: the
    availability floors of small models fill the slots a large model's VM leaves idle."""
    nr, nm, ng = inst.shape
    total = 0.0
    for r in range(nr):
        choices = []
        for m in range(nm):
            opts = [inst[r, m].copy()]
            for g in range(ng):
                for h in range(ng):
                    if g == h or p.ipv[m, h] <= 0 or (p.theta[m, h] < p.theta[m, g]).any():
                        continue
                    for n in range(1, int(inst[r, m, g]) + 1):
                        o = inst[r, m].copy()
                        o[g] -= n
                        o[h] += n
                        opts.append(o)
            choices.append(opts)
        best = np.inf
        for combo in itertools.product(*choices):
            slots = sum(c / np.where(p.ipv[m] > 0, p.ipv[m], 1.0) for m, c in enumerate(combo))
            best = min(best, float((np.ceil(slots - 1e-9) * p.gpus_per_vm).sum()))
        total += best
    return total


def packed_minutes(p: Any, inst: np.ndarray, types: np.ndarray) -> float:
    """GPU-hours of ``inst`` [T, r, m] (each pool on ``types`` [r, m]) with every minute
    repacked the way the planner and the reactive families now pack
    (``planner.ilp.packing.repack``, priced in GPUs): a placement the clairvoyant fleet can
    reach with the policies' move (the bound, ``packed_gpus``, is at most it)."""
    ipv, faster = packing_terms(p)
    gpus = {g: float(p.gpus_per_vm[j]) for j, g in enumerate(p.vm_types)}
    seen: dict[tuple[float, ...], float] = {}
    total = 0.0
    for row in inst:  # [r, m] in each minute
        for r, counts in enumerate(row):
            key = (float(r), *map(float, counts))
            if key not in seen:
                cell = {
                    (p.models[m], p.vm_types[types[r, m]]): float(n)
                    for m, n in enumerate(counts)
                    if n
                }
                seen[key] = vm_cost(repack(cell, ipv, gpus, faster, integer=True), ipv, gpus)
            total += seen[key]
    return total / 60.0


def _floor_inst(fl: np.ndarray, types: np.ndarray, ng: int) -> np.ndarray:
    out = np.zeros((*fl.shape, ng))
    for (r, m), g in np.ndenumerate(types):
        out[r, m, g] = fl[r, m]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/default.yaml")
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--end", default=None)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plans", nargs="*", default=[], help="plan-target pickles to price")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    cfg = load_config(a.config)
    con = duckdb.connect(a.warehouse, read_only=True)
    end = pd.Timestamp(a.end).to_pydatetime() if a.end else None
    start, stop, p, demand, serving, _, base = replay_setup(con, cfg, a.hours, end)
    rows = causes(p, demand, serving, base, floors(cfg, p))
    for path in a.plans:  # plan targets (bench/levers.py --plans-cache): what the plan holds
        rows |= plan_rows(p, Path(path), base.instances.shape[0])
    out: dict[str, Any] = {"window": [str(start), str(stop)], "gpu_hours": rows}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"window {start} .. {stop}")
        for name, v in rows.items():
            print(f"{name:45s} {v:10,.0f} GPU-h")
    return 0


def causes(p: Any, demand: Any, serving: Any, base: Any, fl: np.ndarray) -> dict[str, float]:
    """GPU-hours of the clairvoyant fleet ``base`` with one cause switched at a time (the
    module docstring's rows, in its order)."""
    free = clairvoyant_fleet(p, demand, np.zeros_like(fl), serving, TARGETS)
    rows: dict[str, float] = {"clairvoyant bound (packing relaxed)": base.gpu_hours}
    rows["clairvoyant, unpacked"] = base.unpacked_gpu_hours
    rows["clairvoyant, repacked every minute"] = packed_minutes(p, base.instances, base.vm_types)
    rows["no floors"] = free.gpu_hours
    gpi = _gpus_per_instance(p, base.vm_types)
    rows["fractional instances"] = float((base.instances * gpi[None]).sum() / 60.0)
    rows["hourly (busiest minute per hour)"] = _hourly(p, base.instances, base.vm_types)
    rows |= _hourly_repacked(p, base, fl)
    rows["hourly, no floors"] = _hourly(p, free.instances, free.vm_types)
    keep = np.arange(len(p.tiers)) != p.deferrable
    no_niw = replace(
        demand,
        requests=demand.requests * keep,
        input_tokens=demand.input_tokens * keep,
        output_tokens=demand.output_tokens * keep,
    )
    rows["no NIW"] = clairvoyant_fleet(p, no_niw, fl, serving, TARGETS).gpu_hours
    rows |= _floors_alone(p, base, fl, gpi)
    # VM type chosen for GPU-hours (the sweep's metric) instead of dollars
    by_gpu = replace(p, price=np.broadcast_to(p.gpus_per_vm[None], p.price.shape).astype(float))
    gclair = clairvoyant_fleet(by_gpu, demand, fl, serving, TARGETS)
    rows["types chosen by GPU-h"] = gclair.gpu_hours
    rows["types by GPU-h, hourly"] = _hourly(p, gclair.instances, gclair.vm_types)
    return rows


def _gpus_per_instance(p: Any, types: np.ndarray) -> np.ndarray:
    """[r, m] GPUs an instance takes on its pool's VM type ``types`` [r, m]."""
    gpi = np.zeros(types.shape)
    for (r, m), g in np.ndenumerate(types):
        gpi[r, m] = p.gpus_per_vm[g] / p.ipv[m, g]
    return gpi


def _busiest(inst: np.ndarray) -> np.ndarray:
    """[hours, r, m]: each whole hour's busiest minute of ``inst`` [T, r, m]."""
    T, nr, nm = inst.shape
    out: np.ndarray = inst[: T - T % 60].reshape(-1, 60, nr, nm).max(axis=1)
    return out


def _hourly(p: Any, inst: np.ndarray, types: np.ndarray) -> float:
    """GPU-hours with each hour held at its busiest minute's fleet."""
    gpus, _ = vm_gpu_hours(p, np.repeat(_busiest(inst), 60, axis=0), types)
    return float(gpus.sum() / 60.0)


def _hourly_repacked(p: Any, base: Any, fl: np.ndarray) -> dict[str, float]:
    """The busiest-minute hours, and the floors alone, repacked across types."""
    T = base.instances.shape[0]
    h = _busiest(base.instances)
    onehot = np.zeros((*h.shape, len(p.vm_types)))
    for (r, m), g in np.ndenumerate(base.vm_types):
        onehot[:, r, m, g] = h[:, r, m]
    rep = sum(repacked_gpus(p, x) for x in onehot)
    floor_inst = onehot[0] * 0 + _floor_inst(fl, base.vm_types, len(p.vm_types))
    return {
        "hourly, repacked": rep * (T / 60.0) / len(onehot),
        "floors alone, repacked": repacked_gpus(p, floor_inst) * T / 60.0,
    }


def _floors_alone(p: Any, base: Any, fl: np.ndarray, gpi: np.ndarray) -> dict[str, float]:
    """The availability floors' GPU-hours on the clairvoyant fleet's types, on one VM type
    per region, and fractional."""
    T, nr, nm = base.instances.shape
    one = min(
        float(vm_gpu_hours(p, fl[None], np.full((nr, nm), g, dtype=np.int64))[0][0])
        for g in range(len(p.vm_types))
        if (p.ipv[:, g] > 0).all()
    )
    return {
        "floors alone, clairvoyant types": base.floor_gpu_hours,
        "floors alone, one VM type per region": one * T / 60.0,
        "floors alone, fractional": float((fl * gpi).sum() * T / 60.0),
    }


def plan_rows(p: Any, path: Path, T: int) -> dict[str, float]:
    """The GPU-hours a cached plan sequence (plan-target pickle) holds, as is and repacked."""
    pt = pickle.loads(path.read_bytes())
    held = sum(float(((t.vms + t.spot_vms) * p.gpus_per_vm[None]).sum()) for t in pt.hourly)
    rep = sum(repacked_gpus(p, t.instances + t.spot_instances) for t in pt.hourly)
    return {
        f"plan held: {path.stem}": held * (T / 60.0) / len(pt.hourly),
        f"plan repacked: {path.stem}": rep * (T / 60.0) / len(pt.hourly),
    }


if __name__ == "__main__":
    raise SystemExit(main())
