"""bench/fleet_gap.py (issue #15's decomposition of the gap to the clairvoyant fleet): reading
the fleet at each decision changes nothing in the replay and reproduces its metered GPUs
minute by minute; the parts add up to them, the floor is what the floor holds above the
curves' need, and headroom is what serves above that need.

Tiny fleet (tests/planner/ilp_fixtures.py): 100 tokens/s per instance, 2 instances (4 GPUs
each) per 8-GPU VM, on the ideal server (an instance is on target up to ρ = 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.fleet_gap import PARTS, Recorder, curve_need, parts
from planner.sim.bounds import clairvoyant_fleet
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import simulate
from planner.sim.serving import ServingModel, ideal
from planner.sim.slo_policy import SloReactive
from tests.planner.ilp_fixtures import tiny_config

START = pd.Timestamp("2024-06-03 10:00")


def _setup() -> tuple[FleetParams, MinuteDemand, ServingModel]:
    p = params_from_config(tiny_config(), {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})
    T = 180
    req = np.zeros((T, 2, 1, 3))
    req[:, 0, 0, 0] = 60 * 150.0 / 100  # 150 tokens/s of IW-F in region a
    req[60:90, 0, 0, 0] *= 4  # a burst in the second hour
    req[:, 1, 0, 1] = np.where(np.arange(T) % 60 < 5, 60 * 50.0 / 100, 0.0)  # b: short bursts
    demand = MinuteDemand(START, req, req * 10, req * 90)
    return p, demand, ideal(p)


def _policy(p: FleetParams) -> SloReactive:
    first = np.zeros((2, 1, 3))
    first[0, 0, 0] = 150.0
    return SloReactive(p, first, target=0.6, up=0.8, down=0.4, cooldown_in_min=20)


def test_recording_changes_nothing_and_meters_what_the_replay_meters() -> None:
    p, demand, serving = _setup()
    warm = 30
    plain = simulate(p, demand, _policy(p), serving=serving, metered_from=warm)
    rec = Recorder(_policy(p), warm)
    res = simulate(p, demand, rec, serving=serving, metered_from=warm)
    assert res.gpu_hours == plain.gpu_hours
    assert res.tiers["IW-F"].on_time == plain.tiers["IW-F"].on_time
    tape = rec.tape()
    assert tape.inst.shape[0] == demand.minutes - warm
    np.testing.assert_allclose(tape.vm_gpus.sum(axis=(1, 2)), res.timeline["gpus"].to_numpy())


def test_parts_add_up_floor_and_headroom_by_hand() -> None:
    p, demand, serving = _setup()
    floor = np.ones((2, 1))
    clair = clairvoyant_fleet(p, demand, floor, serving)
    need = curve_need(p, demand, serving, floor, clair)
    rec = Recorder(_policy(p), 0)
    simulate(p, demand, rec, serving=serving)
    tape = rec.tape()
    split = parts(p, tape, need)
    assert set(split) == set(PARTS)
    total = sum(v.sum(axis=(1, 2)) for v in split.values())
    np.testing.assert_allclose(total, tape.vm_gpus.sum(axis=(1, 2)))
    # region b between its bursts: no demand, the floor (one 4-GPU instance) is all it needs
    quiet = np.arange(demand.minutes) % 60 == 30
    np.testing.assert_allclose(split["floor"][quiet, 1, 0], 4.0)
    np.testing.assert_allclose(split["curve need"][quiet, 1, 0], 0.0)
    # region a, steady hour: the ideal server needs ceil(150 / 100) = 2 instances (8 GPUs)
    np.testing.assert_allclose(split["curve need"][20:50, 0, 0], 8.0)
    held = tape.inst[:, 0, 0].sum(axis=1) * 4.0
    np.testing.assert_allclose(split["headroom"][20:50, 0, 0], held[20:50] - 8.0)
