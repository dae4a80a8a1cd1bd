"""A deterministic work limit for plans (``planner.work_limit``, issue #15): SCIP stops on nodes
and the gap, the starts' LPs run to their end, nothing reads the clock, so a slow or loaded
machine makes the same plan; the safety cap, if it binds, is reported. The instance is the
packing test's hand-made fleet (tests/planner/test_ilp_packing.py), whose LP-rounding start
is repacked: every start is made, so a clock that cut one would show in ``warm_start``."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest

from planner.config import config_hash, load_config
from planner.config.work_limit import WorkLimit
from planner.ilp import packing, rounding
from planner.ilp.planner import make_plan, solver_settings
from planner.ilp.solve import SolverSettings
from tests.planner.test_ilp_packing import _data

WORK = SolverSettings(time_limit_s=600.0, mip_gap=0.0, node_limit=1000, root_cut_rounds=0)


def _slow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The starts see a machine where every look at the clock finds 500 s more gone (a
    loaded machine, exaggerated); SCIP's own clock is untouched."""
    ticks = itertools.count(step=500.0)
    fake = SimpleNamespace(perf_counter=lambda: float(next(ticks)))
    monkeypatch.setattr(rounding, "time", fake)
    monkeypatch.setattr(packing, "time", fake)


def test_a_work_limited_plan_does_not_depend_on_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data()
    first, check = make_plan(data, WORK)
    assert check.ok and first.notes == ()
    assert "repacked (accepted)" in first.solver.warm_start  # every start was made
    again, _ = make_plan(data, WORK)
    _slow_clock(monkeypatch)
    slow, _ = make_plan(data, WORK)
    for other in (again, slow):
        assert other.plan_id == first.plan_id  # a digest of every table: the same plan
        assert other.solver.warm_start == first.solver.warm_start
        assert other.notes == ()
    # wall clock decides without the work limit: the same slow clock cuts the starts
    wall, _ = make_plan(data, SolverSettings(time_limit_s=600.0, mip_gap=0.0))
    assert wall.solver.warm_start != first.solver.warm_start


def test_a_binding_safety_cap_is_reported_not_silent() -> None:
    plan, _ = make_plan(_data(), SolverSettings(time_limit_s=1e-9, mip_gap=0.0, node_limit=1000))
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("determinism lost: the wall-clock safety cap of 1e-09 s")


def test_the_config_hash_keys_on_the_work_limit() -> None:
    cfg = load_config()
    assert cfg.planner.work_limit is None and solver_settings(cfg).node_limit is None
    det = cfg.model_copy(
        update={"planner": cfg.planner.model_copy(update={"work_limit": WorkLimit(nodes=50)})}
    )
    settings = solver_settings(det)
    assert (settings.node_limit, settings.root_cut_rounds) == (50, WorkLimit().root_cut_rounds)
    assert settings.time_limit_s == WorkLimit().cap_s
    assert config_hash(det) != config_hash(cfg)
    # unset, it is left out of the hash: the default config's hash (and plan caches) stand;
    # the literal moves only when a default that changes the job's output moves (session 34:
    # the forecast section's day-shift band keys, on by default)
    assert config_hash(cfg) == "2f1a5cdb9a5728ea"


def test_a_decomposed_plan_under_a_work_limit_says_determinism_is_lost() -> None:
    """The decomposition has no work limit: its plan carries the note (plan_report counts it)."""
    from tests.planner.test_ilp_lagrange import _instance

    settings = SolverSettings(
        time_limit_s=1e-4, mip_gap=0.0, decompose_above_vars=1, node_limit=1000
    )
    plan, _ = make_plan(_instance(0), settings)
    assert plan.solver.method.startswith("lagrangian decomposition") or plan.solver.fallback
    assert len(plan.notes) == 1
    assert plan.notes[0].startswith("determinism lost: the wall-clock safety cap of 0.0001 s")


def test_a_slow_plan_whose_solves_all_finished_is_not_flagged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The note reads the solves' statuses, not elapsed time: on a clock where each look finds
    500 s more gone (well past the 600 s cap) no solve stopped on time, so no false alarm."""
    from planner.ilp import planner

    _slow_clock(monkeypatch)
    monkeypatch.setattr(planner, "time", SimpleNamespace(perf_counter=packing.time.perf_counter))
    plan, check = make_plan(_data(), WORK)
    assert check.ok and plan.solver.status in ("optimal", "gaplimit")
    assert plan.notes == ()
