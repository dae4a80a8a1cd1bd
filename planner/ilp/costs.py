"""A plan's dollars per hour and component, evaluated from the objective's own money terms
(planner.ilp.objective.money_terms) over the solution's values: VM counts as the plan runs them
(rounded), penalties excluded."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from planner.ilp.data import PlanningData
from planner.ilp.objective import money_terms
from planner.ilp.plan_tables import PLAN_TABLES
from planner.ilp.variables import FAMILIES, Values

MONEY_FAMILIES = ("y", "z", "ay", "az", "u", "us")  # every family money_terms reads
# the integer families, charged as the plan runs them (rounded)
ROUNDED = tuple(f for f in MONEY_FAMILIES if FAMILIES[f].integer == "always")


def cost_frame(data: PlanningData, vals: Values, hour: dict[int, datetime]) -> pd.DataFrame:
    """$ per hour and component (the objective's money terms; penalties excluded)."""
    records = []
    for t in data.T:
        at_t = {
            fam: {
                k: float(round(x)) if fam in ROUNDED else x
                for k, x in vals.get(fam, {}).items()
                if k[-1] == t
            }
            for fam in MONEY_FAMILIES
        }
        terms = money_terms(data, at_t, sum)
        records += [(hour[t], c, float(d)) for c, d in sorted(terms.items()) if abs(d) > 1e-9]
    return PLAN_TABLES["costs"].frame(records)
