"""The verifier catches what a plan must not do; explain names the binding constraint."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest

from planner.ilp.explain import explain
from planner.ilp.greedy import greedy_values
from planner.ilp.plan import SolverFacts
from planner.ilp.planner import make_plan
from planner.ilp.readback import from_values
from planner.ilp.solve import SolverSettings
from planner.ilp.verify import verify
from tests.planner.ilp_fixtures import T0, tiny_config, tiny_data

ROWS = [(1, "a", "IW-F", 300.0), (2, "a", "IW-F", 300.0), (1, "b", "IW-N", 50.0)]


@pytest.fixture(scope="module")
def solved():  # type: ignore[no-untyped-def]
    data = tiny_data(tiny_config(), ROWS)
    plan, check = make_plan(data, SolverSettings(time_limit_s=20, mip_gap=0.0))
    assert check.ok
    return plan, data


def test_routing_outside_the_latency_budget_is_caught(solved) -> None:  # type: ignore[no-untyped-def]
    plan, data = solved
    routing = plan.routing.copy()
    row = routing.index[(routing["source_region"] == "a") & (routing["tier"] == "IW-F")][0]
    routing.loc[row, "target_region"] = "b"
    broken = replace(plan, routing=routing)
    assert any(v.startswith("routing_budget") for v in verify(broken, data).violations)


def test_vms_over_quota_and_too_few_vms_are_caught(solved) -> None:  # type: ignore[no-untyped-def]
    plan, data = solved
    vms = plan.vms.copy()
    vms.loc[vms["region"] == "a", "on_demand"] = 9
    over = verify(replace(plan, vms=vms), data).violations
    assert any(v.startswith("quota") for v in over)
    vms = plan.vms.copy()
    vms.loc[vms["region"] == "a", "on_demand"] = 0
    under = verify(replace(plan, vms=vms), data).violations
    assert any(v.startswith("vm_packing") for v in under)


def test_an_addition_inside_its_lead_time_is_caught(solved) -> None:  # type: ignore[no-untyped-def]
    plan, data = solved
    extra = pd.DataFrame(
        [("add_vm", "a", "v8", None, 1, T0, T0 - timedelta(minutes=15), T0)],
        columns=plan.actions.columns,
    )
    broken = replace(plan, actions=pd.concat([plan.actions, extra], ignore_index=True))
    found = verify(broken, data).violations
    assert any(v.startswith("vm_lead_time") for v in found)
    assert any(v.startswith("start_by") for v in found)  # and it would start before now


def test_overloaded_instances_and_lost_demand_are_caught(solved) -> None:  # type: ignore[no-untyped-def]
    plan, data = solved
    assign = plan.assignments.copy()
    assign["tokens_per_s"] *= 3
    assert any(
        v.startswith("capacity") for v in verify(replace(plan, assignments=assign), data).violations
    )
    assert any(
        v.startswith("demand_cover")
        for v in verify(replace(plan, unmet=plan.unmet.iloc[0:0]), data).violations
    )


def test_the_greedy_plan_verifies(solved) -> None:  # type: ignore[no-untyped-def]
    _, data = solved
    facts = SolverFacts("greedy", 0, 0, 0, 0, 0, "", data.config_hash, fallback=True)
    greedy = from_values(data, greedy_values(data), facts)
    check = verify(greedy, data)
    assert check.ok, check.violations
    assert greedy.total_cost >= 10.0


def test_explain_names_capacity_and_lead_time(solved) -> None:  # type: ignore[no-untyped-def]
    plan, data = solved
    frame = explain(plan, data).set_index(["region", "model", "hour"])
    first = frame.loc[("a", "m", T0)]
    assert first["binding"] == "lead_time"  # demand unmet while no VM could arrive
    second = frame.loc[("a", "m", T0 + timedelta(hours=1))]
    assert second["headroom"] >= 0
