"""The fallback when SCIP has no incumbent at its time limit: a greedy plan, flagged as such.

Each region serves its own interactive demand on the model's cheapest VM type there
(``PlanningData.cheapest_vm_type``, planner.fleet_index; no routing), sized to the demand
and the availability minimum and capped by quota; VMs are not added inside their lead time
(growth then waits); a started instance loses its load time; NIW is served in the hour it
arrives on whatever capacity is left, else it queues; what does not fit is unmet. Cheap and
always feasible. Its values use the solver's variable families, so the same extraction and
verifier apply.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from planner.ilp.data import PlanningData

Values = dict[str, dict[tuple[Any, ...], float]]
RMG = tuple[str, str, str]


def greedy_values(data: PlanningData) -> Values:
    vals: Values = defaultdict(dict)
    placements = set(data.placements())
    best = {(r, m): data.cheapest_vm_type[(r, m)] for r, m, _g in data.placements()}
    prev_x: dict[RMG, int] = dict(data.state.instances)
    prev_y: dict[tuple[str, str], int] = dict(data.state.vms)
    backlog = dict(data.state.niw_backlog)
    for t in data.T:
        x: dict[RMG, int] = {k: 0 for k in prev_x if k in placements}
        for (r, m), g in best.items():
            need = sum(
                data.demand.get((r, m, k, t), 0.0) / data.theta[(m, g, k)] for k in data.interactive
            )
            # a start loses its load time: size up so the rest of the hour covers the need
            grow = max(0.0, need - prev_x.get((r, m, g), 0))
            need += grow * data.load_loss(m, g, t) / max(1e-9, 1 - data.load_loss(m, g, t))
            x[(r, m, g)] = max(math.ceil(need - 1e-9), data.min_instances.get(m, 0))
        y: dict[tuple[str, str], int] = {}
        for (r, g), quota in data.quota.items():
            if quota <= 0:
                continue
            cap = quota if data.can_add_vm(g, t) else min(quota, prev_y.get((r, g), 0))
            keys = [k for k in x if k[0] == r and k[2] == g]
            used = sum(x[k] / data.instances_per_vm[(k[1], g)] for k in keys)
            while used > cap + 1e-9:
                biggest = max(keys, key=lambda k: x[k])
                x[biggest] -= 1
                used -= 1 / data.instances_per_vm[(biggest[1], g)]
            y[(r, g)] = math.ceil(used - 1e-9)
        starts = {k: max(0, n - prev_x.get(k, 0)) for k, n in x.items()}
        _serve(data, t, x, starts, backlog, vals)
        for rmg, n in x.items():
            vals["x"][(*rmg, t)] = n
            vals["u"][(*rmg, t)] = starts[rmg]
        for rg, n in y.items():
            vals["y"][(*rg, t)] = n
            vals["ay"][(*rg, t)] = max(0, n - prev_y.get(rg, 0))
            vals["ry"][(*rg, t)] = max(0, prev_y.get(rg, 0) - n)
        prev_x, prev_y = x, y
    return dict(vals)


def _serve(
    data: PlanningData,
    t: int,
    x: dict[RMG, int],
    starts: dict[RMG, int],
    backlog: dict[str, float],
    vals: Values,
) -> None:
    """Serve local interactive demand (IW-F first), then NIW on what is left; rest unmet."""
    spare = {k: n - starts[k] * data.load_loss(k[1], k[2], t) for k, n in x.items()}
    for k in data.interactive:
        for (r, m, kk, tt), d in sorted(data.demand.items()):
            if tt != t or kk != k:
                continue
            left = d
            if (r, m) in data.offered:
                for (rr, mm, g), free in spare.items():
                    if (rr, mm) != (r, m) or free <= 1e-12 or left <= 0:
                        continue
                    take = min(left, free * data.theta[(m, g, k)])
                    spare[(rr, mm, g)] -= take / data.theta[(m, g, k)]
                    vals["w"][(r, m, g, k, t)] = vals["w"].get((r, m, g, k, t), 0.0) + take
                    left -= take
                vals["f"][(r, r, m, k, t)] = d - left
            vals["e"][(r, m, k, t)] = left
    niw = data.deferrable
    if niw is None:
        return
    for m in data.models:
        queue = backlog.get(m, 0.0) + data.niw_arrivals.get((m, t), 0.0)
        if queue <= 0 and m not in data.state.niw_backlog:
            continue
        for (r, mm, g), free in spare.items():
            if mm != m or free <= 1e-12 or queue <= 0:
                continue
            take = min(queue, free * data.theta[(m, g, niw)])
            spare[(r, mm, g)] -= take / data.theta[(m, g, niw)]
            vals["v"][(r, m, g, t)] = take
            queue -= take
        backlog[m] = queue
        vals["b"][(m, t)] = queue
        vals["en"][(m, t)] = max(0.0, queue - data.niw_window(m, t))
