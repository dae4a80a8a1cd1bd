"""The fleet replay on the calibrated serving model (planner.sim.serving): running hot costs
SLA, burstier arrivals cost more, and the attainment is the stored curve's at the pool's load."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from planner.config import load_config
from planner.sim.capacity import load_latency_curves
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, Targets, home_routing, params_from_config
from planner.sim.fluid import Observation, SimResult, default_serving, pool_cv, simulate
from planner.sim.latency import instance_cv

START = pd.Timestamp("2024-06-03 10:00")
N = 8  # llama2-70b instances on a100x8 in the first region


@dataclass
class Static:
    targets: Targets
    name: str = "static"
    share_idle: bool = True

    def initial(self, p: FleetParams) -> Targets:
        return self.targets

    def decide(self, obs: Observation) -> Targets | None:
        return None


@pytest.fixture(scope="module")
def p() -> FleetParams:
    return params_from_config(load_config())


def one_pool(p: FleetParams, load: float, cv: float, minutes: int = 30) -> MinuteDemand:
    """IW-F and IW-N (half each) to llama2-70b in the first region at ``load`` × the pool's
    sustained capacity; 1,000 input and 250 output tokens per request."""
    m, g = p.models.index("llama2-70b"), p.vm_types.index("a100x8")
    shape = (minutes, len(p.regions), len(p.models), len(p.tiers))
    req = np.zeros(shape)
    serving = default_serving(p, MinuteDemand(START, req, req + 0.8, req + 0.2))
    per_request = 1250.0 / serving.theta[m, g, 0]  # instance-seconds
    rate = load * N * 60.0 / per_request  # requests per minute
    for k in p.interactive:
        req[:, 0, m, k] = rate / 2
    return MinuteDemand(START, req, req * 1000.0, req * 250.0, np.full(shape, cv))


def run(p: FleetParams, d: MinuteDemand) -> SimResult:
    m, g = p.models.index("llama2-70b"), p.vm_types.index("a100x8")
    inst = np.zeros(p.shape_rmg)
    inst[0, m, g] = N
    vms = np.zeros((len(p.regions), len(p.vm_types)))
    vms[0, g] = N / p.ipv[m, g]
    fixed = Targets(vms, np.zeros_like(vms), inst, np.zeros_like(inst), home_routing(p))
    return simulate(p, d, Static(fixed), drain=False)


def test_running_hot_costs_sla_as_the_curve_says(p: FleetParams) -> None:
    curves = load_latency_curves()
    results = {load: run(p, one_pool(p, load, 1.0)) for load in (0.3, 0.6, 0.9)}
    for tier in ("IW-F", "IW-N"):
        sla = [results[x].tiers[tier].sla_attainment for x in (0.3, 0.6, 0.9)]
        assert sla[0] > sla[1] > sla[2], (tier, sla)
        # below saturation nothing queues across minutes: the share is the curve's
        curve = curves.curve("llama2-70b", "a100x8", tier)
        expected = float(curve(0.6, instance_cv(1.0, N)))
        assert results[0.6].tiers[tier].sla_attainment == pytest.approx(expected, abs=1e-6)
    # the pool (the whole fleet here) is busy for what it served over what it sustains
    busy = results[0.6].gpu_hours_busy / results[0.6].gpu_hours
    assert busy == pytest.approx(0.6, rel=1e-6)


def test_burstier_arrivals_cost_more(p: FleetParams) -> None:
    calm = run(p, one_pool(p, 0.6, 0.5)).tiers["IW-F"].sla_attainment
    bursty = run(p, one_pool(p, 0.6, 4.0)).tiers["IW-F"].sla_attainment
    assert bursty < calm - 0.05


def test_a_pools_arrival_cv_leaves_niw_bursts_out() -> None:
    """A batch job's burst (NIW, CV 900) waits in its queue: the pool's CV is the
    interactive streams' request-weighted RMS (here 30 IW-F at CV 2, 10 IW-N at CV 1)."""
    p = params_from_config(load_config("configs/default.yaml"))
    req = np.zeros((len(p.regions), len(p.models), len(p.tiers)))
    cv = np.ones_like(req)
    f, n, niw = (p.tiers.index(k) for k in ("IW-F", "IW-N", "NIW"))
    req[0, 0, f], req[0, 0, n], req[0, 0, niw] = 30.0, 10.0, 100_000.0
    cv[0, 0, f], cv[0, 0, niw] = 2.0, 900.0
    got = pool_cv(home_routing(p), req, cv**2, list(p.interactive))
    assert got[0, 0] == pytest.approx(np.sqrt((30 * 4 + 10 * 1) / 40))
    assert got[1, 0] == 1.0  # nothing arrives there
