"""A solver status other than optimal / gaplimit / timelimit is never a normal plan."""

from __future__ import annotations

from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from tests.planner.ilp_fixtures import tiny_config, tiny_data


def test_an_unbounded_program_gives_the_flagged_fallback_not_its_incumbent() -> None:
    good = tiny_config()
    # a negative NIW penalty (the config loader refuses it; built here past the loader) pays
    # for leaving deferrable work unserved without bound: SCIP says unbounded
    penalty = {"IW-F": 100.0, "IW-N": 50.0, "NIW": -100.0}
    planner = good.planner.model_copy(update={"unmet_penalty": penalty})
    cfg = good.model_copy(update={"planner": planner})
    data = tiny_data(cfg, [(1, "a", "NIW", 150.0)])
    plan, _ = make_plan(data, SolverSettings(30.0, 0.0, 1, 0))
    assert plan.solver.status not in ("optimal", "gaplimit", "timelimit")
    assert plan.solver.fallback
    assert f"status {plan.solver.status}" in (plan.solver.fallback_reason or "")
