"""The split relaxation's rounds within the time limit (planner.ilp.split_lp has the
algebra): Lagrangian rounds on the region blocks, primal rounds (group dives) from their
points and, with two workers or more, the whole relaxation on one of them beside the rounds
(the portfolio)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from planner.ilp import split_primal as primal_round
from planner.ilp.data import PlanningData
from planner.ilp.highs_lp import WHOLE_SOLVER, HighsRelaxation
from planner.ilp.polish import Polisher, polish_plan, violation
from planner.ilp.split_lp import Split
from planner.ilp.split_primal import NIW_BLOCK
from planner.ilp.split_tasks import BlockSolution, solve_priced, solve_primal, solve_whole

log = logging.getLogger(__name__)
# the plan's bound_source: the whole LP's duals, by the solver that gave them
WHOLE_LP_BOUND = f"LP relaxation (whole, {WHOLE_SOLVER} duals; safe dual bound)"
# the whole LP's duals with blocks re-solved at its coupling duals (SplitRun.refine)
REFINED_BOUND = "LP relaxation (whole, blocks re-solved at its coupling duals; safe dual bound)"
# kept after the block re-solves: the bound's arithmetic (~1-2 s on the 20×30×4 rung) and
# the pool's start before this run's clock (the plan's solve time counts it)
REFINE_RESERVE_S = 6.0
# the portfolio's worker dives on the whole relaxation after its interior point, until this
# long before the limit (the plan's assembly and checks in this process). Off: on the
# 20×30×4 rung the interior point ended at ~220 s and the dive of the 672k-column LP did
# one round in 43 s and no final LP in 29 more; the group dives from its point on both
# workers take ~36 s
WHOLE_DIVE = False
WHOLE_DIVE_RESERVE_S = 8.0
ASSEMBLY_S = 5.0  # kept after a portfolio's group dives: the NIW schedule and the assembly
MIN_DIVE_S = 15.0  # least time left for the group dives from the whole relaxation's point


def split_decompose(data: PlanningData, settings: Any, pool: Any) -> Any:
    """The rounds within ``settings.time_limit_s``: a Lagrangian round at cost-based prices,
    a primal round from its point (the first plan), then Lagrangian rounds (sign steps)
    with a primal round from the best bound's point every third round when the bound rose.

    The portfolio (``settings.split_portfolio`` and at least two workers): the whole
    relaxation is solved by interior point on one worker from the start, beside the first
    Lagrangian round and plan on the others. Its bound (checked from its row duals by
    HighsRelaxation.dual_bound, like any other) is the best any prices can give, so no
    further Lagrangian rounds run: the workers are kept free for the primal round from its
    point when it finishes (with ``WHOLE_DIVE``, its worker dives on it first). If it does
    not finish, the first round's bound and plan stand. Returns a
    planner.ilp.decompose.DecompositionResult."""
    return SplitRun(data, settings, pool).solve()


class SplitRun:
    """One run of :func:`split_decompose`."""

    def __init__(self, data: PlanningData, settings: Any, pool: Any) -> None:
        from planner.ilp.build import create_model
        from planner.ilp.decompose import DecompositionResult

        self.data, self.settings, self.pool = data, settings, pool
        self.started = time.perf_counter()
        self.deadline = self.started + settings.time_limit_s
        self.wall_deadline = time.time() + settings.time_limit_s
        out = DecompositionResult(-math.inf, 0, None, math.inf, workers=pool.workers)
        out.start = "cost-based prices, then sign steps"
        out.subproblems = "region LPs (the relaxation split by region)"
        self.out = out
        self.relax = relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
        self.whole: Any = None
        if getattr(settings, "split_portfolio", False) and int(pool.workers) >= 2:
            dive_until = self.wall_deadline - WHOLE_DIVE_RESERVE_S if WHOLE_DIVE else 0.0
            task = (Split.whole_block(relax), self.left(), self.wall_deadline, dive_until)
            self.whole = pool.submit(solve_whole, task)
            log.info(
                "split: the whole relaxation sent at %.1f s", time.perf_counter() - self.started
            )
            out.start = (
                f"the whole relaxation ({WHOLE_SOLVER}, one worker) beside cost-based prices"
            )
        self.split = split = Split.of(relax, settings.split_groups)
        out.lp_seconds = time.perf_counter() - self.started
        self.regions = [b for b in split.blocks if b.name != NIW_BLOCK]
        # the polish's program (sharing the relaxation's matrix) and windows, built once at
        # the first offer, inside its guard (:meth:`polisher`)
        self._polisher: Polisher | None = None
        self.polisher_failed = False
        shape = (len(relax.cost), len(relax.row_lo), len(split.coupling), len(split.blocks))
        log.info(
            "split: %d columns, %d rows, %d coupling rows, %d blocks, %.1f s",
            *shape,
            out.lp_seconds,
        )
        del relax.built.model  # the SCIP model is not needed again (memory)
        relax.h.clearModel()  # nor HiGHS's copy: the split works on the arrays
        self.first_plan_s, self.first_slots = 0.0, 1
        self.polish_s = 0.0  # seconds the polish took (not the dives' time: the guard's)

    def left(self) -> float:
        return float(self.deadline - time.perf_counter())

    def slots(self) -> int:
        """Workers free for the split's tasks (one holds the whole relaxation until done)."""
        busy = self.whole is not None and not self.whole.done()
        return max(1, int(self.pool.workers) - int(busy))

    def run(self, fn: Any, tasks: list[tuple[Any, ...]], at_start: Any = None) -> list[Any]:
        """``fn`` on every task, results in task order. In the portfolio at most
        :meth:`slots` tasks are in flight (a task queued behind the whole relaxation would
        hold a worker after it), and ``at_start(task, tasks not yet started)`` may rewrite
        a task as it starts (its time limit)."""
        if self.whole is None:
            return list(self.pool.map(fn, tasks))
        results: list[Any] = [None] * len(tasks)
        pending = list(enumerate(tasks))
        running: dict[int, Any] = {}
        while pending or running:
            while pending and len(running) < self.slots():
                i, task = pending.pop(0)
                task = at_start(task, len(pending)) if at_start else task
                running[i] = self.pool.submit(fn, task)
            for i, f in list(running.items()):
                if f.done():
                    results[i] = f.result()
                    del running[i]
            time.sleep(0.02)
        return results

    def lagrange(self, y_c: np.ndarray) -> tuple[float, np.ndarray, list[BlockSolution]]:
        """L(y_C) from the blocks at the priced costs, its point and the solutions."""
        split = self.split
        costs = split.priced_costs(y_c)
        limit = self.left()
        tasks = [
            (b, c, limit, self.wall_deadline) for b, c in zip(split.blocks, costs, strict=True)
        ]
        sols: list[BlockSolution] = self.run(solve_priced, tasks)
        self.out.region_seconds += sum(x.seconds for x in sols)
        self.out.iterations += 1
        bound = split.bound(y_c, sols) if all(x.x is not None for x in sols) else -math.inf
        return bound, split.point(sols), sols

    def dive_limit(self, task: tuple[Any, ...], waiting: int) -> tuple[Any, ...]:
        """A group's dive as it starts in the portfolio: its rounds get the fair share of
        the time left, its LPs up to the time left less 20 s for each dive still waiting
        per free worker. Groups' dives differ (on the 20×30×4 rung one needed more than
        the fair share of 57 s while the others took ~15-25 s), and a plan needs every
        group's."""
        left, slots = self.left(), self.slots()
        share = left * slots / (waiting + 1)
        hard = max(share, left - 20.0 * waiting / slots)
        return (task[0], task[1], share, min(self.wall_deadline - ASSEMBLY_S, time.time() + hard))

    def primal(self, x_bar: np.ndarray, source: str) -> None:
        """A plan from the point ``x_bar``, offered if every group's dive finished."""
        began, split = time.perf_counter(), self.split
        extras = primal_round.localised(split, self.data, x_bar)
        # each group's fair share of the time left (the groups queue on the workers)
        share = self.left() * self.slots() / max(1, len(self.regions))
        tasks = [
            (b, e, share, self.wall_deadline) for b, e in zip(self.regions, extras, strict=True)
        ]
        sols: list[BlockSolution] = self.run(solve_primal, tasks, self.dive_limit)
        self.out.region_seconds += sum(x.seconds for x in sols)
        log.info(
            "split: %s: the groups' dives %s s, shortfall cost %s",
            source,
            [round(x.seconds, 1) for x in sols],
            primal_round.shortfall_costs(split, sols, extras),
        )
        if any(x.x is None for x in sols) or self.left() <= 0:
            log.info("split: a region's dive did not finish: %s", [x.status for x in sols])
            return
        self.assemble(sols, extras, source)
        self.out.assembly_seconds += time.perf_counter() - began

    def assemble(self, sols: list[BlockSolution], extras: list[Any], source: str) -> None:
        """The NIW block's schedule at the groups' service, then the whole point."""
        split = self.split
        region_x = split.point([*sols, BlockSolution(NIW_BLOCK, "", None, None)])
        extra = primal_round.niw_localised(split, region_x)
        niw = solve_primal(self.data, split.blocks[-1], extra, self.left(), dive=False)
        if niw.x is None or (niw.slack is not None and niw.slack.max(initial=0) > 1e-7):
            log.info("split: the NIW schedule does not close (%s)", niw.status)
            return
        self.offer(primal_round.assemble(split, sols, extras, niw), source)

    def polisher(self) -> Polisher | None:
        """The polish's program and windows, built at the first call; None once a build
        has failed (it raised there, in :meth:`offer`'s guard, and is not tried again)."""
        if self._polisher is None and not self.polisher_failed:
            began, self.polisher_failed = time.perf_counter(), True  # until it is built
            self._polisher = Polisher.of(self.relax, self.split.family_key)
            self.polisher_failed = False
            log.info("split: the polish's program built in %.2f s", time.perf_counter() - began)
        return self._polisher

    def offer(self, x: np.ndarray, source: str) -> None:
        """The plan at ``x``, if it holds every row and column bound, polished first
        (planner.ilp.polish); a polish that fails, its program's build included (e.g.
        memory on a large rung), leaves the plan as made (logged), never loses it; the
        check reads the relaxation's arrays either way."""
        began = time.perf_counter()
        try:
            polisher = self.polisher()
            if polisher is not None:
                x, source = polish_plan(polisher, x, source, self.deadline, self.whole)
        except Exception:  # e.g. memory on a large window: the plan stands as made
            log.exception("split: the polish failed; the plan is offered as made")
        self.polish_s += time.perf_counter() - began
        viol = violation(self.relax, x)  # the polish's program shares these arrays
        objective = self.relax.objective_of(x)
        log.info("split: plan %.2f from %s, largest violation %.2e", objective, source, viol)
        log.info("split: its cost by family %s", primal_round.family_costs(self.split, x))
        if viol <= 1e-5:
            self.out.offer_plan(primal_round.values(self.split, x), objective, source)

    def take_whole(self) -> None:
        """The whole relaxation's bound, its dive's plan, and with time left the group
        dives from its point (the portfolio)."""
        out = self.out
        try:
            sol: BlockSolution = self.whole.result()
        except Exception:  # a worker lost (memory, Dask): the rounds' bound and plans stand
            log.exception("split: the whole relaxation failed")
            return
        log.info(
            "split: the whole relaxation: %s, %.1f s (interior point %.1f s, dive %d rounds%s)",
            *(sol.status, sol.seconds, sol.lp_seconds, sol.dive_rounds),
            "" if sol.plan is not None else ", no plan",
        )
        out.region_seconds += sol.seconds
        if sol.row_dual is None or sol.x is None:
            return
        bound = self.relax.dual_bound(sol.row_dual)
        out.offer_bound(bound, WHOLE_LP_BOUND)
        log.info(
            "split: its point's cost by family %s", primal_round.family_costs(self.split, sol.x)
        )
        if sol.plan is not None:
            self.offer(sol.plan, "the whole relaxation's dive")
        out.record_round(out.lower_bound, time.perf_counter() - self.started, "split whole LP")
        # its dives on every worker take about the first plan's time × its slots / workers:
        # started only if that fits (the 20×30×4 rung: ~75 s expected, 16 s left, all cut
        # off); else the time left raises the bound (:meth:`refine`). With no plan yet they
        # are tried whenever MIN_DIVE_S is left (a plan before a bound: review)
        expected = self.first_plan_s * self.first_slots / max(1, int(self.pool.workers))
        log.info("split: %.0f s left, its dives expected to take %.0f s", self.left(), expected)
        need = MIN_DIVE_S if out.values is None else max(MIN_DIVE_S, expected)
        if self.left() > need and out.gap > self.settings.gap:
            self.primal(sol.x, "group dives from the whole relaxation's point")
        if out.gap > self.settings.gap:
            self.refine(sol.row_dual, sol.x)

    def refine(self, y: np.ndarray, x: np.ndarray) -> None:
        """The whole relaxation's bound raised with the time left: at the prices its duals
        ``y`` set on the coupling rows, the blocks whose part of the bound lies furthest
        under their part of the objective at its point ``x`` are solved exactly
        (Split.refined; interior point on the implied box), in that order on every worker,
        until ``REFINE_RESERVE_S`` before the limit; a block not solved in time keeps
        ``y``'s duals, so this never lowers the bound. The whole LP stops at a loose
        tolerance (planner.ilp.highs_lp.whole_lp_options): on the 20×30×4 rung its bound
        is 0.03 % under the LP (PDLP at 1e-4; IPX's 2e-2 was 0.4 %)."""
        split, began = self.split, time.perf_counter()
        losses = split.block_losses(y, x)
        y_c = split.project(y[split.coupling])
        worth = [b for b in np.argsort(-losses) if losses[b] > 1e-6 * abs(self.out.lower_bound)]
        until = self.wall_deadline - REFINE_RESERVE_S
        if not worth or until - time.time() <= 1.0:
            return
        blocks, costs = split.boxed_blocks(), split.priced_costs(y_c)
        tasks = [(blocks[b], costs[b], until - time.time(), until, False) for b in worth]
        sols: list[Any] = [None] * len(blocks)
        for b, sol in zip(worth, self.run(solve_priced, tasks), strict=True):
            sols[b] = sol
        bound = self.relax.dual_bound(split.refined(y, sols))
        log.info(
            "split: blocks re-solved at the whole LP's coupling duals: losses %s, %s, "
            "bound %.2f, %.1f s",
            [round(float(v)) for v in losses],
            [None if s is None else (s.status, round(s.seconds, 1)) for s in sols],
            bound,
            time.perf_counter() - began,
        )
        self.out.offer_bound(bound, REFINED_BOUND)

    def solve(self) -> Any:
        """Round 1 at cost-based prices and the first plan from its point, the rounds, then
        the whole relaxation's result."""
        out, whole = self.out, self.whole
        y = self.split.initial_prices(self.data)
        bound, x, _ = self.lagrange(y)
        out.offer_bound(bound, "Lagrangian (region LPs)")
        self.first_slots, began = self.slots(), time.perf_counter()
        if self.left() > 0:
            self.primal(x, "regions (split LP dives)")
        self.first_plan_s = time.perf_counter() - began - self.polish_s  # the dives' time
        if whole is None:
            self.rounds(y, x, bound)
        else:  # both workers free for the dives from the whole relaxation's point when it ends
            out.record_round(bound, time.perf_counter() - self.started, "split")
        if whole is not None:
            while not whole.done() and self.left() > 0:
                time.sleep(0.05)
            if whole.done():
                self.take_whole()
            else:
                whole.cancel()
                log.info("split: the whole relaxation did not finish in time")
        out.seconds = time.perf_counter() - self.started
        return out

    def rounds(self, y: np.ndarray, x: np.ndarray, bound: float) -> None:
        """Lagrangian rounds by sign steps, each price moved by a share of its cost-based
        size (on the 12×15×4 rung they raised the bound where Polyak's steps towards the
        plan did not), until the gap or the limit (without the portfolio)."""
        out, split = self.out, self.split
        best_y, best_x, theta, stall = y, x, 0.0125, 0
        scale = np.maximum(np.abs(y), 1e-3 * float(np.abs(y).max(initial=1.0)))
        improved = False
        while self.left() > 0 and out.iterations < self.settings.max_iterations:
            out.record_round(bound, time.perf_counter() - self.started, "split")
            if out.gap <= self.settings.gap:
                break
            if out.iterations % 3 == 0 and improved:
                # a plan from the best bound's point (the average's plans cost 47-60 % more
                # on the 20×30×4 rung: its NIW shares mix rounds)
                self.primal(best_x, "regions (split LP dives)")
                improved = False
            if stall:  # back to the best prices, shorter steps
                theta, y, x = theta / 2, best_y, best_x
            g = split.subgradient(x, y)
            if not np.any(g):
                break
            y = split.project(y + theta * scale * np.sign(g))
            if self.left() <= 0:
                break
            bound, x, _ = self.lagrange(y)
            if bound > out.lower_bound:
                best_y, best_x, stall, improved = y, x, 0, True
                theta = min(0.1, theta * 1.5)
            else:
                stall = 1
            out.offer_bound(bound, "Lagrangian (region LPs)")
