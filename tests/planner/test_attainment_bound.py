"""The bound at per-window attainment (planner.sim.attainment_bound): by hand on a curve whose
concave envelope is a straight line, and below every policy of a small sweep at that policy's
own attainment (and below the clairvoyant fleet) on tiny traces with bursts and CVs.

Tiny fleet (tests/planner/ilp_fixtures.py): 100 tokens/s per instance in every tier, 2
instances (4 GPUs each) per 8-GPU VM, two regions 30 ms apart, IW-F TTFT 1 s, IW-N 10 s."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from planner.sim.attainment_bound import attainment_bound
from planner.sim.attainment_envelope import envelope, on_time_per_work
from planner.sim.bounds import clairvoyant_fleet
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import simulate
from planner.sim.latency import Curve
from planner.sim.policies import Reactive
from planner.sim.serving import ServingModel
from planner.sim.slo_policy import SloReactive
from tests.planner.ilp_fixtures import tiny_config
from tests.planner.test_bounds import IWF, IWN, NIW, demand, static

START = pd.Timestamp("2024-06-03 10:00")


@pytest.fixture(scope="module")
def p() -> FleetParams:
    return params_from_config(tiny_config(), {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})


def cliff(p: FleetParams) -> ServingModel:
    """IW-F on time up to ρ = 0.5, falling linearly to 0 at ρ = 0.6 and 0 beyond (ρ* = 0.6,
    so an overloaded minute is never on time); IW-N always on time. CV-independent."""
    f = Curve(
        np.array([0.0, 0.5, 0.6, 1.0]),
        np.array([0.0, 4.0]),
        np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]),
    )
    flat = Curve(np.array([0.0, 0.95, 1.0]), np.array([0.0, 4.0]), np.ones((3, 2)))
    return ServingModel(np.asarray(p.theta, float), {(0, 0, IWF): f, (0, 0, IWN): flat})


def bursty(p: FleetParams) -> ServingModel:
    """Curves falling with utilisation and with the instances' CV, IW-F faster than IW-N."""
    rhos = np.array([0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 1.0])
    cvs = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    base = np.clip(1.0 - np.maximum(rhos - 0.3, 0.0) ** 2 * 1.5, 0.0, 1.0)
    cut = np.array([1.0, 0.99, 0.97, 0.9, 0.7])
    f = base[:, None] * cut[None, :]
    n = np.clip(1.0 - np.maximum(rhos - 0.6, 0.0) * 0.6, 0.0, 1.0)[:, None] * (0.5 + cut / 2)[None]
    return ServingModel(
        np.asarray(p.theta, float),
        {(0, 0, IWF): Curve(rhos, cvs, f), (0, 0, IWN): Curve(rhos, cvs, n)},
    )


def test_envelope_lies_above_the_on_time_share(p: FleetParams) -> None:
    curve = bursty(p).curves[(0, 0, IWF)]
    for cv in (0.0, 0.7, 3.0):
        dx, slope, f0 = envelope(curve, 1.0, cv)
        knots = np.concatenate([[0.0], np.cumsum(dx)])
        hull = f0 + np.concatenate([[0.0], np.cumsum(dx * slope)])
        x = np.linspace(0.0, 15.0, 4001)
        assert (np.interp(x, knots, hull) >= on_time_per_work(curve, 1.0, cv, x) - 1e-12).all()
        assert (np.diff(slope) <= 1e-12).all()  # concave


def test_bound_by_hand_on_a_cliff(p: FleetParams) -> None:
    """150 tokens/s of IW-F (1.5 instances busy) for an hour, 99 % over the window. On the
    cliff curve the on-time share per unit of work is 0 below x = 1/0.6 instances per unit,
    1 from x = 2: its concave envelope is min(x/2, 1) (the line to (2, 1) lies above every
    point between), so 99 % needs x = 1.98, i.e. 2.97 instances × 4 GPUs × 1 h = 11.88 GPU-h
    (up to the grid's rounding up, which can only lower it). A static pool of 3 instances
    (ρ = 0.5, every request on time) pays 2 VMs: 16 GPU-h; 2 instances (ρ = 0.75) miss."""
    d = demand(60, {(0, IWF): 150.0})
    serving = cliff(p)
    b = attainment_bound(p, d, serving, {"IW-F": 0.99, "IW-N": 0.99})
    assert 0.99 * 11.88 <= b.gpu_hours <= 11.88 + 1e-9
    ok = simulate(p, d, static(p, 3), serving=serving)
    short = simulate(p, d, static(p, 2), serving=serving)
    assert ok.tiers["IW-F"].sla_attainment == pytest.approx(1.0)
    assert short.tiers["IW-F"].sla_attainment < 0.5
    assert ok.gpu_hours == pytest.approx(16.0) and ok.gpu_hours >= b.gpu_hours


def _trace(kind: str) -> MinuteDemand:
    rng = np.random.default_rng(3)
    T = 120
    t = np.arange(T)
    if kind == "ramp and burst":
        d = demand(
            T, {(0, IWF): 60.0 + 2.0 * t + 500.0 * (t == 70), (1, IWN): 90.0, (1, NIW): 40.0}
        )
    else:
        d = demand(T, {(0, IWF): rng.pareto(1.5, T) * 80.0, (1, IWF): 50.0, (0, IWN): 120.0})
    cv = np.where(d.requests > 0, rng.uniform(0.3, 2.5, d.requests.shape), np.nan)
    return MinuteDemand(START, d.requests, d.input_tokens, d.output_tokens, cv)


@pytest.mark.parametrize("kind", ["ramp and burst", "heavy tail, two regions"])
def test_no_policy_goes_below_the_bound_at_its_own_attainment(p: FleetParams, kind: str) -> None:
    d = _trace(kind)
    serving = bursty(p)
    first = d.tokens[:60].mean(axis=0) / 60.0
    policies = [
        Reactive(p, first, up=0.3, down=0.1, target=0.2, name="cold"),
        Reactive(p, first, up=0.9, down=0.45, target=0.75, name="hot", min_instances=0),
        SloReactive(p, first, name="slo", target=0.3, up=0.4, down=0.2),
        static(p, 3, 3),
        static(p, 1, 0),
    ]
    for policy in policies:
        r = simulate(p, d, policy, serving=serving)
        own = {k: r.tiers[k].sla_attainment for k in ("IW-F", "IW-N")}
        b = attainment_bound(p, d, serving, own, rounds=1, steps=6)
        assert b.gpu_hours <= r.gpu_hours + 1e-9, (kind, policy.name, own, b, r.gpu_hours)
    targets = {"IW-F": 0.99, "IW-N": 0.99}
    c = clairvoyant_fleet(p, d, np.zeros((2, 1)), serving, targets)
    b = attainment_bound(p, d, serving, targets, rounds=1, steps=6)
    assert c.reachable and 0.0 < b.gpu_hours <= c.gpu_hours


def test_floors_raise_the_bound_to_at_least_their_cost(p: FleetParams) -> None:
    """One instance kept in each of the two regions (2 × 4 GPUs for an hour = 8 GPU-h) under
    a load of 0.2 instances busy on the cliff curve: the bound with floors is their cost,
    without them 0.2 × 1.98 instances × 4 GPUs × 1 h = 1.58 GPU-h at most."""
    d = demand(60, {(0, IWF): 20.0})
    serving = cliff(p)
    targets = {"IW-F": 0.99, "IW-N": 0.99}
    free = attainment_bound(p, d, serving, targets)
    kept = attainment_bound(p, d, serving, targets, floor=np.ones((2, 1)))
    assert 0.99 * 1.584 <= free.gpu_hours <= 1.584 + 1e-9
    assert kept.gpu_hours == pytest.approx(8.0, rel=1e-6)
