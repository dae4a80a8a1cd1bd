"""Filling idle VM slots with small models (issue #15): the placement move the planning
program's search misses, shared by its primal starts and by the reactive baselines.

A VM type's VMs in a region hold ``used = Σ_m n[m,g] / ipv[m,g]`` VMs' worth of instances,
so ``⌈used⌉ − used`` of a VM is idle (e.g. Bloom-176B's one H100 VM and half a VM of
Llama2-70B leave half an H100 VM, four GPUs, idle). An instance of model m may move from type
g to type h when h is at least as fast for every tier (θ[m,h,k] ≥ θ[m,g,k] ∀k: the capacity
it carries does not shrink) and fits in h's idle slots (1/ipv[m,h] ≤ idle): moving it costs
no VM on h and can empty a VM of g (the small models' floors leave their own A100 VM).

Why the program needs this: its LP relaxation buys fractional VMs, where packing is worth
nothing (half a VM of g is as cheap as half a VM of h), so neither the LP-rounding start
(per-pool rounding up), the greedy start (each model on its own cheapest type) nor the
previous plan (the warm start) packs, and SCIP's search does not find the move in the time
limit: on the demo log a plan forced to pack is cheaper in dollars than the plan found
(docs/evaluation.md, "Where the plan's GPU-hours go").
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from planner.ilp.data import PlanningData

# annotations only: the simulator's policies import this module, and planner.ilp.variables
# imports pyscipopt, which `import flows.cli` must not load (tests/flows/test_cli_imports.py)
if TYPE_CHECKING:
    from planner.ilp.variables import Values

log = logging.getLogger(__name__)
Counts = dict[tuple[str, str], float]  # (model, VM type) -> instances
EPS = 1e-9


def slots_used(
    counts: Mapping[tuple[str, str], float], ipv: Mapping[tuple[str, str], int]
) -> dict[str, float]:
    """VMs' worth of instances per VM type: Σ_m n[m,g] / ipv[m,g]."""
    used: dict[str, float] = {}
    for (m, g), n in counts.items():
        used[g] = used.get(g, 0.0) + n / ipv[(m, g)]
    return used


def vm_cost(
    counts: Counts, ipv: Mapping[tuple[str, str], int], price: Mapping[str, float]
) -> float:
    """$ per hour of the fewest whole VMs holding ``counts``: Σ_g price[g]·⌈used[g]⌉."""
    return sum(price[g] * math.ceil(u - 1e-6) for g, u in slots_used(counts, ipv).items())


def fill_idle(
    counts: Counts,
    m: str,
    g: str,
    amount: float,
    ipv: Mapping[tuple[str, str], int],
    faster: Callable[[str, str, str], bool],
    integer: bool,
) -> float:
    """Move up to ``amount`` instances of m from type g into the idle slots of other types
    at least as fast (``faster(m, g, h)``), never adding a VM there; whole instances when
    ``integer``. Returns how many moved (``counts`` is changed in place)."""
    moved = 0.0
    used = slots_used(counts, ipv)
    for h in sorted(used, key=lambda h: used[h]):
        if h == g or (m, h) not in ipv or not faster(m, g, h):
            continue
        idle = math.ceil(used[h] - 1e-6) - used[h]
        room = idle * ipv[(m, h)] + EPS
        take = min(amount - moved, math.floor(room) if integer else room)
        if take <= EPS:
            continue
        counts[(m, g)] -= take
        counts[(m, h)] = counts.get((m, h), 0.0) + take
        used[h] += take / ipv[(m, h)]
        moved += take
    return moved


def repack(
    counts: Counts,
    ipv: Mapping[tuple[str, str], int],
    price: Mapping[str, float],
    faster: Callable[[str, str, str], bool],
    integer: bool,
) -> Counts:
    """One region-hour's instances with the small models moved into idle slots where that
    empties VMs: pools are tried smallest instance first (fewest GPUs, so they fit the
    slots), each moved as a whole or not at all, and the moves kept only if the whole
    placement costs less (:func:`vm_cost`); the count per model is kept."""
    best = dict(counts)
    trial = dict(counts)
    pools = sorted(
        ((m, g) for (m, g), n in counts.items() if n > EPS), key=lambda mg: 1.0 / ipv[mg]
    )
    for m, g in pools:
        n = trial.get((m, g), 0.0)
        attempt = dict(trial)
        if fill_idle(attempt, m, g, n, ipv, faster, integer) >= n - EPS:
            trial = attempt
            if vm_cost(trial, ipv, price) < vm_cost(best, ipv, price) - 1e-6:
                best = dict(trial)
    return {k: v for k, v in best.items() if v > EPS or k in counts}


def faster_on(data: PlanningData) -> Callable[[str, str, str], bool]:
    """``faster(m, g, h)``: type h serves m at least as fast as g for every tier."""
    tiers = [*data.interactive, *([data.deferrable] if data.deferrable else [])]

    def faster(m: str, g: str, h: str) -> bool:
        return all(data.theta[(m, h, k)] >= data.theta[(m, g, k)] - 1e-9 for k in tiers)

    return faster


def repacked_counts(data: PlanningData, start: Values) -> Values | None:
    """A start's on-demand instance and VM counts (x, y) with :func:`repack` applied in every
    region and hour (whole instances in the committed hours; only onto placements the program
    has), y less the VMs each move empties; spot counts as they were. None if nothing moves."""
    faster = faster_on(data)
    x, y = dict(start.get("x", {})), dict(start.get("y", {}))
    types: dict[tuple[str, str], list[str]] = {}
    for r, m, g in data.placements():
        types.setdefault((r, m), []).append(g)
    cells: dict[tuple[str, int], Counts] = {}
    for (r, m, g, t), n in x.items():
        cells.setdefault((r, t), {})[(m, g)] = n
    changed = False
    for (r, t), counts in cells.items():
        ipv = {(m, h): data.instances_per_vm[(m, h)] for m, _ in counts for h in types[(r, m)]}
        price = {g: data.price[(r, g)] for _, g in ipv}
        new = repack(counts, ipv, price, faster, data.committed(t))
        if vm_cost(new, ipv, price) >= vm_cost(counts, ipv, price) - 1e-6:
            continue
        changed = True
        before, after = slots_used(counts, ipv), slots_used(new, ipv)
        for g, u in before.items():
            freed = math.ceil(u - 1e-6) - math.ceil(after.get(g, 0.0) - 1e-6)
            y[(r, g, t)] = max(0.0, y.get((r, g, t), 0.0) - freed)
        x.update({(r, m, g, t): n for (m, g), n in new.items()})
    if not changed:
        return None
    return {"x": x, "y": y, "xs": dict(start.get("xs", {})), "z": dict(start.get("z", {}))}


def packed_starts(
    data: PlanningData,
    starts: list[tuple[str, Values]],
    time_limit_s: float,
    per_lp: bool = False,
) -> list[tuple[str, Values]]:
    """Each start whose counts :func:`repacked_counts` changes, repacked and completed by the
    LP over every continuous decision with those counts fixed (``rounding.fixed_lp``: routing,
    NIW schedule, model loads, VM additions); a start whose LP fails or runs out of time is
    left out (SCIP keeps whichever incumbent costs least, so this never makes a plan worse).
    ``per_lp``: each LP gets ``time_limit_s`` of its own and nothing reads the clock (as
    ``rounding.lp_rounding_start``)."""
    from planner.ilp.rounding import fixed_lp

    started = time.perf_counter()
    out = []
    for name, start in starts:
        fixed = repacked_counts(data, start)
        left = time_limit_s if per_lp else time_limit_s - (time.perf_counter() - started)
        if fixed is None or left <= 0:
            continue
        solved = fixed_lp(data, fixed, left)
        if solved is None:
            log.info("packing: %s repacked has no completion", name)
            continue
        out.append((f"{name}, repacked", solved[0]))
    return out
