"""Why the plan looks as it does: per region, model and hour, the load on the instances, the
headroom left, and which constraint binds.

    binding = capacity       the instances run at their throughput limit (load ≥ 99.9 %)
              quota          the region's VMs of a type are at quota (y + z = Q)
              lead_time      demand is unmet while VMs or loads could not start in time
              availability   only the minimum instances run (demand below one instance)
              none           slack everywhere (e.g. kept to avoid churn before a peak)
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from planner.ilp.data import PlanningData
from planner.ilp.frames import rows
from planner.ilp.plan import Plan

# One line per binding family, for operators (explain tables, plan pages).
BINDING_MEANING = {
    "capacity": "instances run at their throughput limit; more demand needs more instances",
    "quota": "the region's VMs of a type are at quota; more demand is routed away or unmet",
    "lead_time": "demand is unmet because new VMs or model loads cannot be ready in time",
    "availability": "only the minimum instances for availability run; demand is below that",
    "none": "slack everywhere; capacity is kept (e.g. to avoid churn before a peak)",
}


def explain(plan: Plan, data: PlanningData) -> pd.DataFrame:
    t_of = {h: t for t, h in enumerate(data.hours, start=1)}
    load: dict[tuple[str, str, object], float] = defaultdict(float)
    for a in rows(plan.assignments):
        load[(a.region, a.model, a.hour)] += (
            a.tokens_per_s / data.theta[(a.model, a.vm_type, a.tier)]
        )
    inst = plan.instances.assign(n=plan.instances["on_demand"] + plan.instances["spot"])
    have = inst.groupby(["region", "model", "hour"])["n"].sum()
    vms = plan.vms.assign(n=plan.vms["on_demand"] + plan.vms["spot"])
    at_quota = {
        (v.region, v.hour) for v in rows(vms) if v.n >= data.quota.get((v.region, v.vm_type), 0) > 0
    }
    unmet = plan.unmet.groupby(["region", "model", "hour"])["tokens_per_s"].sum()
    records = []
    for r, m in sorted({(r, m) for r, m, _ in data.placements()}):
        for h in data.hours:
            n = float(have.get((r, m, h), 0.0))
            used = load.get((r, m, h), 0.0)
            util = used / n if n else (1.0 if used > 0 else 0.0)
            short = float(unmet.get((r, m, h), 0.0))
            t = t_of[h]
            blocked = not any(
                data.can_add_vm(g, t) for g in data.vm_types if (m, g) in data.instances_per_vm
            )
            if short > 0 and (r, h) in at_quota:
                binding = "quota"
            elif short > 0 and blocked:
                binding = "lead_time"
            elif util >= 0.999:
                binding = "capacity"
            elif 0 < n <= data.min_instances.get(m, 0):
                binding = "availability"
            else:
                binding = "none"
            records.append((h, r, m, n, used, util, 1.0 - util, short, binding))
    return pd.DataFrame(
        records,
        columns=[
            "hour",
            "region",
            "model",
            "instances",
            "load_instances",
            "utilisation",
            "headroom",
            "unmet_tokens_per_s",
            "binding",
        ],
    )
