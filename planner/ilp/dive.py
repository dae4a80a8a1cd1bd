"""A plan from the LP relaxation by diving: VM counts rounded up a few at a time, the LP
re-solved in between, then the rest rounded up and every other decision re-optimised.

Why not round everything at once: the relaxation holds a fraction of a VM in almost every
region, type and hour, and rounding all of them up buys the fractions everywhere (2.1–2.6 %
over the bound on the 8×10×3 rung). Rounding down instead leaves demand unmet (VMs are
scarce exactly where the LP put fractions). Diving rounds up only the counts already close to
the next integer (fractional part ≥ a threshold), fixes them, and lets the LP move load into
the spare capacity they bring, so that the remaining fractions shrink or vanish; the
threshold falls round by round. On the 8×10×3 rung: 0.9 % over the bound in seven warm-started
re-solves (each 0.1–1.3 s).

Each re-solve is a bound change on the relaxation held in HiGHS and a dual simplex warm start
from the previous basis (planner.ilp.highs_lp). The final plan fixes the VM counts and the
committed hours' instances (planner.ilp.rounding.round_up), the integer entries of the
program; instance capacity after the committed hours stays continuous, as in the program.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace

from planner.ilp.data import PlanningData
from planner.ilp.highs_lp import HighsRelaxation
from planner.ilp.rounding import round_up
from planner.ilp.variables import INSTANCE_FAMILIES, INTEGER_FAMILIES, VM_FAMILIES, Values

log = logging.getLogger(__name__)
# fractional part from which a VM count is rounded up and fixed, per dive round
THRESHOLDS = (0.7, 0.5, 0.35, 0.25, 0.15, 0.08, 0.03)
EPS = 1e-6


@dataclass(frozen=True)
class DivePlan:
    values: Values
    objective: float
    rounds: int  # dive rounds completed before the final rounding
    label: str  # "dive" or "rounding" (no round completed)


def integer_entries(data: PlanningData, counts: Values) -> Values:
    """The integer entries of rounded counts: VM counts, and instances of committed hours."""
    vms = {f: dict(counts[f]) for f in VM_FAMILIES}
    return vms | {
        f: {k: v for k, v in counts[f].items() if data.committed(k[3])} for f in INSTANCE_FAMILIES
    }


def rounded_plan(
    data: PlanningData, relax: HighsRelaxation, lp: Values, deadline: float
) -> tuple[Values, float] | None:
    """Round ``lp`` up (planner.ilp.rounding.round_up), fix the integer entries, re-optimise
    the rest within the time left; None if that LP does not finish."""
    counts = integer_entries(data, round_up(data, lp))
    return relax.fixed_count_plan(counts, deadline - time.perf_counter())


def dive(
    data: PlanningData,
    relax: HighsRelaxation,
    lp: Values,
    deadline: float,
    final_share: float = 0.4,
) -> DivePlan | None:
    """The dive of the module docstring from the LP solution ``lp`` (plan units), stopped
    when a round would eat into the time kept for the final fixed-count LP (``final_share``
    of what is left at the start, or what the last round took, whichever is more). None if
    no plan finished before ``deadline``."""
    started = time.perf_counter()
    keep = final_share * (deadline - started)
    fixed: Values = {f: {} for f in VM_FAMILIES}
    current, rounds, last = lp, 0, 0.0
    for threshold in THRESHOLDS:
        left = deadline - time.perf_counter() - max(keep, last)
        if left <= 0:
            break
        newly = 0
        for family in VM_FAMILIES:
            for key, value in current[family].items():
                if key in fixed[family]:
                    continue
                frac = value - math.floor(value + EPS)
                if frac < EPS or frac >= threshold:
                    fixed[family][key] = float(math.ceil(value - EPS))
                    newly += 1
        if newly == 0:
            continue
        relax.fix_counts(fixed)
        try:
            solved = relax.solve(left, "simplex")
        finally:
            relax.release()
        last = solved.seconds
        if not solved.optimal or solved.x is None:
            log.info("dive round %d: %s; rounding from the last LP", rounds + 1, solved.status)
            break
        current = relax.values(solved.x)
        rounds += 1
        log.info("dive round %d: %d counts fixed, LP %.2f", rounds, newly, solved.objective)
    plan = rounded_plan(data, relax, current, deadline)
    if plan is None and rounds > 0:
        plan = rounded_plan(data, relax, lp, deadline)  # the plain rounding, if time is left
        rounds = 0
    return None if plan is None else DivePlan(*plan, rounds, "dive" if rounds else "rounding")


def trim(data: PlanningData, relax: HighsRelaxation, plan: DivePlan, deadline: float) -> DivePlan:
    """The plan's VMs trimmed where the load fits in the others (the repair after rounding).

    The relaxation is re-solved with the committed hours' instances held and every VM count
    bounded above by the plan's, ``0 ≤ y ≤ ŷ`` (the LP may move load between hours, regions
    and types to free VMs, paying only for the fraction it keeps); a count whose LP value
    ``ȳ`` leaves at least one whole VM idle, ``⌈ȳ⌉ < ŷ``, is lowered to ``⌈ȳ⌉``, and the
    plan with those counts fixed and everything else re-optimised is kept if cheaper. The
    box's solution is feasible for it (``ȳ ≤ ⌈ȳ⌉``), and one pass is all there is: with
    the lowered caps the box's optimum stays where it was. Interior point for the box (the
    8×10×3 rung: 1.7 s against 8.7 s of dual simplex warm from the plan's basis; primal
    simplex did not finish in 60 s); lowering fractions under 0.1 as well gained 0.01 %,
    under 0.25 cost 10 %."""
    counts = integer_entries(data, {f: plan.values[f] for f in INTEGER_FAMILIES})
    held = {f: counts[f] for f in INSTANCE_FAMILIES}
    box = _box_point(relax, held, {f: counts[f] for f in VM_FAMILIES}, deadline)
    if box is None:
        return plan
    lowered = {f: {k: float(math.ceil(box[f][k] - EPS)) for k in counts[f]} for f in VM_FAMILIES}
    n = sum(lowered[f][k] < counts[f][k] for f in VM_FAMILIES for k in counts[f])
    if n == 0:
        return plan
    got = relax.fixed_count_plan({**counts, **lowered}, deadline - time.perf_counter())
    log.info("trim: %d VM counts lowered, plan %s", n, None if got is None else f"{got[1]:.2f}")
    if got is None or got[1] >= plan.objective:
        return plan
    return replace(plan, values=got[0], objective=got[1])


def _box_point(
    relax: HighsRelaxation,
    held: Values,
    caps: Values,
    deadline: float,
) -> Values | None:
    """The relaxation's optimum with ``held`` entries fixed and ``caps`` as upper bounds
    (interior point; the bounds released afterwards), or None when it does not solve."""
    relax.fix_counts(held, caps)
    try:
        solved = relax.solve(deadline - time.perf_counter(), "ipm")
    finally:
        relax.release()
    if not solved.optimal or solved.x is None:
        return None
    return relax.values(solved.x)


def reround(
    data: PlanningData, relax: HighsRelaxation, plan: DivePlan, deadline: float
) -> DivePlan:
    """The plan rounded again from inside its own box (the second repair after rounding,
    after :func:`trim`): the relaxation re-solved with every integer entry, the committed
    hours' instances included, bounded above by the plan's (interior point), its point
    rounded up (planner.ilp.rounding.round_up: instances up, VMs sized to them, so never
    above the plan's) and everything else re-optimised; kept if cheaper. Where trim holds
    the committed instances, this lets the LP consolidate them. 8×10×3 rung: after trim
    0.69 → 0.62 % over the bound (from the dive without trim 0.80 %: the two differ);
    the same on each group's LP is planner.ilp.split_tasks.trim_block."""
    counts = integer_entries(data, {f: plan.values[f] for f in INTEGER_FAMILIES})
    box = _box_point(relax, {}, counts, deadline)
    if box is None:
        return plan
    got = rounded_plan(data, relax, box, deadline)
    log.info("reround: plan %.2f → %s", plan.objective, None if got is None else f"{got[1]:.2f}")
    if got is None or got[1] >= plan.objective:
        return plan
    return replace(plan, values=got[0], objective=got[1])
