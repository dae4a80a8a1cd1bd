"""Where a replay's misses fall (``TierOutcome.missed``, per minute and serving pool), and the
reactive families' long scale-in windows, the dial that lets the baselines meet the targets on
traffic that stops for hours and restarts at full rate (the ServeGen log, issue #15).

Tiny fleet (tests/planner/ilp_fixtures.py): one instance serves 100 tokens/s in every tier,
a VM holds 2 instances, lead time 15 min, model load 6 min; 100 tokens per request."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from planner.sim.fleet import FleetParams, params_from_config
from planner.sim.fluid import Policy
from planner.sim.policies import Reactive
from planner.sim.slo_policy import SloReactive
from planner.sim.sweep import SLO_WINDOWS_MIN, reactive_grid, slo_grid
from tests.helpers import replay
from tests.planner.ilp_fixtures import tiny_config
from tests.planner.test_sim import IWF, IWN, demand, fixed, targets

Array = npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def p() -> FleetParams:
    return params_from_config(tiny_config(), {("m", k): 0.1 for k in ("IW-F", "IW-N", "NIW")})


def test_misses_fall_in_the_overloaded_pool_and_minutes(p: FleetParams) -> None:
    """Region 0 carries 300 tokens/s of IW-F on one instance in minutes 30–59 only; region 1
    carries 50 tokens/s on one: every miss is region 0's, in or after its overload, and the
    misses add up to the tier's late and dropped requests."""
    rate = np.where(np.arange(90) // 30 == 1, 300.0, 50.0)
    d = demand(90, {(0, IWF): rate, (1, IWF): 50.0})
    out = replay(p, d, fixed(p, targets(p, 1, 1)), drain=False).tiers["IW-F"]
    assert out.missed.shape == (90, 2, 1)
    assert out.missed.sum() == pytest.approx(out.late + out.dropped, rel=1e-9)
    assert out.missed[:, 1].sum() == pytest.approx(0.0, abs=1e-9)
    assert out.missed[:30].sum() == pytest.approx(0.0, abs=1e-9)
    assert out.missed[30:60, 0].sum() > 0.5 * out.missed.sum()


def _restart(
    p: FleetParams, make: Callable[[Array, int], Policy], windows: tuple[int, int]
) -> None:
    """IW-N on for an hour, off for two, on again at full rate: with the short window the
    pool sheds to its floor during the gap and the restart waits a VM's lead time and load
    (most misses come after it); with the long one it is still held and nothing is missed, for more
    GPU-hours."""
    minutes = 240
    on = np.where((np.arange(minutes) < 60) | (np.arange(minutes) >= 180), 400.0, 0.0)
    d = demand(minutes, {(0, IWN): on})
    first = d.tokens[:60].mean(axis=0) / 60.0
    short, long = (replay(p, d, make(first, w), drain=False) for w in windows)
    missed = short.tiers["IW-N"].missed
    assert missed[180:, 0, 0].sum() > 0.5 * missed.sum() > 0
    assert long.tiers["IW-N"].missed.sum() < 0.01 * missed.sum()
    assert long.gpu_hours > short.gpu_hours


def test_a_long_scale_in_window_serves_a_restart_a_short_one_misses(p: FleetParams) -> None:
    """The SLO-aware scaler's stabilisation window and the threshold scaler's scale-in
    cooldown, each at its grid's longest setting (both longer than the two-hour gap)."""
    slo_longest = max(SLO_WINDOWS_MIN)
    cooldowns = {pt.params["cooldown_in_min"] for pt in reactive_grid()}
    assert slo_longest >= 120 and max(cooldowns) >= 120
    assert {pt.params["cooldown_in_min"] for pt in slo_grid()} == set(SLO_WINDOWS_MIN)

    def slo(first: Array, window: int) -> Policy:
        return SloReactive(p, first, target=0.5, up=0.6, down=0.35, cooldown_in_min=window)

    def threshold(first: Array, cooldown: int) -> Policy:
        return Reactive(p, first, up=0.6, down=0.25, target=0.45, cooldown_in_min=cooldown)

    _restart(p, slo, (10, slo_longest))
    _restart(p, threshold, (10, max(cooldowns)))
