"""The planning program for large fleets within a time limit: a proven bound and a verified
plan, each the best found when the limit is reached.

    1. The LP relaxation (valid inequalities included) in HiGHS, interior point
       (planner.ilp.highs_lp), within ``lp_share`` of the limit. Its bound L(y) is checked
       from the duals by arithmetic. Its duals on the coupling rows are the starting prices
       π, μ of the Lagrangian (planner.ilp.lagrange).
    2. The plan by diving from the LP solution (planner.ilp.dive), cut off at the limit.
    3. With time left and the gap above its goal: Lagrangian rounds by region (region MIPs
       in the pool, each stopped at the limit; subgradient steps towards the plan), which
       can only raise the best bound, and a plan assembled from the regions if it is better.
       Without an LP (too large, or not finished in its share), the rounds start from
       cost-based prices and the plan comes from the regions.

Every step is cut off by what is left of the budget: the LP by HiGHS's time limit, the
dive's re-solves and the assembly by theirs, region MIPs by a wall-clock deadline sent with
each task. The gap is (plan − bound) / plan.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from planner.ilp.data import PlanningData
from planner.ilp.lagrange import (
    Key,
    RegionResult,
    Routing,
    Values,
    data_size,
    initial_niw_prices,
    initial_prices,
    niw_part,
    niw_servable,
    served_keys,
)
from planner.ilp.variables import INTEGER_FAMILIES

log = logging.getLogger(__name__)


@dataclass
class DecompositionResult:
    lower_bound: float
    iterations: int
    values: Values | None  # the best plan's values (solver families), None if none
    objective: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    workers: int = 1
    region_seconds: float = 0.0  # summed over region solves (the parallel work)
    assembly_seconds: float = 0.0  # the last fixed-count LP
    start: str = "cost-based prices"  # where the first prices came from
    lp_seconds: float = 0.0  # building, loading and solving the relaxation
    bound_from: str = "none"  # "LP relaxation (…)" or "Lagrangian (…)": bound_source
    plan_from: str = "none"  # "dive", "rounding" or "regions"
    subproblems: str = "region MIPs"  # or "region LPs" (the split relaxation)

    @property
    def gap(self) -> float:
        """(plan − bound) / plan; inf without either."""
        if not (math.isfinite(self.objective) and math.isfinite(self.lower_bound)):
            return math.inf
        return max(0.0, self.objective - self.lower_bound) / max(abs(self.objective), 1e-9)

    def offer_bound(self, bound: float, source: str) -> None:
        if bound > self.lower_bound:
            self.lower_bound, self.bound_from = bound, source

    def offer_plan(self, values: Values, objective: float, source: str) -> None:
        if objective < self.objective:
            self.values, self.objective, self.plan_from = values, objective, source

    def record_round(self, bound: float, seconds: float, method: str) -> None:
        """One round's bound, best bound and plan: into the history and the log."""
        self.history.append(
            {
                "iteration": self.iterations,
                "bound": bound,
                "best_bound": self.lower_bound,
                "plan": self.objective,
                "seconds": seconds,
            }
        )
        log.info(
            "%s it %d: L %.2f best %.2f plan %.2f (%.1f s)",
            method,
            self.iterations,
            bound,
            self.lower_bound,
            self.objective,
            seconds,
        )


@dataclass(frozen=True)
class DecompositionSettings:
    time_limit_s: float = 60.0
    gap: float = 0.01  # stop when the plan is proven this close
    region_gap: float = 0.001  # each region MIP's own gap limit (its dual bound is used)
    primal_share: float = 0.3  # of the time limit kept for assembling a plan from regions
    max_iterations: int = 200
    # the relaxation in HiGHS up to this estimated size (0: never, cost-based prices)
    lp_start_max_vars: int = 2_000_000
    lp_share: float = 0.75  # of the time limit the relaxation may take
    # above this estimated size the relaxation is split by region (planner.ilp.split_lp):
    # the whole LP takes minutes on one core (the 20×30×4 rung: about 190 s of IPM)
    split_above_vars: int = 150_000
    # region groups of the split (None: one per region). Fewer, larger groups leave fewer
    # routes between groups to price (12×15×4 rung: the first bound 2.6 % under the
    # relaxation with 2 groups, 5.0 % with 4, for the same LP work) but dive slower: on the
    # 20×30×4 rung with 1 worker the two groups' dives did not finish in 300 s (no plan);
    # with 4 groups and 2 workers the first plan came after 100 s
    split_groups: int | None = 4
    # with at least two workers, the whole relaxation by interior point on one of them
    # beside the split's rounds (planner.ilp.split_portfolio.split_decompose): its bound, once
    # there, is the relaxation's optimum (on the 20×30×4 rung ~190 s on one core)
    split_portfolio: bool = True


def decompose(
    data: PlanningData, settings: DecompositionSettings, pool: Any
) -> DecompositionResult:
    """The module docstring's steps. ``pool``: a planner.ilp.parallel.RegionPool."""
    if data_size(data) > settings.split_above_vars:
        from planner.ilp.split_portfolio import split_decompose

        result: DecompositionResult = split_decompose(data, settings, pool)
        return result
    started = time.perf_counter()
    deadline = started + settings.time_limit_s
    out = DecompositionResult(-math.inf, 0, None, math.inf, workers=pool.workers)
    keys = served_keys(data)
    _, servable = niw_servable(data)
    pi = initial_prices(data, keys)
    mu = initial_niw_prices(data, servable)
    relax = None
    if data_size(data) <= settings.lp_start_max_vars:
        relax, prices = _relaxation_stage(
            data, out, started + settings.lp_share * settings.time_limit_s, deadline
        )
        if prices is not None:
            pi = {key: prices[0].get(key, p) for key, p in pi.items()}
            mu = {key: prices[1].get(key, p) for key, p in mu.items()}
            out.start = "LP duals (HiGHS)"
    if out.gap > settings.gap and time.perf_counter() < deadline:
        _Ascent(data, settings, pool, out, relax, deadline).run(pi, mu, started)
    out.seconds = time.perf_counter() - started
    log.info(
        "decomposition: plan %.2f (%s), bound %.2f (%s), gap %.3f %%, %.1f s",
        out.objective,
        out.plan_from,
        out.lower_bound,
        out.bound_from,
        100 * out.gap,
        out.seconds,
    )
    return out


def _relaxation_stage(
    data: PlanningData, out: DecompositionResult, lp_deadline: float, deadline: float
) -> tuple[Any, tuple[dict[Key, float], dict[Key, float]] | None]:
    """Steps 1 and 2: the relaxation (bound, prices) and the dive's plan."""
    from planner.ilp.build import create_model
    from planner.ilp.dive import dive, reround, trim
    from planner.ilp.highs_lp import HighsRelaxation

    began = time.perf_counter()
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    solved = relax.solve(lp_deadline - time.perf_counter(), "ipm")
    out.lp_seconds = time.perf_counter() - began
    if not solved.optimal or solved.x is None or solved.row_dual is None:
        log.info("decomposition: the relaxation did not finish (%s)", solved.status)
        return relax, None
    out.offer_bound(solved.bound, "LP relaxation (safe dual bound)")
    plan = dive(data, relax, relax.values(solved.x), deadline)
    if plan is not None:
        out.offer_plan(plan.values, plan.objective, plan.label)
        trimmed = reround(data, relax, trim(data, relax, plan, deadline), deadline)
        if trimmed is not plan:  # both return the plan itself when they changed nothing
            out.offer_plan(trimmed.values, trimmed.objective, f"{plan.label}, trimmed")
    pi: dict[Key, float] = {}
    mu: dict[Key, float] = {}
    for name, i in relax.row.items():
        if name.startswith("interactive_assign["):
            r, m, k, t = name[len("interactive_assign[") : -1].split(",")
            pi[(r, m, k, int(t))] = float(solved.row_dual[i])
        elif name.startswith("niw_balance["):
            m, t = name[len("niw_balance[") : -1].split(",")
            mu[(m, int(t))] = float(solved.row_dual[i])
    return relax, (pi, mu)


class _Ascent:
    """Step 3: subgradient ascent on L(π, μ) (planner.ilp.lagrange), the best bound kept,
    plans assembled from the regions; every region MIP stopped at ``deadline``."""

    def __init__(
        self,
        data: PlanningData,
        settings: DecompositionSettings,
        pool: Any,
        out: DecompositionResult,
        relax: Any,
        deadline: float,
    ) -> None:
        self.data, self.settings, self.pool, self.out = data, settings, pool, out
        self.relax, self.deadline = relax, deadline
        self.keys = served_keys(data)
        self.routing = Routing.of(data, self.keys)
        self.niw_all, self.servable = niw_servable(data)
        self.regions = sorted({r for r, _m, _g in data.placements()})
        self.by_region: dict[str, list[Key]] = defaultdict(list)
        for key in self.keys:
            self.by_region[key[0]].append(key)
        self.region_limit = max(2.0, settings.time_limit_s / 6)
        self.workers = max(1, int(pool.workers))
        self.wall_deadline = time.time() + (deadline - time.perf_counter())

    def round_limit(self, reserve: float = 0.0) -> float:
        """Each region's time limit in a round: its fair share of what is left (the regions
        of a round queue on the workers), at most ``region_limit``."""
        left = self.deadline - reserve - time.perf_counter()
        share = left * self.workers / max(1, len(self.regions))
        return max(0.0, min(self.region_limit, share))

    def assemble(self, results: list[RegionResult]) -> None:
        """The plan from region solutions: their counts fixed, one LP for the rest."""
        from planner.ilp.rounding import fixed_lp

        if any(not x.integers for x in results):
            return
        fixed: Values = {f: {} for f in INTEGER_FAMILIES}
        for x in results:
            for family, vals in x.integers.items():
                fixed[family].update(vals)
        left = self.deadline - time.perf_counter()
        if left <= 0.5:
            return
        lp_started = time.perf_counter()
        if self.relax is not None:
            solved = self.relax.fixed_count_plan(fixed, left, "ipm")
        else:
            solved = fixed_lp(self.data, fixed, left)
        self.out.assembly_seconds = time.perf_counter() - lp_started
        if solved is None:
            log.warning("decomposition: the fixed-count LP did not finish")
            return
        self.out.offer_plan(solved[0], solved[1], "regions")

    def solve(self, tasks: list[tuple[Any, ...]]) -> list[RegionResult]:
        results: list[RegionResult] = self.pool.solve(tasks)
        self.out.region_seconds += sum(x.seconds for x in results)
        return results

    def routed_solutions(self, pi: dict[Key, float]) -> list[RegionResult]:
        """Region MIPs with the demand F(π) routes to them as requirements (NIW at μ)."""
        _, inflow, _ = self.routing.price(self.data, pi)
        gap, limit = self.settings.region_gap * 5, self.round_limit()
        return self.solve(
            [
                (r, {}, {}, limit, gap, self.required(r, inflow), self.wall_deadline)
                for r in self.regions
            ]
        )

    def required(self, r: str, inflow: dict[Key, float]) -> dict[Key, float]:
        return {(m, k, t): inflow.get((r, m, k, t), 0.0) for (_r, m, k, t) in self.by_region[r]}

    def priced_round(
        self, pi: dict[Key, float], mu: dict[Key, float], limit: float
    ) -> tuple[float, list[RegionResult], dict[Key, float], dict[Key, float]]:
        """One round at (π, μ): L, the region results and the subgradient (g_π, g_μ)."""
        gap, by_region = self.settings.region_gap, self.by_region
        tasks = [
            (r, {key[1:]: pi[key] for key in by_region[r]}, mu, limit, gap, None)
            for r in self.regions
        ]
        results = self.solve([(*task, self.wall_deadline) for task in tasks])
        routed, inflow, _ = self.routing.price(self.data, pi)
        niw_value, s = niw_part(self.data, mu, self.niw_all, self.servable)
        bound = sum(x.dual_bound for x in results) + routed + niw_value
        g_pi = {key: inflow.get(key, 0.0) for key in self.keys}
        g_mu = dict(s)
        for x in results:
            for (m, k, t), w in x.served.items():
                g_pi[(x.region, m, k, t)] -= w
            for key, v in x.niw_served.items():
                g_mu[key] = g_mu.get(key, 0.0) - v
        return bound, results, g_pi, g_mu

    def first_round_below_relaxation(self, bound: float) -> bool:
        """The first round, at the relaxation's own prices (``LP duals`` start), bounds no
        higher than the relaxation: the region MIPs, cut off at their limits, have dual bounds
        weaker than their LPs, and the steps only leave the prices at which L is largest
        (8×10×3 rung: 5-9 rounds, none above the relaxation; plans assembled from them
        ~4,000× its cost), so further rounds are time lost."""
        out = self.out
        return out.iterations == 1 and out.start.startswith("LP duals") and bound <= out.lower_bound

    def polyak_step(self, bound: float, theta: float, norm2: float) -> float:
        """Polyak's step length towards the best plan's value (without a plan: the bound + a
        tenth of it), for a subgradient of squared norm ``norm2``."""
        best = self.out.lower_bound
        target = self.out.objective if math.isfinite(self.out.objective) else best + 0.1 * abs(best)
        return theta * max(target - bound, 1e-6 * abs(target)) / norm2

    def run(self, pi: dict[Key, float], mu: dict[Key, float], started: float) -> None:
        out, settings = self.out, self.settings
        best_prices = (dict(pi), dict(mu))
        primal_reserve = settings.primal_share * settings.time_limit_s
        if out.values is None and self.deadline - time.perf_counter() > 2 * primal_reserve:
            # the first plan: each demand routed where the cheapest serving cost sends it,
            # each region sized for what it receives (skipped when the time left is better
            # spent on a first bound: the relaxation took it)
            self.assemble(self.routed_solutions(pi))
        theta, stall = 1.0, 0
        while out.iterations < settings.max_iterations:
            # the first round always runs (a bound); later ones keep time for a plan if none
            reserve = primal_reserve if out.values is None and out.iterations > 0 else 0
            if time.perf_counter() >= self.deadline - reserve - 0.5:
                break
            bound, results, g_pi, g_mu = self.priced_round(pi, mu, self.round_limit(reserve))
            out.iterations += 1
            if not math.isfinite(bound):
                break  # a region was cut off by the deadline: no bound from this round
            if bound > out.lower_bound:
                best_prices, stall = (dict(pi), dict(mu)), 0
                theta = min(2.0, theta * 1.2)
            else:
                stall += 1
            if out.values is not None and self.first_round_below_relaxation(bound):
                log.info("decomposition: L at the relaxation's prices %.2f, rounds stopped", bound)
                return
            out.offer_bound(bound, "Lagrangian (region MIPs)")
            # a plan from this round's regions whenever the LP that assembles it is cheap
            if out.assembly_seconds < 0.05 * settings.time_limit_s:
                self.assemble(results)
            out.record_round(bound, time.perf_counter() - started, "decomposition")
            if out.gap <= settings.gap:
                break
            norm2 = sum(g * g for g in g_pi.values()) + sum(g * g for g in g_mu.values())
            if norm2 < 1e-12:
                break  # the relaxed solution satisfies the coupling rows: L = its value
            if stall >= 3:  # the steps overshoot: back to the best prices, shorter steps
                theta, stall = theta / 2, 0
                pi, mu = dict(best_prices[0]), dict(best_prices[1])
                continue
            step = self.polyak_step(bound, theta, norm2)
            pi = {key: p + step * g_pi[key] for key, p in pi.items()}
            mu = {key: p + step * g_mu.get(key, 0.0) for key, p in mu.items()}
        if out.gap > settings.gap and time.perf_counter() < self.deadline - 1.0:
            self.assemble(self.routed_solutions(best_prices[0]))
