"""The read-back (planner.ilp.readback.from_values) agrees with itself: a solved plan with
specks of NIW service (a MIP's ~1e-12 model units) in an hour that serves none has routing
weights that sum to 1, NIW routing shares equal to the regions' shares of the NIW placed in
its assignments, NIW placed equal to the NIW table's served, and it verifies."""

from __future__ import annotations

from collections import defaultdict

import pytest

from planner.ilp.build import create_model
from planner.ilp.plan import SolverFacts
from planner.ilp.readback import from_values
from planner.ilp.solve import SolverSettings, solve
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
