"""The objective: what a plan costs, in $ over the horizon.

    Σ_t Σ_{r,g} c[r,g]·y + c_s[r,g]·z                          VM-hours (on-demand, spot)
  + Σ c[r,g]·(L[g]/60)·ay + c_s·(L/60)·az                       paying for VMs while they provision
  + Σ c[r,g]·λ[m,g,t]/ipv[m,g]·u + c_s·λ/ipv·us                GPU time spent loading models
  + κ·Σ (ay + ry + az + rz)                                     churn
  + λ·Σ lat(r0,r)·f[r0,r,m,k,t]                                 routing latency
  + Σ P_k·e + P_NIW·Σ en                                        unmet / late demand
  + P_avail·Σ sa                                                availability shortfall
  + V_NIW·Σ_m b[m,H]                                            backlog left at the horizon

V_NIW, the value of a unit of backlog carried past the horizon, is the cheapest cost of serving
it later (min over placements of price ÷ (ipv·θ_NIW)); without it, deferring past the horizon
would look free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

from pyscipopt import Model, quicksum

from planner.ilp.data import PlanningData
from planner.ilp.variables import FLOW_UNIT, Key, Vars

AVAILABILITY_PENALTY = 1000.0  # $ per missing instance-hour: always worth an instance


def niw_carry_value(data: PlanningData) -> float:
    """$ per (token/s)·h of NIW backlog carried past the horizon."""
    niw = data.deferrable
    if niw is None:
        return 0.0
    best = float("inf")
    for r, m, g in data.placements():
        per_vm = data.instances_per_vm[(m, g)] * data.theta[(m, g, niw)]
        price = min(data.price[(r, g)], data.spot_price.get((r, g), data.price[(r, g)]) or 1e9)
        best = min(best, price / per_vm)
    return 0.0 if best == float("inf") else best


def money_terms(
    data: PlanningData, v: Mapping[str, Mapping[Key, Any]], total: Callable[[Iterable[Any]], Any]
) -> dict[str, Any]:
    """The objective's money terms, $ (VM-hours, spot VM-hours, paying for VMs while they
    provision, GPU time spent loading models), over ``v``: the model's variables summed with
    ``quicksum``, or a solution's values (planner.ilp.costs) summed with ``sum``."""
    price, spot = data.price, data.spot_price

    def lead(g: str) -> float:
        return data.lead_minutes[g] / 60.0

    def load(m: str, g: str, t: int) -> float:
        return data.load_loss(m, g, t) / data.instances_per_vm[(m, g)]

    def get(family: str) -> Iterable[tuple[Key, Any]]:
        return v.get(family, {}).items()

    return {
        "vm_hours": total(price[(r, g)] * y for (r, g, _t), y in get("y")),
        "spot_vm_hours": total(spot[(r, g)] * z for (r, g, _t), z in get("z")),
        "provisioning": total(
            chain(
                (price[(r, g)] * lead(g) * a for (r, g, _t), a in get("ay")),
                (spot[(r, g)] * lead(g) * a for (r, g, _t), a in get("az")),
            )
        ),
        "model_loads": total(
            chain(
                (price[(r, g)] * load(m, g, t) * u for (r, m, g, t), u in get("u")),
                (spot[(r, g)] * load(m, g, t) * u for (r, m, g, t), u in get("us")),
            )
        ),
    }


def objective_terms(data: PlanningData, v: Vars) -> dict[str, Any]:
    """The objective by component (each a linear expression), for reports and tests."""
    terms = money_terms(data, v, quicksum)
    terms["churn"] = data.churn_cost * quicksum(
        [*v.ay.values(), *v.ry.values(), *v.az.values(), *v.rz.values()]
    )
    terms["routing_latency"] = quicksum(
        data.latency_penalty * FLOW_UNIT * data.latency[(r0, r)] * f
        for (r0, r, _m, _k, _t), f in v.f.items()
        if data.latency[(r0, r)] > 0
    )
    terms["unmet"] = quicksum(
        data.unmet_penalty[k] * FLOW_UNIT * e for (_r, _m, k, _t), e in v.e.items()
    ) + quicksum(
        data.unmet_penalty.get(data.deferrable or "", 0.0) * FLOW_UNIT * en for en in v.en.values()
    )
    terms["availability_shortfall"] = AVAILABILITY_PENALTY * quicksum(v.sa.values())
    last = max(data.T) if len(data.T) else 0
    value = niw_carry_value(data)
    terms["niw_carried"] = quicksum(
        value * FLOW_UNIT * b for (_m, t), b in v.b.items() if t == last
    )
    return terms


def set_objective(model: Model, data: PlanningData, v: Vars) -> None:
    """Minimise the sum of :func:`objective_terms`."""
    model.setObjective(quicksum(objective_terms(data, v).values()), "minimize")
