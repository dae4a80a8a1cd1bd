"""bench/hold_cap.py's oracle cap on LT-F: the caps are k × each hour's busiest clairvoyant
minute (none in the warm-up); a cap only ever lowers what the policy holds, and a cap no pool
reaches leaves the replay unchanged (tiny fleet of tests/planner/ilp_fixtures.py)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from bench.hold_cap import Capped, capped, caps
from planner.sim.fleet import FleetParams, Targets
from planner.sim.fluid import Observation
from planner.sim.plan_ramp import PlanRamp
from tests.helpers import replay
from tests.planner.test_plan_ramp import DIALS
from tests.planner.test_sim import IWF, demand, p, targets

__all__ = ["p"]


def test_caps_are_k_times_each_hours_busiest_minute() -> None:
    clair = np.zeros((150, 2, 1))
    clair[10, 0, 0], clair[70, 0, 0], clair[100, 1, 0] = 3.0, 1.0, 2.0
    got = caps(clair, 1, 2.0, ahead=False)
    assert got.shape == (3, 2, 1) and np.isinf(got[0]).all()  # the warm-up hour is not capped
    assert got[1:, :, 0].tolist() == [[6.0, 0.0], [2.0, 4.0]]  # the partial last hour dropped
    assert caps(clair, 0, 1.0, ahead=True)[:, :, 0].tolist() == [[3.0, 2.0], [1.0, 2.0]]


class Checked(Capped):
    """Capped, keeping the layer's extra before and after each hand-back."""

    seen: ClassVar[list[tuple[np.ndarray, np.ndarray]]] = []

    def hand_back(self, obs: Observation) -> Targets | None:
        before = self._extra.copy()
        out = super().hand_back(obs)
        self.seen.append((before, self._extra.copy()))
        return out


def _plan(p: FleetParams) -> list[Targets]:
    """The plan holds 4 instances in region a each hour for a load 1 instance carries."""
    return [targets(p, 4, 1)] * 3


def test_a_cap_only_hands_back(p: FleetParams) -> None:
    """Region a is capped at 1 instance (it holds 4), region b at 3 (it holds 1: a cap above
    what a pool holds buys nothing)."""
    d = demand(180, {(0, IWF): 50.0, (1, IWF): 20.0})
    free = replay(p, d, PlanRamp(p, _plan(p), name="lt-f", **DIALS), drain=False)
    cap = np.zeros((3, 2, 1))
    cap[:, 0], cap[:, 1] = 1.0, 3.0
    policy = Checked(p, _plan(p), name="lt-f", cap=cap, **DIALS)
    policy.seen = []
    tight = replay(p, d, policy, drain=False)
    assert all((after <= before + 1e-9).all() for before, after in policy.seen)
    assert any((after < before).any() for before, after in policy.seen)
    assert tight.gpu_hours < free.gpu_hours


def test_a_cap_no_pool_reaches_changes_nothing(p: FleetParams) -> None:
    d = demand(180, {(0, IWF): np.r_[np.full(60, 50.0), np.full(60, 400.0), np.full(60, 50.0)]})
    free = replay(p, d, PlanRamp(p, _plan(p), name="lt-f", **DIALS), drain=False)
    policy = capped(PlanRamp(p, _plan(p), name="lt-f", **DIALS), np.full((3, 2, 1), 1e9))
    same = replay(p, d, policy, drain=False)
    assert same.gpu_hours == pytest.approx(free.gpu_hours, abs=0)
    assert (same.timeline["gpus"].to_numpy() == free.timeline["gpus"].to_numpy()).all()
