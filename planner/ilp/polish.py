"""Fix-and-optimise: a verified plan improved by small MIPs, one neighbourhood at a time.

A plan assembled from group dives (planner.ilp.split_portfolio) fixes the routes between
groups and each group's share of the NIW work at a Lagrangian point, then rounds VM counts
inside each group. A neighbourhood here is a window of hours: every column of those hours
but the routes and unmet demand. With every other column held at the plan, the rows
touching the neighbourhood become a small MIP in its columns,

    min c_S·x_S   s.t.   lo − A_F·x_F ≤ A_S·x_S ≤ hi − A_F·x_F,   l_S ≤ x_S ≤ u_S,
    x_j ∈ ℤ for the integer columns of S (VM counts; committed hours' instances),

started from the plan's own x_S (feasible, so the MIP never returns worse). HiGHS solves it
within a time limit; its point, integer columns rounded, replaces x_S only if the whole point
then holds every row (largest violation ≤ ``TOLERANCE``) and costs less. So each step keeps a
plan, never raises its cost, and the plan stays what planner.ilp.verify accepts.

On the 20×30×4 rung's first plan ($570,407, s34): the last hour alone saved $1,897 (spot VMs
kept serving NIW that is cheaper carried past the horizon: 174 → 3 spot VMs), all single
hours $2,012 in 1.9 s, then three-hour windows (5 s each) $1,028 more in ~55 s. Neighbourhoods
by region (all hours, routes fixed) saved nothing: each group's dive is already optimal for
the routes and NIW shares it was given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from planner.ilp.variables import DUST, INSTANCE_FAMILIES, VM_FAMILIES

log = logging.getLogger(__name__)
TOLERANCE = 1e-6  # largest row violation a polished point may have (the plan's own: ~1e-12)
MIP_GAP = 1e-4  # each neighbourhood MIP's relative gap
# routes and unmet demand stay as the plan has them: with them free a one-hour MIP of the
# 20×30×4 rung took 16-40 s instead of 0.1-0.2 s and saved $1,987 instead of $1,897 (hour 24)
FIXED_FAMILIES = ("f", "e")
WIDTHS = (1, 3)  # window widths, in this order (the module docstring's figures)
# each neighbourhood's MIP at most (the whole relaxation's end is noticed between steps)
STEP_S = 5.0
RESERVE_S = 3.0  # kept before the deadline (the plan's read-back and verify come after)


@dataclass(frozen=True)
class Program:
    """The planning program as arrays (the relaxation's, planner.ilp.highs_lp) with the
    integrality the relaxation dropped: ``integer`` marks VM counts and the committed hours'
    instances."""

    cost: np.ndarray
    matrix: sparse.csc_matrix
    row_lo: np.ndarray
    row_hi: np.ndarray
    col_lo: np.ndarray
    col_hi: np.ndarray
    integer: np.ndarray

    @classmethod
    def of(cls, relax: Any, family_key: Sequence[tuple[str, tuple[Any, ...]]]) -> Program:
        """From a planner.ilp.highs_lp.HighsRelaxation and its columns' (family, key)
        (planner.ilp.split_lp.column_keys); the committed hours from its data."""
        committed = relax.built.data.committed
        integer = np.asarray(
            [
                f in VM_FAMILIES or (f in INSTANCE_FAMILIES and committed(int(k[-1])))
                for f, k in family_key
            ],
            dtype=bool,
        )
        return cls(
            relax.cost,
            sparse.csc_matrix(relax.matrix),
            relax.row_lo,
            relax.row_hi,
            relax.col_lo,
            relax.col_hi,
            integer,
        )

    def violation(self, x: np.ndarray) -> float:
        """The largest row or column bound violation of ``x`` (:func:`violation`)."""
        return violation(self, x)


def violation(arrays: Any, x: np.ndarray) -> float:
    """The largest row or column bound violation of ``x`` in ``arrays``' program: a
    :class:`Program` or the planner.ilp.highs_lp.HighsRelaxation it is made of (the same
    ``matrix``, ``row_lo``, ``row_hi``, ``col_lo``, ``col_hi``)."""
    ax = arrays.matrix @ x
    rows = np.maximum(arrays.row_lo - ax, ax - arrays.row_hi).max(initial=0.0)
    cols = np.maximum(arrays.col_lo - x, x - arrays.col_hi).max(initial=0.0)
    return float(max(rows, cols))


def hour_windows(hours: Sequence[int], widths: Sequence[int] = WIDTHS) -> list[list[int]]:
    """Windows of consecutive hours, for each width in turn, the horizon's edges first
    (H, 1, H−1, 2, … for one hour): the assembled plans' excess sits at the edges."""
    out: list[list[int]] = []
    hs = sorted(hours)
    for width in widths:
        last = len(hs) - width
        starts = sorted(range(last + 1), key=lambda i: (min(i, last - i), -i))
        out.extend(hs[i : i + width] for i in starts)
    return out


def neighbourhoods(
    family_key: Sequence[tuple[str, tuple[Any, ...]]], windows: Sequence[Sequence[int]]
) -> list[np.ndarray]:
    """Per window, the columns of its hours (every key ends with its hour) but the routes
    and the unmet demand (``FIXED_FAMILIES``)."""
    hour = np.asarray([int(k[-1]) if k else 0 for _f, k in family_key])
    movable = np.asarray([f not in FIXED_FAMILIES for f, _k in family_key], dtype=bool)
    return [np.flatnonzero(movable & np.isin(hour, list(w))) for w in windows]


@dataclass(frozen=True)
class Polisher:
    """What the polish of one program's plans needs, built once (per split run,
    planner.ilp.split_portfolio) rather than per plan: the program and every window's
    columns (:func:`neighbourhoods`), the ``singles`` single hours first."""

    prog: Program
    hoods: list[np.ndarray]
    singles: int

    @classmethod
    def of(cls, relax: Any, family_key: Sequence[tuple[str, tuple[Any, ...]]]) -> Polisher:
        """For a planner.ilp.highs_lp.HighsRelaxation and its columns' (family, key)."""
        hours = sorted({int(k[-1]) for _f, k in family_key if k})
        first, rest = hour_windows(hours, WIDTHS[:1]), hour_windows(hours, WIDTHS[1:])
        hoods = neighbourhoods(family_key, first + rest)
        return cls(Program.of(relax, family_key), hoods, len(first))


@dataclass(frozen=True)
class Step:
    """One neighbourhood's MIP: HiGHS's status, the cost saved (0 when not taken), its
    time."""

    status: str
    saved: float
    seconds: float


def improve(
    prog: Program, x: np.ndarray, free: np.ndarray, time_limit_s: float
) -> tuple[np.ndarray, Step]:
    """``x`` with the columns ``free`` re-optimised as a MIP (module docstring), or ``x``
    itself when the MIP finds nothing cheaper, does not finish, or its point fails the rows."""
    began = time.perf_counter()
    sub = prog.matrix[:, free]
    rows = np.unique(sub.indices)
    sub = sub[rows]
    rest = (prog.matrix @ x)[rows] - sub @ x[free]
    h = _highs_mip(prog, free, sub, prog.row_lo[rows] - rest, prog.row_hi[rows] - rest)
    h.setSolution(_solution(x[free]))
    h.setOptionValue("time_limit", max(float(time_limit_s), 0.01))
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    sol = h.getSolution()
    if not sol.value_valid:
        return x, Step(status, 0.0, time.perf_counter() - began)
    new = x.copy()
    new[free] = np.asarray(sol.col_value, dtype=float)
    ints = free[prog.integer[free]]
    new[ints] = np.round(new[ints])
    new[free] = snap(new[free], prog.col_lo[free], prog.col_hi[free])
    saved = float(prog.cost[free] @ (x[free] - new[free]))
    if saved <= 1e-6 or prog.violation(new) > TOLERANCE:
        return x, Step(status, 0.0, time.perf_counter() - began)
    return new, Step(status, saved, time.perf_counter() - began)


def snap(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``values`` within their bounds, and those under ``DUST`` set to 0 where 0 is allowed:
    a MIP leaves specks (~1e-12 of a flow unit); before the read-back snapped them too
    (planner.ilp.readback.from_values) it dropped them from a routing row but counted them
    in its total, so the NIW weights summed to 0.9965 and the plan failed
    planner.ilp.verify (the 20×30×4 rung, s34, offline)."""
    out: np.ndarray = np.clip(values, lo, hi)
    out[(np.abs(out) < DUST) & (lo <= 0.0) & (hi >= 0.0)] = 0.0
    return out


def _highs_mip(
    prog: Program, free: np.ndarray, sub: sparse.csc_matrix, lo: np.ndarray, hi: np.ndarray
) -> Any:
    import highspy

    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("mip_rel_gap", MIP_GAP)
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = sub.shape[1], sub.shape[0]
    lp.col_cost_ = np.asarray(prog.cost[free], dtype=float)
    lp.col_lower_, lp.col_upper_ = prog.col_lo[free], prog.col_hi[free]
    lp.row_lower_, lp.row_upper_ = lo, hi
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    sub = sparse.csc_matrix(sub)
    lp.a_matrix_.start_ = sub.indptr
    lp.a_matrix_.index_ = sub.indices
    lp.a_matrix_.value_ = sub.data
    integer = highspy.HighsVarType.kInteger
    lp.integrality_ = [
        integer if i else highspy.HighsVarType.kContinuous for i in prog.integer[free]
    ]
    h.passModel(lp)
    return h


def _solution(values: np.ndarray) -> Any:
    import highspy

    sol = highspy.HighsSolution()
    sol.col_value = list(values)
    sol.value_valid = True
    return sol


def polish(
    prog: Program,
    x: np.ndarray,
    neighbourhoods: Sequence[np.ndarray],
    deadline: float,
    step_s: float,
    stop: Callable[[], bool] = lambda: False,
) -> tuple[np.ndarray, list[Step]]:
    """Every neighbourhood in turn (each MIP up to ``step_s``, cut to the time left), while
    a second or more is left before ``deadline`` (a ``time.perf_counter`` reading) and
    ``stop()`` is false: the point and each step's record. The point never costs more than
    ``x``; a step is taken only if the whole point then holds every row (``TOLERANCE``)."""
    steps: list[Step] = []
    for free in neighbourhoods:
        left = deadline - time.perf_counter()
        if left < min(step_s, 1.0) or stop():
            break
        x, step = improve(prog, x, free, min(step_s, left))
        steps.append(step)
        log.debug(
            "polish: %d columns, %s, saved %.2f, %.1f s",
            len(free),
            step.status,
            step.saved,
            step.seconds,
        )
    return x, steps


def polish_plan(
    polisher: Polisher,
    x: np.ndarray,
    source: str,
    deadline: float,
    running: Any = None,
) -> tuple[np.ndarray, str]:
    """The plan at ``x`` (columns of ``polisher``'s program, made by ``source``) polished
    over its windows until ``deadline`` (``time.perf_counter``) less ``RESERVE_S``; the
    point and its source (", polished …" when a step was taken). A point that does not
    hold every row comes back as it is.
    ``running``: the whole relaxation's future in a portfolio (planner.ilp.split_portfolio).
    While it runs every width is tried (the main process has nothing else to do) and the
    polish stops when it finishes (its bound and its plans come first); otherwise (it has
    finished, or no portfolio: the Lagrangian rounds need the time) only single hours
    (~3 s on the 20×30×4 rung)."""
    began, prog = time.perf_counter(), polisher.prog
    if prog.violation(x) > TOLERANCE:
        return x, source
    waiting = running is not None and not running.done()
    hoods = polisher.hoods if waiting else polisher.hoods[: polisher.singles]
    stop = running.done if waiting else (lambda: False)
    before = float(prog.cost @ x)
    x, steps = polish(prog, x, hoods, deadline - RESERVE_S, STEP_S, stop)
    saved = before - float(prog.cost @ x)
    log.info(
        "polish: %d of %d neighbourhoods, saved %.2f of %.2f, %.2f s",
        len(steps),
        len(hoods),
        saved,
        before,
        time.perf_counter() - began,
    )
    taken = sum(s.saved > 0 for s in steps)
    return (
        x,
        source if not taken else f"{source}, polished (fix-and-optimise by hour, {taken} MIPs)",
    )
