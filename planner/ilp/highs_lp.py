"""The planning program's LP relaxation solved by HiGHS's interior point method, for fleets
where SCIP's simplex does not finish its root LP (the 8 regions × 10 models × 3 VM types
rung: HiGHS IPM 5 s, HiGHS dual simplex 40–58 s, SCIP's root LP unfinished in 60 s).

The model is built once by SCIP (planner.ilp.build, with the valid inequalities of
planner.ilp.cuts, which are part of the relaxation), written to MPS and read by HiGHS; the
relaxation then stays in memory, so the plan assembly (integer counts fixed by their bounds,
everything else re-optimised) is a bound change and a warm-started re-solve, not a rebuild.

The bound. For row duals y (any y, optimal or not: an interior point without crossover or
at a loose tolerance too) weak duality gives a lower bound on the LP and hence on the integer
program; ``dual_bound`` computes it by planner.ilp.safe_bound (the algebra, the projection of
wrong-signed duals, the column box implied by the rows and the rounding allowance are there),
so the bound reported is checked by arithmetic, not taken from the solver's status.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from planner.ilp.build import BuiltModel
from planner.ilp.safe_bound import implied_bounds, safe_lower_bound
from planner.ilp.variables import FAMILIES, Values

log = logging.getLogger(__name__)
INF = 1e20  # HiGHS's infinity (kHighsInf is inf; MPS bounds of 1e20 read back as inf)
# The split portfolio's whole relaxation (planner.ilp.split_tasks.solve_whole): only its
# duals are wanted (the bound is safe from any, planner.ilp.safe_bound), so it is solved by
# HiGHS's first-order PDLP ("hipdlp") stopped at a relative tolerance. 20×30×4 rung, one
# core, s34: hipdlp at 1e-4 ends in 151 s (13,240 iterations), safe bound $558,219 (0.03 %
# under the LP's $558,380); IPX needs ~270 s to its 2e-2 (bound $556,085): its iterations
# 27–45 (the basis preconditioner) take ~200 s, and stopped by a time or iteration limit
# neither returns duals. cuPDLP-C ("pdlp") did 4,000 iterations in 119 s. hipdlp at 1e-3
# stops after 760 iterations far from the optimum (its objective $717,787): not looser.
WHOLE_SOLVER = "hipdlp"
WHOLE_PDLP_TOLERANCE = 1e-4
# "ipx": interior point without crossover stopped at this relative primal-dual gap (s33)
WHOLE_IPM_TOLERANCE = 2e-2


@dataclass(frozen=True)
class LpSolution:
    """One solve of the relaxation: HiGHS's status, the primal point (column order), the row
    duals, the objective at the point and the checked bound L(y) (−inf without duals)."""

    status: str
    x: np.ndarray | None
    row_dual: np.ndarray | None
    objective: float
    bound: float
    seconds: float

    @property
    def optimal(self) -> bool:
        return self.status == "Optimal"


class HighsRelaxation:
    """The LP relaxation of ``built`` (a model built with ``relax=True``) held in HiGHS."""

    def __init__(self, built: BuiltModel, threads: int = 1) -> None:
        import highspy

        self.built = built
        self.h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", int(threads))
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "relaxation.mps")
            built.model.writeProblem(path, verbose=False)
            self.h.readModel(path)
        lp = self.h.getLp()
        self.cost = np.asarray(lp.col_cost_, dtype=float)
        self.col_lo = np.asarray(lp.col_lower_, dtype=float)
        self.col_hi = np.asarray(lp.col_upper_, dtype=float)
        self.row_lo = np.asarray(lp.row_lower_, dtype=float)
        self.row_hi = np.asarray(lp.row_upper_, dtype=float)
        self.offset = float(lp.offset_)
        a = lp.a_matrix_
        shape = (lp.num_row_, lp.num_col_)
        self.matrix = sparse.csc_matrix(
            (np.asarray(a.value_), np.asarray(a.index_), np.asarray(a.start_)), shape=shape
        )
        self.column = {name: j for j, name in enumerate(lp.col_names_)}
        self.row = {name: i for i, name in enumerate(lp.row_names_)}
        self.sense = 1.0 if int(lp.sense_) == 1 else -1.0  # 1 = minimise
        if self.sense != 1.0:
            raise ValueError("the planning program minimises")
        self.fixed: np.ndarray | None = None  # columns whose bounds assembly changed

    # --- solving ---------------------------------------------------------------------------
    def solve(self, time_limit_s: float, method: str = "ipm") -> LpSolution:
        """Solve within ``time_limit_s`` (``ipm``: interior point with crossover; ``simplex``
        warm-starts from the previous basis, as the assembly does after fixing counts)."""
        started = time.perf_counter()
        if time_limit_s <= 0:
            return LpSolution("Time limit reached", None, None, math.inf, -math.inf, 0.0)
        # HiGHS's time limit counts its run time since the object was made, over every run
        self.h.setOptionValue("time_limit", self.h.getRunTime() + float(time_limit_s))
        self.h.setOptionValue("solver", method)
        self.h.run()
        status = self.h.modelStatusToString(self.h.getModelStatus())
        sol = self.h.getSolution()
        x = np.asarray(sol.col_value, dtype=float) if sol.value_valid else None
        y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
        objective = self.objective_of(x) if x is not None and status == "Optimal" else math.inf
        bound = self.dual_bound(y) if y is not None else -math.inf
        seconds = time.perf_counter() - started
        log.info(
            "HiGHS %s: %s, objective %.2f, checked bound %.2f, %.1f s",
            method,
            status,
            objective,
            bound,
            seconds,
        )
        return LpSolution(status, x, y, objective, bound, seconds)

    def dual_bound(self, y: np.ndarray) -> float:
        """The safe bound from ``y`` (planner.ilp.safe_bound) on the relaxation as built
        (the bounds ``fix_counts`` changes in HiGHS are not used)."""
        rows = (self.row_lo, self.row_hi)
        return safe_lower_bound(self.cost, self.matrix, rows, self.box, y, self.offset)

    @cached_property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The column bounds tightened by the rows (planner.ilp.safe_bound.implied_bounds),
        computed once."""
        rows, cols = (self.row_lo, self.row_hi), (self.col_lo, self.col_hi)
        return implied_bounds(self.cost, self.matrix, rows, cols)

    def objective_of(self, x: np.ndarray) -> float:
        return float(self.offset + self.cost @ x)

    # --- plan values -----------------------------------------------------------------------
    def values(self, x: np.ndarray) -> Values:
        """Every family's values at ``x``, in plan units (flows × FLOW_UNIT)."""
        out: Values = {}
        for family, fam in FAMILIES.items():
            out[family] = {
                key: fam.scale * float(x[self.column[var.name]])
                for key, var in self.built.vars[family].items()
            }
        return out

    def point(self, values: Values) -> np.ndarray:
        """The column vector of ``values`` (plan units; missing entries 0)."""
        x = np.zeros(len(self.cost))
        for family, fam in FAMILIES.items():
            given = values.get(family, {})
            for key, var in self.built.vars[family].items():
                x[self.column[var.name]] = float(given.get(key, 0.0)) / fam.scale
        return x

    def fix_counts(self, counts: Values, caps: Values | None = None) -> None:
        """The entries of ``counts`` (family → key → value, plan units) held by their
        bounds, those of ``caps`` bounded above by theirs (their lower bounds kept);
        everything else keeps its bounds. ``release`` undoes it."""
        idx, val = self._columns(counts)
        lo = np.asarray(val, dtype=float)
        if caps:
            cap_idx, cap_val = self._columns(caps)
            idx += cap_idx
            val += cap_val
            lo = np.concatenate([lo, self.col_lo[np.asarray(cap_idx, dtype=np.int32)]])
        cols = np.asarray(idx, dtype=np.int32)
        self.h.changeColsBounds(len(cols), cols, lo, np.asarray(val, dtype=float))
        self.fixed = cols

    def _columns(self, counts: Values) -> tuple[list[int], list[float]]:
        """The columns of ``counts``' entries and their values in model units."""
        idx: list[int] = []
        val: list[float] = []
        for family, given in counts.items():
            variables = self.built.vars[family]
            scale = FAMILIES[family].scale
            for key, value in given.items():
                var = variables.get(key)
                if var is not None:
                    idx.append(self.column[var.name])
                    val.append(float(value) / scale)
        return idx, val

    def release(self) -> None:
        if self.fixed is None:
            return
        cols = self.fixed
        self.h.changeColsBounds(len(cols), cols, self.col_lo[cols], self.col_hi[cols])
        self.fixed = None

    def fixed_count_plan(
        self, counts: Values, time_limit_s: float, method: str = "simplex"
    ) -> tuple[Values, float] | None:
        """The plan with ``counts`` fixed and every other decision re-optimised: its values
        (the fixed entries exactly as given) and objective, or None if the LP did not finish
        (or the counts leave it infeasible). The relaxation's bounds are restored after.
        ``counts`` must hold every integer entry of the program (the VM counts and the
        committed hours' instances) for the result to be a plan."""
        self.fix_counts(counts)
        try:
            solved = self.solve(time_limit_s, method)
        finally:
            self.release()
        if not solved.optimal or solved.x is None:
            log.warning("fixed-count LP: %s", solved.status)
            return None
        values = self.values(solved.x)
        for family, given in counts.items():
            values[family].update({k: float(v) for k, v in given.items()})
        return values, solved.objective


def whole_lp_options(h: Any, solver: str = WHOLE_SOLVER) -> str:
    """``h`` (a highspy.Highs holding the whole relaxation) set up for ``solver`` (module
    constants: a first-order or interior point solve for its duals, no crossover); the
    solver name to run."""
    if solver == "ipx":
        h.setOptionValue("run_crossover", "off")
        h.setOptionValue("ipm_optimality_tolerance", WHOLE_IPM_TOLERANCE)
    else:
        h.setOptionValue("pdlp_optimality_tolerance", WHOLE_PDLP_TOLERANCE)
    return solver
