"""Reading a solution back as a :class:`~planner.ilp.plan.Plan`: the solution's values per
variable family (planner.ilp.variables.read_back, or the greedy plan's) become the plan's
tables, its actions (planner.ilp.actions) and its costs (planner.ilp.costs), and the plan gets
its content id."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import datetime
from typing import Any

import pandas as pd

from planner.ilp.actions import derive_actions
from planner.ilp.costs import cost_frame
from planner.ilp.data import PlanningData
from planner.ilp.plan import Plan, SolverFacts
from planner.ilp.plan_tables import PLAN_TABLES
from planner.ilp.variables import DUST, FAMILIES, Values

Hours = dict[int, datetime]


def plan_id(data: PlanningData, frames: dict[str, pd.DataFrame], solver: SolverFacts) -> str:
    """The plan's id: its first hour and a digest of its content (the hours it covers, when and
    from which forecast and config it was made, whether it is a fallback, and every table), so
    the same plan always has the same id and a plan whose content differs in any row has
    another. Timing facts (solve seconds) are not content."""
    digest = hashlib.sha256()
    head = (
        f"{data.config_hash}|{data.as_of.isoformat()}|{data.start.isoformat()}|"
        f"{len(data.hours)}|{data.forecast_origin}|{solver.status}|{solver.fallback}"
    )
    digest.update(head.encode())
    for name in sorted(frames):
        digest.update(f"|{name}|".encode())
        digest.update(frames[name].to_csv(index=False, float_format="%.9g").encode())
    return f"plan-{data.start:%Y%m%dT%H%M}-{digest.hexdigest()[:12]}"


def from_values(
    data: PlanningData, values: Values, solver: SolverFacts, notes: tuple[str, ...] = ()
) -> Plan:
    """The Plan of a solution (integers rounded; values under ``DUST`` model units, tiny
    negatives included, set to 0 first, so every table and every total reads the same
    values: a routing row's weights sum to 1, its NIW shares are the assignments')."""
    hour = {t: data.hours[t - 1] for t in data.T}
    vals = {fam: _snapped(fam, d) for fam, d in values.items()}
    vms = _vms(vals, hour)
    instances = _instances(data, vals, hour)
    frames = {
        "vms": vms,
        "instances": instances,
        "assignments": _assignments(data, vals, hour),
        "routing": _routing(data, vals, hour),
        "niw": _niw(data, vals, hour),
        "actions": derive_actions(data, vms, instances),
        "costs": cost_frame(data, vals, hour),
        "unmet": PLAN_TABLES["unmet"].frame(
            (hour[t], r, m, k, e)
            for (r, m, k, t), e in sorted(vals.get("e", {}).items())
            if e > 0.0
        ),
    }
    return Plan(
        plan_id=plan_id(data, frames, solver),
        as_of=data.as_of,
        start=data.start,
        hours=data.hours,
        forecast_origin=data.forecast_origin,
        solver=solver,
        notes=notes,
        **frames,
    )


def _snapped(family: str, values: dict[Any, float]) -> dict[Any, float]:
    """A family's values with those under ``DUST`` (in its model unit) set to 0."""
    dust = DUST * (FAMILIES[family].scale if family in FAMILIES else 1.0)
    return {k: v if v >= dust else 0.0 for k, v in ((k, float(v)) for k, v in values.items())}


def _vms(vals: Values, hour: Hours) -> pd.DataFrame:
    counts: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    for (r, g, t), y in vals.get("y", {}).items():
        counts[(t, r, g)][0] = round(y)
    for (r, g, t), z in vals.get("z", {}).items():
        counts[(t, r, g)][1] = round(z)
    return PLAN_TABLES["vms"].frame(
        (hour[t], r, g, a, b) for (t, r, g), (a, b) in sorted(counts.items())
    )


def _instances(data: PlanningData, vals: Values, hour: Hours) -> pd.DataFrame:
    def count(x: float, t: int) -> float:
        # committed hours hold integers; later hours instance capacity
        return float(round(x)) if data.committed(t) else x

    counts: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for (r, m, g, t), x in vals.get("x", {}).items():
        counts[(t, r, m, g)][0] = count(x, t)
    for (r, m, g, t), x in vals.get("xs", {}).items():
        counts[(t, r, m, g)][1] = count(x, t)
    return PLAN_TABLES["instances"].frame(
        (hour[t], r, m, g, a, b, data.committed(t))
        for (t, r, m, g), (a, b) in sorted(counts.items())
    )


def _assignments(data: PlanningData, vals: Values, hour: Hours) -> pd.DataFrame:
    records = [
        (hour[t], r, m, g, k, w, False)
        for (r, m, g, k, t), w in vals.get("w", {}).items()
        if w > 0.0
    ]
    niw = data.deferrable or "NIW"
    for family, spot in (("v", False), ("vs", True)):
        records += [
            (hour[t], r, m, g, niw, v, spot)
            for (r, m, g, t), v in vals.get(family, {}).items()
            if v > 0.0
        ]
    return PLAN_TABLES["assignments"].frame(
        sorted(records, key=lambda rec: (*(str(part) for part in rec[:5]), str(rec[-1])))
    )


def _routing(data: PlanningData, vals: Values, hour: Hours) -> pd.DataFrame:
    """Fractions per (source region, model, tier, hour) → serving region, summing to 1 over
    the served part. Sources with no served demand keep their traffic home (weight 1)."""
    records = _interactive_routing(data, vals, hour)
    if data.deferrable:
        records += _niw_routing(data, data.deferrable, vals, hour)
    return PLAN_TABLES["routing"].frame(records)


def _interactive_routing(data: PlanningData, vals: Values, hour: Hours) -> list[tuple[Any, ...]]:
    flows: dict[tuple[Any, ...], dict[str, float]] = defaultdict(dict)
    for (r0, r, m, k, t), f in vals.get("f", {}).items():
        flows[(t, r0, m, k)][r] = f
    records = []
    for t in data.T:
        for r0 in data.regions:
            for m in data.models:
                if (r0, m) not in data.offered:
                    continue
                for k in data.interactive:
                    out = flows.get((t, r0, m, k), {})
                    total = sum(out.values())
                    if total <= 0.0:
                        records.append((hour[t], r0, m, k, r0, 1.0, 0.0))
                        continue
                    for r, f in sorted(out.items()):
                        if f > 0.0:
                            records.append((hour[t], r0, m, k, r, f / total, f))
    return records


def _niw_routing(data: PlanningData, niw: str, vals: Values, hour: Hours) -> list[tuple[Any, ...]]:
    """NIW goes where the plan serves it: each source's share of a region is the region's
    share of the hour's NIW service of the model."""
    served: dict[tuple[Any, ...], float] = defaultdict(float)
    for (r, m, _g, t), v in [*vals.get("v", {}).items(), *vals.get("vs", {}).items()]:
        served[(t, m, r)] += v
    records = []
    for t in data.T:
        for m in data.models:
            total = sum(served[(t, m, r)] for r in data.regions)
            for r0 in data.regions:
                if (r0, m) not in data.offered:
                    continue
                if total <= 0.0:
                    records.append((hour[t], r0, m, niw, r0, 1.0, 0.0))
                    continue
                for r in data.regions:
                    if served[(t, m, r)] > 0.0:
                        records.append((hour[t], r0, m, niw, r, served[(t, m, r)] / total, 0.0))
    return records


def _niw(data: PlanningData, vals: Values, hour: Hours) -> pd.DataFrame:
    served: dict[tuple[Any, ...], float] = defaultdict(float)
    for (_r, m, _g, t), v in [*vals.get("v", {}).items(), *vals.get("vs", {}).items()]:
        served[(m, t)] += v
    late = vals.get("en", {})
    return PLAN_TABLES["niw"].frame(
        (hour[t], m, data.niw_arrivals.get((m, t), 0.0), served[(m, t)], b, late.get((m, t), 0.0))
        for (m, t), b in sorted(vals.get("b", {}).items())
    )
