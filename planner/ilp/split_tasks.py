"""The split relaxation's tasks, run in the workers (planner.ilp.split_lp has the algebra):
a block's LP at priced costs, a block with its coupling localised and its dive to integer
counts, and the whole relaxation (first-order PDLP) followed by its own dive."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from planner.ilp.data import PlanningData
from planner.ilp.highs_lp import whole_lp_options
from planner.ilp.variables import INTEGER_FAMILIES, VM_FAMILIES, Values

log = logging.getLogger(__name__)
THRESHOLDS = (0.7, 0.5, 0.3, 0.15, 0.05)  # the dive's rounding-up thresholds, per round


@dataclass(frozen=True)
class Block:
    """One block's LP: its columns and rows (indices into the whole relaxation), the
    sub-matrix, bounds and costs; ``integers``: (family, key, local column) of its x, xs,
    y, z (what the dive rounds)."""

    name: str
    cols: np.ndarray
    rows: np.ndarray
    regions: frozenset[str]
    matrix: sparse.csc_matrix
    cost: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    row_lo: np.ndarray
    row_hi: np.ndarray
    integers: tuple[tuple[str, tuple[Any, ...], int], ...] = ()


@dataclass(frozen=True)
class Localised:
    """Coupling rows held inside one block for a primal round: rows over the block's
    columns with bounds, one shortfall column per row (coefficient, cost) and one surplus
    column per row (the opposite coefficient, up to ``surplus_hi`` at ``surplus_cost``:
    NIW served beyond the row's target, valued at the backlog it saves)."""

    matrix: sparse.csr_matrix
    lo: np.ndarray
    hi: np.ndarray
    slack_coef: np.ndarray
    slack_cost: np.ndarray
    fixed_cols: np.ndarray  # local columns held at ``fixed_vals`` (flows routed away)
    fixed_vals: np.ndarray
    row_ids: np.ndarray  # the coupling row (index into Split.coupling) each row localises
    surplus_hi: np.ndarray | None = None  # None: no surplus on any row
    surplus_cost: np.ndarray | None = None

    def bounds(self, block: Block) -> tuple[np.ndarray, np.ndarray]:
        """Column bounds of the block with these rows: its own (flows routed away held),
        then the shortfalls, then the surpluses."""
        k = len(self.lo)
        lo, hi = block.col_lo.copy(), block.col_hi.copy()
        lo[self.fixed_cols] = self.fixed_vals
        hi[self.fixed_cols] = self.fixed_vals
        extra_hi = [np.full(k, np.inf)]
        if self.surplus_hi is not None:
            extra_hi.append(self.surplus_hi)
        tail = np.concatenate(extra_hi)
        return np.concatenate([lo, np.zeros(len(tail))]), np.concatenate([hi, tail])

    def columns(self) -> tuple[sparse.csc_matrix, np.ndarray]:
        """The shortfall (and surplus) columns over these rows, and their costs."""
        k = len(self.lo)
        eye = sparse.diags(self.slack_coef, format="csc", shape=(k, k))
        if self.surplus_hi is None or self.surplus_cost is None:
            return eye, self.slack_cost
        return sparse.hstack([eye, -eye]).tocsc(), np.concatenate(
            [self.slack_cost, self.surplus_cost]
        )


@dataclass(frozen=True)
class BlockSolution:
    name: str
    status: str
    x: np.ndarray | None
    row_dual: np.ndarray | None  # the block's own rows (then the localised rows, primal)
    slack: np.ndarray | None = None
    seconds: float = 0.0
    dive_rounds: int = 0
    plan: np.ndarray | None = None  # the whole relaxation's dived point (solve_whole)
    lp_seconds: float = 0.0  # solve_whole: the interior point's part of ``seconds``


def _highs(block: Block, cost: np.ndarray, extra: Localised | None = None) -> Any:
    import highspy

    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    matrix, row_lo, row_hi = block.matrix, block.row_lo, block.row_hi
    col_lo, col_hi = block.col_lo, block.col_hi
    if extra is not None:
        slack, slack_cost = extra.columns()
        top = sparse.hstack([matrix, sparse.csc_matrix((matrix.shape[0], slack.shape[1]))])
        bottom = sparse.hstack([extra.matrix.tocsc(), slack])
        matrix = sparse.vstack([top, bottom]).tocsc()
        row_lo = np.concatenate([row_lo, extra.lo])
        row_hi = np.concatenate([row_hi, extra.hi])
        cost = np.concatenate([cost, slack_cost])
        col_lo, col_hi = extra.bounds(block)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = matrix.shape[1], matrix.shape[0]
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_, lp.col_upper_ = col_lo, col_hi
    lp.row_lower_, lp.row_upper_ = row_lo, row_hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = matrix.indptr
    lp.a_matrix_.index_ = matrix.indices
    lp.a_matrix_.value_ = matrix.data
    h.passModel(lp)
    return h


def _run(h: Any, method: str, time_limit_s: float) -> tuple[str, np.ndarray | None, Any]:
    h.setOptionValue("solver", method)
    # HiGHS's time limit counts its run time over every run of ``h`` (a dive's re-solves)
    h.setOptionValue("time_limit", h.getRunTime() + max(float(time_limit_s), 0.01))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    sol = h.getSolution()
    x = np.asarray(sol.col_value, dtype=float) if status == "Optimal" else None
    return status, x, sol


def solve_priced(
    data: PlanningData,
    block: Block,
    cost: np.ndarray,
    time_limit_s: float,
    deadline: float | None = None,
    crossover: bool = True,
) -> BlockSolution:
    """Block ``block`` at the priced costs ``cost``: its point and row duals (interior point,
    cold: the result does not depend on which worker ran it; without ``crossover`` when only
    the duals are wanted, as the bound is safe from any)."""
    started = time.perf_counter()
    limit = time_limit_s if deadline is None else min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    h = _highs(block, cost)
    if not crossover:
        h.setOptionValue("run_crossover", "off")
    status, x, sol = _run(h, "ipm", limit)
    y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
    return BlockSolution(block.name, status, x, y, seconds=time.perf_counter() - started)


def solve_primal(
    data: PlanningData,
    block: Block,
    extra: Localised,
    time_limit_s: float,
    deadline: float | None = None,
    dive: bool = True,
) -> BlockSolution:
    """Block ``block`` with the coupling fixed (``extra``): the LP (its duals are the
    prices a primal round yields) and, with ``dive``, the dive to integer counts (module
    docstring). ``x`` is the dived point (the LP's without ``dive``), slack the
    shortfalls. The dive's rounds stop at 80 % of ``time_limit_s``; the LPs a plan needs
    (the first, the final fixed-count one) may run on to ``deadline`` (wall clock)."""
    started = time.perf_counter()
    hard = time_limit_s if deadline is None else deadline - time.time()
    limit = min(time_limit_s, hard)
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    h = _highs(block, block.cost, extra)
    status, x, sol = _run(h, "ipm" if len(block.cols) > 5000 else "simplex", hard)
    if x is None:
        return BlockSolution(block.name, status, None, None, seconds=time.perf_counter() - started)
    y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
    n = len(block.cols)
    rounds = 0
    if dive:
        # the rounds until 80 % of the limit, the trim until the limit, the LPs a plan
        # needs until the hard end
        ends = (started + 0.8 * limit, started + limit, started + hard)
        st, x, rounds = dive_block(data, h, block, x, extra.bounds(block), ends)
        if x is None:  # its time counts like a finished dive's (the run's log, its seconds)
            seconds = time.perf_counter() - started
            return BlockSolution(block.name, f"dive: {st}", None, y, seconds=seconds)
    log.info(
        "block %s: LP and dive %.1f s of %.1f (%d rounds)",
        block.name,
        time.perf_counter() - started,
        limit,
        rounds,
    )
    return BlockSolution(
        block.name,
        status,
        x[:n],
        y,
        slack=x[n : n + len(extra.lo)],
        seconds=time.perf_counter() - started,
        dive_rounds=rounds,
    )


def dive_block(
    data: PlanningData,
    h: Any,
    block: Block,
    x: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    ends: tuple[float, float, float],
) -> tuple[str, np.ndarray | None, int]:
    """The dive of the module docstring on the LP held in ``h`` (solved, at ``x``; its
    column ``bounds`` when nothing is fixed): VM counts near the next integer rounded up
    and fixed, re-solved warm, round by round until ``ends[0]`` (perf_counter); then
    the rest rounded up (:func:`fix_rounded`) and the continuous decisions re-optimised,
    by ``ends[2]``; then, if that is done before ``ends[0]``, :func:`trim_block` until
    ``ends[1]`` (its own budget, short of ``ends[2]``: on the 20×30×4 rung a trim started
    later ran the last group past the assembly's time and no plan was assembled). The
    status, the dived point (None if the last LP did not finish) and the rounds done."""
    lo0, hi0 = bounds
    rounds_end, trim_end, end = ends
    x, rounds = dive_rounds(h, x, block, (lo0, hi0), rounds_end)
    h.changeColsBounds(len(lo0), np.arange(len(lo0), dtype=np.int32), lo0, hi0)
    st, nx, cols = fix_rounded(data, h, block, x, max(end - time.perf_counter(), 1.0))
    if nx is not None and time.perf_counter() < rounds_end:
        nx = trim_block(data, h, block, nx, cols, lo0, min(trim_end, end))
    return st, nx, rounds


def dive_rounds(
    h: Any, x: np.ndarray, block: Block, bounds: tuple[np.ndarray, np.ndarray], until: float
) -> tuple[np.ndarray, int]:
    """The dive's rounds (module docstring) on the LP held in ``h`` (solved, at ``x``, its
    columns within ``bounds``) until ``until`` (perf_counter): the last point and the
    rounds done. ``h`` is left with the rounded VM counts fixed."""
    lo, hi = bounds
    vm_cols = np.asarray([j for f, _k, j in block.integers if f in VM_FAMILIES], dtype=np.int32)
    fixed = np.zeros(len(lo), dtype=bool)
    rounds = 0
    for threshold in THRESHOLDS:
        if time.perf_counter() > until:
            break
        vals = x[vm_cols]
        frac = vals - np.floor(vals + 1e-6)
        pick = vm_cols[((frac < 1e-6) | (frac >= threshold)) & ~fixed[vm_cols]]
        if len(pick) == 0:
            continue
        up = np.minimum(np.ceil(x[pick] - 1e-6), hi[pick])
        h.changeColsBounds(len(pick), pick, up, up)
        fixed[pick] = True
        _st, nx, _ = _run(h, "simplex", until - time.perf_counter())
        if nx is None:
            h.changeColsBounds(len(pick), pick, lo[pick], hi[pick])
            break
        x, rounds = nx, rounds + 1
    return x, rounds


def fix_rounded(
    data: PlanningData, h: Any, block: Block, x: np.ndarray, limit: float
) -> tuple[str, np.ndarray | None, np.ndarray]:
    """The block's integer entries at ``x`` rounded up (planner.ilp.rounding.round_up) and
    fixed in ``h``, the rest re-optimised (simplex, warm): the status, the point (None if
    the LP did not finish) and the fixed columns (``h`` keeps them fixed)."""
    from planner.ilp.dive import integer_entries
    from planner.ilp.rounding import round_up

    counts: Values = {f: {} for f in INTEGER_FAMILIES}
    for family, key, j in block.integers:
        counts[family][key] = float(x[j])
    final = integer_entries(data, round_up(data, counts))
    pairs = [(j, final[f][k]) for f, k, j in block.integers if k in final[f]]
    cols = np.asarray([j for j, _v in pairs], dtype=np.int32)
    vals = np.asarray([v for _j, v in pairs], dtype=float)
    h.changeColsBounds(len(cols), cols, vals, vals)
    st, nx, _ = _run(h, "simplex", limit)
    if nx is not None:
        nx[cols] = vals
    return st, nx, cols


def trim_block(
    data: PlanningData,
    h: Any,
    block: Block,
    x: np.ndarray,
    cols: np.ndarray,
    lo0: np.ndarray,
    end: float,
) -> np.ndarray:
    """The repair after rounding (planner.ilp.dive.trim, extended to the committed
    instances) on the LP held in ``h`` (solved at ``x``, its integer entries ``cols``
    fixed): every integer entry boxed to ``[lo0, x]``, the box solved by interior point,
    its point rounded up again (:func:`fix_rounded`: every entry at most ``x``'s) and the
    rest re-optimised; the cheaper point by ``h``'s costs (shortfalls included). ``h`` is
    left with the kept point's entries fixed."""
    log.info("trim: %d integer entries, %.1f s left", len(cols), end - time.perf_counter())
    held = x[cols].copy()
    h.changeColsBounds(len(cols), cols, lo0[cols], held)
    _st, box, _ = _run(h, "ipm", end - time.perf_counter())
    if box is None:
        h.changeColsBounds(len(cols), cols, held, held)
        return x
    # rounded up plainly, not dived: the dive's rounds from the box's point fixed the
    # counts where they were (6×8×3 rung); round_up sizes the VMs to the instances
    _st, nx, _cols = fix_rounded(data, h, block, box, end - time.perf_counter())
    cost = np.asarray(h.getLp().col_cost_, dtype=float)
    log.info(
        "trim: box LP %.2f, plan %.2f → %s",
        float(cost @ box),
        float(cost @ x),
        None if nx is None else f"{float(cost @ nx):.2f}",
    )
    if nx is None or float(cost @ nx) >= float(cost @ x) - 1e-6:
        h.changeColsBounds(len(cols), cols, held, held)
        return x
    return nx


def solve_whole(
    data: PlanningData,
    block: Block,
    time_limit_s: float,
    deadline: float,
    dive_until: float,
) -> BlockSolution:
    """The whole relaxation (``block``: :meth:`Split.whole_block`) by first-order PDLP (or
    interior point), stopped at a loose tolerance (planner.ilp.highs_lp.whole_lp_options),
    then, with ``dive_until`` (wall clock) ahead, its dive: ``x`` the solver's point,
    ``row_dual`` its duals (approximate: the bound taken from them is the safe one,
    planner.ilp.safe_bound), ``plan`` the dived point (None if the dive did not finish or
    did not run). The dive starts from a point with no basis: session 26 measured dives from
    a non-vertex point ~2× slower (12×15×4: 28 s against 14 s)."""
    started = time.perf_counter()
    limit = min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    h = _highs(block, block.cost)
    status, x, sol = _run(h, whole_lp_options(h), limit)
    # HiGHS calls a point within the looser tolerance "Unknown"; its duals are still duals
    y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
    if x is None and sol.value_valid and y is not None:
        x = np.asarray(sol.col_value, dtype=float)
    plan, rounds, lp_s = None, 0, time.perf_counter() - started
    room = dive_until - time.time()
    if x is not None and room > 0:
        log.info("whole relaxation: %s in %.1f s, diving for %.1f s", status, lp_s, room)
        bounds = (block.col_lo, block.col_hi)
        now = time.perf_counter()
        ends = (now + 0.6 * room, now + room, now + room)
        st, plan, rounds = dive_block(data, h, block, x, bounds, ends)
        log.info("whole relaxation's dive: %s, %d rounds", st, rounds)
    return BlockSolution(
        block.name,
        status,
        x,
        y,
        seconds=time.perf_counter() - started,
        dive_rounds=rounds,
        plan=plan,
        lp_seconds=lp_s,
    )
