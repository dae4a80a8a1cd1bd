"""bench/fleet_gap.py (issue #15's decomposition of the gap to the clairvoyant fleet): reading
the fleet at each decision changes nothing in the replay and reproduces its metered GPUs
minute by minute; the parts add up to them, the floor is what the floor holds above the
curves' need, and headroom is what serves above that need; placement is the need on the held
type less the need on the clairvoyant type; the clairvoyant fleet's parts add up to its bound.

Tiny fleet (tests/planner/ilp_fixtures.py): 100 tokens/s per instance, 2 instances (4 GPUs
each) per 8-GPU VM, on the ideal server (an instance is on target up to ρ = 1); a second,
faster type h8 (300 tokens/s per instance, same shape, 2.5× the price)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench.fleet_gap import CLAIR, PARTS, Recorder, clair_tape, curve_need, parts, split
from planner.sim.bounds import clairvoyant_fleet
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import simulate
from planner.sim.latency import Curve
from planner.sim.serving import ServingModel, ideal
from planner.sim.slo_policy import SloReactive
from tests.planner.ilp_fixtures import tiny_config

START = pd.Timestamp("2024-06-03 10:00")


def _setup(niw: float = 0.0, two: bool = False) -> tuple[FleetParams, MinuteDemand, ServingModel]:
    cfg = tiny_config(**_two_types()) if two else tiny_config()
    p = params_from_config(cfg, {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})
    T = 180
    req = np.zeros((T, 2, 1, 3))
    req[:, 0, 0, 0] = 60 * 150.0 / 100  # 150 tokens/s of IW-F in region a
    req[60:90, 0, 0, 0] *= 4  # a burst in the second hour
    req[:, 1, 0, 1] = np.where(np.arange(T) % 60 < 5, 60 * 50.0 / 100, 0.0)  # b: short bursts
    req[:60, 0, 0, 2] = 60 * niw / 100  # NIW in region a's first hour, due 2 h later
    demand = MinuteDemand(START, req, req * 10, req * 90)
    return p, demand, ideal(p)


def _two_types() -> dict[str, Any]:
    v8 = tiny_config().model_dump(mode="json")["vm_types"][0]
    h8 = dict(v8, id="h8", price_per_hour=25.0, spot_price_per_hour=10.0)

    def on(rate: float) -> dict[str, Any]:
        tp = {"input": rate, "output": rate}
        run = {"tensor_parallel": 4, "instances_per_vm": 2, "load_time_min": 6}
        return run | {"throughput": {"IW-F": tp, "IW-N": tp, "NIW": tp}}

    pools = [(r, g) for r in "ab" for g in ("v8", "h8")]
    fleet = [
        {"region": r, "vm_type": g, "quota": 4, "spot_available": 0, "running": 0} for r, g in pools
    ]
    model = {"id": "m", "name": "M", "weights_gb": 20, "min_instances": 0}
    return {
        "vm_types": [v8, h8],
        "fleet": fleet,
        "models": [model | {"vm_types": {"v8": on(100.0), "h8": on(300.0)}}],
    }


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


def test_placement_on_a_faster_type_and_the_parts_still_add_up() -> None:
    """The fleet runs on h8 (cheaper per token), the clairvoyant fleet on v8 (cheaper for
    this pool's whole counts): in region a's steady hour 1 h8 instance (4 GPUs) does what 2
    v8 instances (8 GPUs) do, placement -4; headroom is measured from the need on h8."""
    p, demand, serving = _setup(two=True)
    floor = np.ones((2, 1))
    clair = clairvoyant_fleet(p, demand, floor, serving)
    need = curve_need(p, demand, serving, floor, clair)
    assert list(clair.vm_types[:, 0]) == [0, 0]
    rec = Recorder(_policy(p), 0)
    res = simulate(p, demand, rec, serving=serving)
    tape = rec.tape()
    steady = slice(120, 170)
    assert (tape.inst[steady, 0, 0, 1] > 0).all() and (tape.inst[:, :, :, 0] == 0).all()
    split_ = parts(p, tape, need)
    total = sum(v.sum() for v in split_.values()) / 60.0
    assert total == pytest.approx(res.gpu_hours)
    np.testing.assert_allclose(split_["curve need"][steady, 0, 0], 8.0)
    np.testing.assert_allclose(split_["placement"][steady, 0, 0], -4.0)
    held = tape.inst[steady, 0, 0, 1] * 4.0
    np.testing.assert_allclose(split_["headroom"][steady, 0, 0], held - 4.0)
    assert (split_["idle slots"] >= -1e-9).all()
    np.testing.assert_allclose(tape.busy[steady, 0, 0], 150.0 / 300 * 4)  # 0.5 of an instance


def test_the_clairvoyant_fleets_parts_add_up_to_its_bound() -> None:
    """Its tape: its instances on its type, busy with the interactive work only, VMs packed as
    the bound packs them; its NIW instances are NIW, never headroom."""
    p, demand, serving = _setup(niw=600.0, two=True)
    floor = np.ones((2, 1))
    clair = clairvoyant_fleet(p, demand, floor, serving)
    need = curve_need(p, demand, serving, floor, clair)
    tape = clair_tape(p, demand, need)
    got = split(p, {CLAIR: tape}, need)[CLAIR]
    assert sum(v.sum() for v in got.values()) / 60.0 == pytest.approx(clair.gpu_hours)
    assert (got["headroom"] == 0).all() and (got["placement"] == 0).all()
    niw = (clair.instances - np.maximum(need.per_type[..., 0], floor[None])) * 4.0
    assert niw.sum() > 0
    np.testing.assert_allclose(got["NIW"], niw)
    assert (got["idle slots"] >= -1e-9).all() and got["idle slots"].sum() > 0  # whole VMs
    np.testing.assert_allclose(tape.busy[120:170, 0, 0], 150.0 / 100 * 4)  # 1.5 v8 instances


def test_curve_need_sizes_as_the_clairvoyant_fleet_does() -> None:
    """A curve that depends on ρ and CV (99 % needs ρ ≤ 0.5 at CV 1, the demand's, and
    ρ ≤ 0.55 at CV 0): with no floor and no NIW the need on the clairvoyant type is its fleet."""
    p, demand, _ = _setup(two=True)
    sla = np.array([[1.0, 1.0], [1.0, 0.9], [0.9, 0.5]])
    c = Curve(np.array([0.0, 0.5, 1.0]), np.array([0.0, 4.0]), sla)
    table = {(0, g, k): c for g in range(2) for k in p.interactive}
    serving = ServingModel(np.asarray(p.theta, float), table)
    floor = np.zeros((2, 1))
    clair = clairvoyant_fleet(p, demand, floor, serving)
    need = curve_need(p, demand, serving, floor, clair)
    on = np.take_along_axis(need.per_type[:, :, 0], clair.vm_types[None, :, :1], axis=2)
    np.testing.assert_allclose(on[..., 0], clair.instances[:, :, 0])
    assert need.per_type[20, 0, 0, 0] == 4  # 1.5 instances busy at ρ <= 0.5 (CV 1)
