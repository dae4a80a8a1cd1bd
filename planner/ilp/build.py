"""Building the SCIP model: a flat, ordered list of variable and constraint families."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyscipopt import Model

from planner.ilp import constraints as c
from planner.ilp import cuts
from planner.ilp.data import PlanningData
from planner.ilp.objective import set_objective
from planner.ilp.variables import Vars, add_variables


@dataclass
class BuiltModel:
    model: Model
    vars: Vars
    data: PlanningData
    constraints: dict[str, int] = field(default_factory=dict)
    build_seconds: float = 0.0


def create_model(data: PlanningData, relax: bool = False, valid_cuts: bool = True) -> BuiltModel:
    """The planning program for ``data`` (``relax``: LP relaxation, for bounds).

    ``valid_cuts`` adds the valid inequalities of :mod:`planner.ilp.cuts`: they remove no
    integer plan, only fractional ones, so the optimum is the same and its bound tighter
    (``False`` gives the plain relaxation, e.g. to measure what the cuts add)."""
    started = time.perf_counter()
    model = Model("sageserve-plan")
    model.hideOutput()
    v = add_variables(model, data, relax=relax)
    families = {
        "demand_cover": c.add_demand_cover(model, data, v),
        "interactive_assign": c.add_interactive_assignment(model, data, v),
        "capacity": c.add_serving_capacity(model, data, v),
        "trough_filling": c.add_trough_filling(model, data, v),
        "vm_packing": c.add_vm_packing(model, data, v),
        "quota": c.add_quota(model, data, v),
        "vm_lead_time": c.add_vm_lead_time(model, data, v),
        "model_load_lead_time": c.add_model_load_lead_time(model, data, v),
        "niw_backlog": c.add_niw_backlog(model, data, v),
        "niw_deadline": c.add_niw_deadline(model, data, v),
        "availability": c.add_availability(model, data, v),
        "stability": c.add_stability(model, data, v),
    }
    if valid_cuts:
        families["vm_rounding"] = cuts.add_region_vm_rounding(model, data, v)
        families["vm_rounding_home"] = cuts.add_home_vm_rounding(model, data, v)
        families["instance_rounding"] = cuts.add_instance_rounding(model, data, v)
    set_objective(model, data, v)
    return BuiltModel(model, v, data, families, time.perf_counter() - started)
