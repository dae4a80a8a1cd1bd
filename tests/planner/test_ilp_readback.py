"""The read-back (planner.ilp.readback.from_values) agrees with itself: a solved plan with
specks of NIW service (a MIP's ~1e-12 model units) in an hour that serves none has routing
weights that sum to 1, NIW routing shares equal to the regions' shares of the NIW placed in
its assignments, NIW placed equal to the NIW table's served, and it verifies. The cutoff
is ``DUST`` in each family's model unit, in every table (the interactive routing's too)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from planner.ilp.build import create_model
from planner.ilp.data import PlanningData
from planner.ilp.plan import SolverFacts
from planner.ilp.readback import from_values
from planner.ilp.solve import SolverSettings, solve
from planner.ilp.variables import Values
from planner.ilp.verify import verify
from tests.planner.test_ilp_lagrange import _instance

EXACT = SolverSettings(time_limit_s=60, mip_gap=0.0)


@pytest.mark.parametrize(
    "specks",
    [
        (5e-10, 3e-9),  # one either side of 1e-9 tokens/s (the read-back's old row cut)
        (5e-7, 3e-6),  # one either side of 1e-6 tokens/s (1e-9 model units)
        (1e-12, 2e-9),
    ],
)
def test_niw_specks_leave_the_plan_consistent(specks: tuple[float, float]) -> None:
    data = _instance(1)  # NIW is served in hours 2 and 3 only (the optimum, seed 1)
    optimum = solve(create_model(data), EXACT)
    assert optimum.status == "optimal" and data.deferrable
    values = {fam: dict(d) for fam, d in optimum.values.items()}
    hour1 = [(fam, k) for fam in ("v", "vs") for k in values[fam] if k[-1] == 1]
    assert hour1 and all(abs(values[fam][k]) < 1e-9 for fam, k in hour1)
    for fam, k in hour1:  # the optimum's own specks (SCIP's) out: the hour serves none
        values[fam][k] = 0.0
    values["v"][("a", "m", "v8", 1)] = specks[0]
    values["v"][("b", "m", "v8", 1)] = specks[1]
    facts = SolverFacts("t", optimum.objective, 0.0, optimum.objective, 0, 0, "", "h")
    plan = from_values(data, values, facts)

    weights = plan.routing.groupby(["hour", "source_region", "model", "tier"])["weight"].sum()
    assert (weights - 1.0).abs().max() <= 1e-12, weights.to_dict()
    niw = plan.assignments[plan.assignments["tier"] == data.deferrable]
    placed = niw.groupby(["hour", "model"])["tokens_per_s"].sum()
    served = plan.niw.set_index(["hour", "model"])["served"]
    for key, total in served.items():
        assert placed.get(key, 0.0) == pytest.approx(total, rel=1e-12, abs=1e-15), key
    by_region: dict[tuple[object, ...], float] = defaultdict(float)
    for row in niw.itertuples():
        by_region[(row.hour, row.model, row.region)] += row.tokens_per_s
    for row in plan.routing[plan.routing["tier"] == data.deferrable].itertuples():
        total = placed.get((row.hour, row.model), 0.0)
        if total > 0:
            share = by_region[(row.hour, row.model, row.target_region)] / total
            assert row.weight == pytest.approx(share, rel=1e-12), row
    check = verify(plan, data)
    assert check.ok, check.violations[:5]


def _optimum_values(seed: int) -> tuple[PlanningData, Values, SolverFacts]:
    data = _instance(seed)
    optimum = solve(create_model(data), EXACT)
    assert optimum.status == "optimal"
    values = {fam: dict(d) for fam, d in optimum.values.items()}
    facts = SolverFacts("t", optimum.objective, 0.0, optimum.objective, 0, 0, "", "h")
    return data, values, facts


def test_the_cutoff_is_dust_in_each_familys_model_unit() -> None:
    """Values under ``DUST`` model units are 0 in every table, each family in its own unit:
    NIW tokens/s (1e3 tokens/s a unit) 9e-7 gone, 2e-6 kept; instance capacity (a count,
    an uncommitted hour) 5e-10 gone, 5e-7 kept."""
    data, values, facts = _optimum_values(1)  # hour 1 serves no NIW; hour 3 is uncommitted
    assert data.integer_placement_h == 1
    for fam in ("v", "vs"):
        values[fam] = {k: 0.0 if k[-1] == 1 else v for k, v in values[fam].items()}
    values["v"][("a", "m", "v8", 1)] = 9e-7
    values["v"][("b", "m", "v8", 1)] = 2e-6
    assert values["x"][("a", "m", "v8h", 3)] == values["x"][("b", "m", "v8h", 3)] == 0.0
    values["x"][("a", "m", "v8h", 3)] = 5e-10
    values["x"][("b", "m", "v8h", 3)] = 5e-7
    plan = from_values(data, values, facts)

    niw = plan.assignments[plan.assignments["tier"] == data.deferrable]
    hour1 = niw[niw["hour"] == data.hours[0]]
    assert hour1[["region", "tokens_per_s"]].values.tolist() == [["b", 2e-6]]
    v8h = plan.instances[(plan.instances["hour"] == data.hours[2])]
    v8h = v8h[v8h["vm_type"] == "v8h"].set_index("region")["on_demand"]
    assert v8h.get("a", 0.0) == 0.0 and v8h["b"] == 5e-7


def test_interactive_routing_keeps_every_flow_over_the_cutoff() -> None:
    """An interactive route's flow just over the cutoff (5e-6 tokens/s) has its routing row
    and weight, so the source's weights still sum to 1; one under it (9e-7) has none."""
    data, values, facts = _optimum_values(1)
    small, gone = ("a", "b", "m", "IW-N", 3), ("b", "b", "m", "IW-N", 2)
    assert values["f"][small] == values["f"][gone] == 0.0
    values["f"][small], values["f"][gone] = 5e-6, 9e-7
    plan = from_values(data, values, facts)

    routing = plan.routing[plan.routing["tier"] == "IW-N"]
    weights = routing.groupby(["hour", "source_region"])["weight"].sum()
    assert (weights - 1.0).abs().max() <= 1e-12, weights.to_dict()
    row = routing[(routing["hour"] == data.hours[2]) & (routing["source_region"] == "a")]
    to_b = row[row["target_region"] == "b"]
    assert to_b["tokens_per_s"].tolist() == [5e-6]
    assert to_b["weight"].iloc[0] == pytest.approx(5e-6 / row["tokens_per_s"].sum())
    hour2 = routing[(routing["hour"] == data.hours[1]) & (routing["source_region"] == "b")]
    assert "b" not in hour2["target_region"].tolist()
