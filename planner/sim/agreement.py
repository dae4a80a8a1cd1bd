"""Fluid replay against the iteration-level reference on one pool, at chosen utilisations.

The same request rows go through :func:`planner.sim.instances.simulate_instances`
(round-robin over ``instances`` instances) and the fluid pool replay
(:func:`planner.sim.pool.pool_minutes`), whose within-minute attainment comes from the
per-minute latency model (:func:`planner.sim.pool.pool_sla_model`: the profile, the minute's
load, size histogram and CV) and, beside it, from the measured latency curves
(:func:`planner.sim.pool.pool_sla`, the previous model). A utilisation u is
reached by stretching time: arrivals are scaled so that Σ busy_s / (instances · κ · span) = u
(the gaps' CVs, the order of requests and their sizes are kept), κ the calibration's (the
curves' day).

The model's minute queue serves each minute at the capacity an instance sustains on that
minute's own request mix (:mod:`planner.sim.mix_kappa`: κ tabulated against the prefill share
of the busy seconds by one saturation run on the replayed rows' sizes, tilted to eight shares
around the rows' own; no arrival times and no latencies of the reference replay), measured once
per replay, not the calibration day's κ: at utilisation 0.95 one percent of capacity moves
IW-N by ~6 points, and κ moves by ±1.5 % with the mix, within a trace as between traces. Its
backlog is uneven across the instances (:func:`planner.sim.pool.spread_queue`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.latency import Curve, TierTarget, on_time
from planner.sim.mix_kappa import KappaTable, kappa_table, minute_kappa, prefill_share
from planner.sim.pool import minute_index, pool_minutes, pool_sla, pool_sla_model
from planner.sim.profile import InstanceProfile
from planner.sim.size_mix import minute_mix

Array = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def replay_arrivals(t: Array, busy_s: Array, instances: int, capacity: float, u: float) -> Array:
    """The arrivals ``t`` (s from the first) stretched so that the pool runs at utilisation
    ``u``: Σ busy_s / (instances · capacity · span) = u over the stretched span."""
    span = float(np.max(t)) or 1.0
    return np.asarray(t, float) * np.sum(busy_s) / (instances * capacity * span * u)


@dataclass(frozen=True)
class AgreementRow:
    utilisation: float
    tier: str
    fluid_sla: float  # the per-minute latency model
    reference_sla: float
    requests: int
    curve_sla: float  # the latency curves


@dataclass(frozen=True)
class Agreement:
    rows: list[AgreementRow]
    fluid_s: float  # wall time of the model's fluid replays (minute aggregation included)
    reference_s: float
    requests: int  # replayed by each model, all utilisations together
    curve_s: float = 0.0  # wall time of the curves' fluid replays (minute aggregation included)
    queue_capacity: float = 0.0  # κ of the model's minute queue at the rows' own mix


def compare(
    arrival_s: Array,
    prompt: IntArray,
    output: IntArray,
    tier: IntArray,
    profile: InstanceProfile,
    targets: list[TierTarget],
    curves: list[Curve],
    capacity: float,
    instances: int,
    utilisations: tuple[float, ...] = (0.5, 0.7, 0.85, 0.95),
    queue_kappa: KappaTable | None = None,
) -> Agreement:
    """Per-tier SLA attainment of both models at each utilisation (module docstring).
    ``capacity``: the calibration's κ (defines the utilisations; the curves' minute queue);
    ``queue_kappa``: the model's minute queue's κ table, measured on the rows' sizes if None
    (its time counted in the model's fluid time)."""
    t = np.asarray(arrival_s, float) - float(np.min(arrival_s))
    busy = profile.busy_s(prompt, output)
    ttft = np.array([x.ttft_s for x in targets])
    tpot = np.array([x.tpot_s for x in targets])
    rows: list[AgreementRow] = []
    fluid_s = reference_s = curve_s = 0.0
    started = time.perf_counter()
    table = queue_kappa or kappa_table(profile, np.asarray(prompt), np.asarray(output))
    pre = busy * prefill_share(profile, prompt, output)  # prefill busy seconds
    fluid_s += time.perf_counter() - started
    for u in utilisations:
        arr = replay_arrivals(t, busy, instances, capacity, u)
        started = time.perf_counter()
        served = simulate_instances(Requests(arr, prompt, output), profile, instances)
        reference_s += time.perf_counter() - started
        started = time.perf_counter()
        minutes = int(arr.max() // 60) + 1
        minute = minute_index(arr, minutes)
        traffic = pool_minutes(arr, tier, busy, len(targets), minutes, instances)
        mix = minute_mix(minute, tier, prompt, output, minutes, len(targets))
        kappa = minute_kappa(table, minute, pre, busy, minutes)
        fluid, _ = pool_sla_model(traffic, mix, instances, profile, ttft, tpot, kappa)
        fluid_s += time.perf_counter() - started
        started = time.perf_counter()
        traffic = pool_minutes(arr, tier, busy, len(targets), minutes, instances)
        by_curve, _ = pool_sla(traffic, instances, curves, ttft, capacity)
        curve_s += time.perf_counter() - started
        rows += _rows(u, targets, tier, served, fluid, by_curve)
    return Agreement(rows, fluid_s, reference_s, len(t) * len(utilisations), curve_s, table.own)


def _rows(
    u: float, targets: list[TierTarget], tier: IntArray, served: Served, fluid: Array, curve: Array
) -> list[AgreementRow]:
    """One row per tier with requests: the reference's on-time share beside the fluids'."""
    rows = []
    for k, target in enumerate(targets):
        mine = tier == k
        if mine.any():
            ok = on_time(served.ttft_s[mine], served.tpot_s[mine], served.e2e_s[mine], target)
            share, n = float(ok.mean()), int(mine.sum())
            rows.append(AgreementRow(u, target.tier, float(fluid[k]), share, n, float(curve[k])))
    return rows
