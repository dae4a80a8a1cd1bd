"""Fluid replay against the iteration-level reference on one pool, at chosen utilisations.

The same request rows go through :func:`planner.sim.instances.simulate_instances`
(round-robin over ``instances`` instances) and the fluid pool replay
(:func:`planner.sim.pool.pool_minutes`), whose attainment comes from the request-level fluid
(:func:`planner.sim.pool.pool_sla_requests`: each request's own arrival and sizes, the
minute's mean-value state, each instance's own queue in an overload; ``fluid_sla``) and,
beside it, from the per-minute latency model (:func:`planner.sim.pool.pool_sla_model`: the
minute's aggregates only, what a replay without rows has; ``minute_sla``) and the measured
latency curves (:func:`planner.sim.pool.pool_sla`; ``curve_sla``). A utilisation u is
reached by stretching time: arrivals are scaled so that Σ busy_s / (instances · κ · span) = u
(the gaps' CVs, the order of requests and their sizes are kept), κ the calibration's (the
curves' day).

The model's minute queue serves each minute at the capacity an instance sustains on that
minute's own request mix (:mod:`planner.sim.mix_kappa`: κ tabulated against the prefill share
of the busy seconds by one saturation run on the replayed rows' sizes, tilted to eight shares
around the rows' own; no arrival times and no latencies of the reference replay), measured once
per replay, not the calibration day's κ: at utilisation 0.95 one percent of capacity moves
IW-N by ~6 points, and κ moves by ±1.5 % with the mix, within a trace as between traces. Its
backlog is uneven across the instances (:func:`planner.sim.pool.spread_queue`). The
request-level fluid queues each instance's own requests at that κ instead
(:func:`planner.sim.pool.admission`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.instances import Requests, Served, simulate_instances
from planner.sim.latency import Curve, TierTarget, on_time
from planner.sim.mix_kappa import KappaTable, kappa_table, minute_kappa, prefill_share
from planner.sim.pool import (
    PoolRows,
    minute_index,
    pool_minutes,
    pool_sla,
    pool_sla_model,
    pool_sla_requests,
)
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
    fluid_sla: float  # the request-level fluid (the rows' own arrivals and sizes)
    reference_sla: float
    requests: int
    curve_sla: float  # the latency curves
    minute_sla: float  # the per-minute latency model (the minutes' aggregates only)


@dataclass(frozen=True)
class Agreement:
    rows: list[AgreementRow]
    fluid_s: float  # wall time of the request-level fluid replays (minute aggregation included)
    reference_s: float
    requests: int  # replayed by each model, all utilisations together
    curve_s: float = 0.0  # wall time of the curves' fluid replays (minute aggregation included)
    queue_capacity: float = 0.0  # κ of the model's minute queue at the rows' own mix
    minute_s: float = 0.0  # wall time of the per-minute model's replays (as fluid_s)
    kappa_s: float = 0.0  # of the κ table, once per trace (counted in fluid_s and minute_s)


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
    reference_s = curve_s = 0.0
    started = time.perf_counter()
    table = queue_kappa or kappa_table(profile, np.asarray(prompt), np.asarray(output))
    pre = busy * prefill_share(profile, prompt, output)  # prefill busy seconds
    kappa_s = time.perf_counter() - started
    fluid_s = minute_s = kappa_s  # both fluids' times count the κ table
    for u in utilisations:
        arr = replay_arrivals(t, busy, instances, capacity, u)
        started = time.perf_counter()
        served = simulate_instances(Requests(arr, prompt, output), profile, instances)
        reference_s += time.perf_counter() - started
        minutes = int(arr.max() // 60) + 1
        pool = PoolRows(arr, prompt, output, tier, minute_index(arr, minutes))
        (fluid, by_minute), spent = _model_fluids(
            pool, busy, pre, table, profile, (ttft, tpot), instances
        )
        fluid_s, minute_s = fluid_s + spent[0], minute_s + spent[1]
        started = time.perf_counter()
        traffic = pool_minutes(arr, tier, busy, len(targets), minutes, instances)
        by_curve, _ = pool_sla(traffic, instances, curves, ttft, capacity)
        curve_s += time.perf_counter() - started
        rows += _rows(u, targets, tier, served, (fluid, by_curve, by_minute))
    requests = len(t) * len(utilisations)
    return Agreement(rows, fluid_s, reference_s, requests, curve_s, table.own, minute_s, kappa_s)


def _model_fluids(
    rows: PoolRows,
    busy: Array,
    prefill: Array,
    table: KappaTable,
    profile: InstanceProfile,
    targets_s: tuple[Array, Array],
    instances: int,
) -> tuple[tuple[Array, Array], tuple[float, float]]:
    """Per-tier attainment of the request-level fluid and of the per-minute model on one
    replay, and the wall time of each, the minute aggregates both read counted in both."""
    started = time.perf_counter()
    minutes = int(rows.arrival_s.max() // 60) + 1
    tiers = len(targets_s[0])
    traffic = pool_minutes(rows.arrival_s, rows.tier, busy, tiers, minutes, instances)
    mix = minute_mix(rows.minute, rows.tier, rows.prompt, rows.output, minutes, tiers)
    kappa = minute_kappa(table, rows.minute, prefill, busy, minutes)
    aggregates = time.perf_counter() - started
    started = time.perf_counter()
    fluid, _ = pool_sla_requests(rows, traffic, mix, instances, profile, *targets_s, kappa)
    fluid_s = aggregates + time.perf_counter() - started
    started = time.perf_counter()
    by_minute, _ = pool_sla_model(traffic, mix, instances, profile, *targets_s, kappa)
    return (fluid, by_minute), (fluid_s, aggregates + time.perf_counter() - started)


def _rows(
    u: float,
    targets: list[TierTarget],
    tier: IntArray,
    served: Served,
    fluids: tuple[Array, Array, Array],
) -> list[AgreementRow]:
    """One row per tier with requests: the reference's on-time share beside the fluids'
    (request-level, curves, per-minute model)."""
    fluid, curve, minute = fluids
    rows = []
    for k, target in enumerate(targets):
        mine = tier == k
        if mine.any():
            ok = on_time(served.ttft_s[mine], served.tpot_s[mine], served.e2e_s[mine], target)
            share, n = float(ok.mean()), int(mine.sum())
            rows.append(
                AgreementRow(
                    u, target.tier, float(fluid[k]), share, n, float(curve[k]), float(minute[k])
                )
            )
    return rows
