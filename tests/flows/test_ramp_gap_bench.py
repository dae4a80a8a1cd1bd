"""bench/ramp_gap.py on a window shorter than its plan file: the replay buys the window's plans
only (it raised ``IndexError`` at the first purchase for the hour after the window), and a plan
file's hours are read from its record (a levers run's warm-up plans come before the window).
The tiny fleet of tests/planner/test_sim.py; plans bought 20 min ahead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.ramp_gap import bought_per_hour, recorded, window_plans
from flows.plan_cache import write_plans
from planner.sim.fleet import FleetParams
from planner.sim.sweep import PlanTargets, Point
from tests.helpers import replay
from tests.planner.test_sim import IWF, START, demand, p, targets

__all__ = ["p"]
LT_F = Point("plan", {"mode": "lt-f", "release_min": 15, "target": 0.6, "cooldown_in_min": 5})


def _store(path: Path, p: FleetParams, counts: list[int], first: pd.Timestamp | None) -> Path:
    """A plan file of one plan per count (region a's instances, hour after hour), with the
    record levers stores beside it (ids naming each plan's hour) unless ``first`` is None."""
    seq = PlanTargets([targets(p, n, 1) for n in counts], np.arange(len(counts) * 2.0))
    hours = [first + pd.Timedelta(hours=k) for k in range(len(counts))] if first else []
    ids = [f"plan-{h:%Y%m%dT%H%M}-0123456789ab" for h in hours]
    write_plans(path, seq, {"ids": ids, "notes": [""] * len(ids), "solves": [""] * len(ids)})
    if first is None:
        path.with_suffix(".ids.json").unlink()
    return path


def _counts(seq: PlanTargets) -> list[int]:
    return [int(t.instances[0, 0, 0]) for t in seq.hourly]


def test_a_two_hour_window_buys_no_plan_after_it(p: FleetParams, tmp_path: Path) -> None:
    """A 24-plan file replayed over 2 h: the last hour's purchase minute (100) would buy
    hour 2's rise (1 → 6 instances); the window's plans stop at hour 1, so nothing is bought
    for hour 2 and what was bought fits the window's hours."""
    path = _store(tmp_path / "day.pkl", p, [1, 3, 6, *[6] * 21], START)
    seq = window_plans(path, START, 2)
    lt_f = recorded(LT_F, p, seq, None)
    replay(p, demand(120, {(0, IWF): 50.0}), lt_f, drain=False)
    bought = bought_per_hour(lt_f, np.zeros((2, 2, 1)))
    assert sorted(lt_f.bought) == [1]
    assert bought[1, 0, 0] == pytest.approx(2.0)  # hour 1's rise, bought at minute 40
    assert _counts(seq) == [1, 3] and seq.expected.shape == (2,)


def test_the_window_starts_at_its_own_plan(p: FleetParams, tmp_path: Path) -> None:
    """A levers file with 3 warm-up hours before the window: its plans from the window's
    first hour on; a file with no record is taken to start at the window."""
    warm = _store(tmp_path / "warm.pkl", p, [1, 2, 3, 4, 5, 6], START - pd.Timedelta(hours=3))
    assert _counts(window_plans(warm, START, 2)) == [4, 5]
    bare = _store(tmp_path / "bare.pkl", p, [1, 2, 3, 4, 5, 6], None)
    assert _counts(window_plans(bare, START, 2)) == [1, 2]


def test_plans_not_covering_the_window_name_the_file(p: FleetParams, tmp_path: Path) -> None:
    path = _store(tmp_path / "short.pkl", p, [1, 2, 3], START)
    with pytest.raises(SystemExit, match=r"short\.pkl: 2 plans from .* the window has 3 h"):
        window_plans(path, START + pd.Timedelta(hours=1), 3)
    with pytest.raises(SystemExit, match=r"short\.pkl: no plan for the window's first hour"):
        window_plans(path, START + pd.Timedelta(hours=5), 1)
