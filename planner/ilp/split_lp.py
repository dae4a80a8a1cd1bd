"""The relaxation split by region, for fleets whose whole LP takes minutes (the 20 regions ×
30 models × 4 VM types rung: 672k columns, HiGHS IPM about 190 s on one core): a Lagrangian
bound from region LPs solved in parallel, and a plan assembled from region dives.

The split. Every column of the relaxation (planner.ilp.build, valid inequalities included,
held in HiGHS by planner.ilp.highs_lp) belongs to one block: region r holds its own VMs,
instances, service, starts and shortfalls *and the flows f[r,·] and unmet e[r,·] of the
demand that starts in r*; the NIW block holds the pooled backlog b, en. A row whose columns
all lie in one block is that block's row (capacity, packing, quota, lead times, demand
cover, availability, the single-region and home rounding cuts). The rest couple blocks:

    interactive_assign[r,m,k,t]   Σ_g w[r,m,g,k,t] − Σ_{r0} f[r0,r,m,k,t] = 0
    niw_balance[m,t]              b[m,t] − b[m,t−1] + Σ_{r,g} (v + vs)[r,m,g,t] = A[m,t]
    vm_rounding[all regions,t]    the MIR cut over every region (≥)

The bound. For prices y_C on the coupling rows (signs as their sides allow) the Lagrangian

    L(y_C) = Σ_{i∈C} y_i·rhs_i + Σ_b min { (c_b − A_{C,b}ᵀ y_C)·x_b : x_b in block b's LP }

is a lower bound on the LP, hence on the plan (weak duality); its maximum over y_C is the
LP bound itself. Each block's minimum is solved by HiGHS in a worker; the bound reported is
then recomputed in this process from the assembled row duals y = (y_C, y_1, …, y_B) by the
same arithmetic as the whole relaxation's (HighsRelaxation.dual_bound: any y gives a bound,
so a block stopped early weakens the bound, it never invalidates it).

The prices. The first are cost-based (planner.ilp.lagrange.initial_prices: serving a
kilotoken/s earns its cheapest cost); then sign steps: each price moves by a share θ of its
cost-based size in the direction of its subgradient, θ growing after a round that raised
the bound and halved, back at the best prices, after one that did not (Polyak's steps
towards the plan, and the duals of a plan's own LPs, gave no better bound on the 8×10×3
and 12×15×4 rungs). Blocks are groups of regions contiguous on the latency map
(:func:`region_groups`, 4 by default), so that most allowed routes stay inside a block.

The plan. A primal round fixes the coupling at a Lagrangian solution: the flows routed
from one region to another are fixed (exports at the origin, imports at the destination,
which may fall short at the unmet penalty) and each group gets its share of the NIW
service the point has it serve, raised where the deadline needs more and capped by what has
arrived. Each group then dives on its own LP (VM counts rounded up where
close, re-solved warm; then the rest rounded up, planner.ilp.rounding.round_up, and the
continuous decisions re-optimised), in parallel. Assembly books any import shortfall as
unmet demand at its origins and recomputes the NIW backlog from what the regions served,
so every coupling row holds; the plan's objective is the relaxation's objective at that
point, and the planner verifies the plan like any other.

The portfolio (two workers or more, :func:`split_decompose`): the whole relaxation by
interior point on one worker beside the rounds; its checked bound is the maximum of L, so
the rounds stop when it arrives (20×30×4 rung: $558,380 at 248 s of 300, the gap from
9.57 % to 2.78 %, the plan then being the first group dives').
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse

from planner.ilp.data import PlanningData
from planner.ilp.highs_lp import INF, HighsRelaxation
from planner.ilp.variables import FAMILIES, FLOW_UNIT, Values

log = logging.getLogger(__name__)
NIW_BLOCK = "niw"
THRESHOLDS = (0.7, 0.5, 0.3, 0.15, 0.05)  # the dive's rounding-up thresholds, per round
# the portfolio's worker dives on the whole relaxation after its interior point, until this
# long before the limit (the plan's assembly and checks in this process)
WHOLE_DIVE = True
WHOLE_DIVE_RESERVE_S = 8.0


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
    columns with bounds, and one shortfall column per row (coefficient, cost)."""

    matrix: sparse.csr_matrix
    lo: np.ndarray
    hi: np.ndarray
    slack_coef: np.ndarray
    slack_cost: np.ndarray
    fixed_cols: np.ndarray  # local columns held at ``fixed_vals`` (flows routed away)
    fixed_vals: np.ndarray
    row_ids: np.ndarray  # the coupling row (index into Split.coupling) each row localises


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


def _highs(block: Block, cost: np.ndarray, extra: Localised | None = None) -> Any:
    import highspy

    h = highspy.Highs()  # type: ignore[no-untyped-call]  # highspy ships no annotations
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    matrix, row_lo, row_hi = block.matrix, block.row_lo, block.row_hi
    col_lo, col_hi = block.col_lo.copy(), block.col_hi.copy()
    if extra is not None:
        k = len(extra.lo)
        slack = sparse.csc_matrix((extra.slack_coef, (np.arange(k), np.arange(k))), shape=(k, k))
        top = sparse.hstack([matrix, sparse.csc_matrix((matrix.shape[0], k))])
        bottom = sparse.hstack([extra.matrix.tocsc(), slack])
        matrix = sparse.vstack([top, bottom]).tocsc()
        row_lo = np.concatenate([row_lo, extra.lo])
        row_hi = np.concatenate([row_hi, extra.hi])
        cost = np.concatenate([cost, extra.slack_cost])
        col_lo[extra.fixed_cols] = extra.fixed_vals
        col_hi[extra.fixed_cols] = extra.fixed_vals
        col_lo = np.concatenate([col_lo, np.zeros(k)])
        col_hi = np.concatenate([col_hi, np.full(k, np.inf)])
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
) -> BlockSolution:
    """Block ``block`` at the priced costs ``cost``: its point and row duals (interior point,
    cold: the result does not depend on which worker ran it)."""
    started = time.perf_counter()
    limit = time_limit_s if deadline is None else min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    h = _highs(block, cost)
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
    shortfalls."""
    started = time.perf_counter()
    limit = time_limit_s if deadline is None else min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    end = time.perf_counter() + limit
    h = _highs(block, block.cost, extra)
    status, x, sol = _run(h, "ipm" if len(block.cols) > 5000 else "simplex", limit)
    if x is None:
        return BlockSolution(block.name, status, None, None, seconds=time.perf_counter() - started)
    y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
    n = len(block.cols)
    rounds = 0
    if dive:
        lo0 = np.concatenate([block.col_lo, np.zeros(len(extra.lo))])
        lo0[extra.fixed_cols] = extra.fixed_vals
        hi0 = np.concatenate([block.col_hi, np.full(len(extra.lo), np.inf)])
        hi0[extra.fixed_cols] = extra.fixed_vals
        st, x, rounds = dive_block(data, h, block, x, (lo0, hi0), end, 0.2 * limit)
        if x is None:
            return BlockSolution(block.name, f"dive: {st}", None, y)
    return BlockSolution(
        block.name,
        status,
        x[:n],
        y,
        slack=x[n:],
        seconds=time.perf_counter() - started,
        dive_rounds=rounds,
    )


def dive_block(
    data: PlanningData,
    h: Any,
    block: Block,
    x: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    end: float,
    keep_s: float,
) -> tuple[str, np.ndarray | None, int]:
    """The dive of the module docstring on the LP held in ``h`` (solved, at ``x``; its
    column ``bounds`` when nothing is fixed): VM counts near the next integer rounded up
    and fixed, re-solved warm, round by round while ``keep_s`` remains before ``end``; then
    the rest rounded up (planner.ilp.rounding.round_up) and the continuous decisions
    re-optimised. The status, the dived point (None if the last LP did not finish) and the
    rounds done."""
    from planner.ilp.dive import integer_entries
    from planner.ilp.rounding import round_up

    lo0, hi0 = bounds
    vm_cols = np.asarray([j for f, _k, j in block.integers if f in ("y", "z")], dtype=np.int32)
    fixed = np.zeros(len(lo0), dtype=bool)
    rounds = 0
    for threshold in THRESHOLDS:
        if time.perf_counter() > end - keep_s:
            break
        vals = x[vm_cols]
        frac = vals - np.floor(vals + 1e-6)
        pick = vm_cols[((frac < 1e-6) | (frac >= threshold)) & ~fixed[vm_cols]]
        if len(pick) == 0:
            continue
        up = np.ceil(x[pick] - 1e-6)
        h.changeColsBounds(len(pick), pick, up, up)
        fixed[pick] = True
        _st, nx, _ = _run(h, "simplex", end - time.perf_counter())
        if nx is None:
            h.changeColsBounds(len(pick), pick, lo0[pick], hi0[pick])
            break
        x, rounds = nx, rounds + 1
    counts: Values = {f: {} for f in ("x", "xs", "y", "z")}
    for family, key, j in block.integers:
        counts[family][key] = float(x[j])
    final = integer_entries(data, round_up(data, counts))
    pairs = [(j, final[f][k]) for f, k, j in block.integers if k in final[f]]
    cols = np.asarray([j for j, _v in pairs], dtype=np.int32)
    vals_arr = np.asarray([v for _j, v in pairs], dtype=float)
    h.changeColsBounds(len(lo0), np.arange(len(lo0), dtype=np.int32), lo0, hi0)
    h.changeColsBounds(len(cols), cols, vals_arr, vals_arr)
    st, nx, _ = _run(h, "simplex", max(end - time.perf_counter(), 1.0))
    if nx is not None:
        nx[cols] = vals_arr
    return st, nx, rounds


def solve_whole(
    data: PlanningData,
    block: Block,
    time_limit_s: float,
    deadline: float,
    dive_until: float,
) -> BlockSolution:
    """The whole relaxation (``block``: :meth:`Split.whole_block`) by interior point with
    crossover, then, in the same worker and from its basis, its dive until ``dive_until``
    (wall clock): ``x`` the LP's point, ``row_dual`` its duals, ``plan`` the dived point
    (None if the dive did not finish)."""
    started = time.perf_counter()
    limit = min(time_limit_s, deadline - time.time())
    if limit <= 0:
        return BlockSolution(block.name, "skipped", None, None)
    h = _highs(block, block.cost)
    status, x, sol = _run(h, "ipm", limit)
    y = np.asarray(sol.row_dual, dtype=float) if sol.dual_valid else None
    plan, rounds = None, 0
    room = dive_until - time.time()
    if x is not None and room > 0:
        lp_s = time.perf_counter() - started
        log.info("whole relaxation: %s in %.1f s, diving for %.1f s", status, lp_s, room)
        bounds = (block.col_lo, block.col_hi)
        st, plan, rounds = dive_block(
            data, h, block, x, bounds, time.perf_counter() + room, 0.3 * room
        )
        log.info("whole relaxation's dive: %s, %d rounds", st, rounds)
    return BlockSolution(
        block.name,
        status,
        x,
        y,
        seconds=time.perf_counter() - started,
        dive_rounds=rounds,
        plan=plan,
    )


@dataclass
class Split:
    """The relaxation ``relax`` cut into blocks (module docstring)."""

    relax: HighsRelaxation
    blocks: list[Block] = field(default_factory=list)
    coupling: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    col_block: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    family_key: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)
    col_of: dict[tuple[str, tuple[Any, ...]], int] = field(default_factory=dict)

    @classmethod
    def of(cls, relax: HighsRelaxation, groups: int | None = None) -> Split:
        """``groups``: regions per block cut into that many contiguous groups (by latency,
        :func:`region_groups`); None: one block per region."""
        data = relax.built.data
        group = region_groups(data, groups or len(data.regions))
        names: list[str] = []
        family_key = column_keys(relax)
        for family, key in family_key:
            names.append(NIW_BLOCK if family in ("b", "en") else group[str(key[0])])
        order = sorted(set(names), key=lambda s: (s == NIW_BLOCK, s))
        index = {name: i for i, name in enumerate(order)}
        col_block = np.asarray([index[n] for n in names], dtype=np.int64)
        csr = relax.matrix.tocsr()
        nnz_block = col_block[csr.indices]
        starts = csr.indptr[:-1]
        empty = np.diff(csr.indptr) == 0
        safe = np.where(empty, 0, starts)
        lo_b = np.minimum.reduceat(nnz_block, safe) if len(nnz_block) else np.zeros(0)
        hi_b = np.maximum.reduceat(nnz_block, safe) if len(nnz_block) else np.zeros(0)
        coupling = np.flatnonzero(~empty & (lo_b != hi_b))
        row_block = np.where(empty, -1, lo_b)
        row_block[coupling] = -1
        col_of = {fk: j for j, fk in enumerate(family_key)}
        out = cls(relax, [], coupling, col_block, family_key, col_of)
        for b, name in enumerate(order):
            cols = np.flatnonzero(col_block == b)
            rows = np.flatnonzero(row_block == b)
            integers = tuple(
                (family_key[int(j)][0], family_key[int(j)][1], i)
                for i, j in enumerate(cols)
                if family_key[int(j)][0] in ("x", "xs", "y", "z")
            )
            out.blocks.append(
                Block(
                    name=name,
                    cols=cols,
                    rows=rows,
                    regions=frozenset(r for r, g in group.items() if g == name),
                    matrix=csr[rows][:, cols].tocsc(),
                    cost=relax.cost[cols],
                    col_lo=relax.col_lo[cols],
                    col_hi=relax.col_hi[cols],
                    row_lo=relax.row_lo[rows],
                    row_hi=relax.row_hi[rows],
                    integers=integers,
                )
            )
        return out

    @cached_property
    def coupling_rows(self) -> sparse.csr_matrix:
        """A_C: the coupling rows of the relaxation's matrix (computed once)."""
        return self.relax.matrix.tocsr()[self.coupling]

    @staticmethod
    def whole_block(relax: HighsRelaxation) -> Block:
        """The whole relaxation as one block (the portfolio's interior point and dive):
        every column and row, the matrix shared, not copied."""
        integers = tuple(
            (family, key, j)
            for j, (family, key) in enumerate(column_keys(relax))
            if family in ("x", "xs", "y", "z")
        )
        return Block(
            name="whole",
            cols=np.arange(len(relax.cost)),
            rows=np.arange(len(relax.row_lo)),
            regions=frozenset(),
            matrix=relax.matrix,
            cost=relax.cost,
            col_lo=relax.col_lo,
            col_hi=relax.col_hi,
            row_lo=relax.row_lo,
            row_hi=relax.row_hi,
            integers=integers,
        )

    # --- the Lagrangian ---------------------------------------------------------------
    def project(self, y_c: np.ndarray) -> np.ndarray:
        """Prices with the signs the coupling rows' sides allow (y ≤ 0 without a lower
        side, y ≥ 0 without an upper one)."""
        lo, hi = self.relax.row_lo[self.coupling], self.relax.row_hi[self.coupling]
        y_c = np.where(lo <= -INF, np.minimum(y_c, 0.0), y_c)
        return np.where(hi >= INF, np.maximum(y_c, 0.0), y_c)

    def priced_costs(self, y_c: np.ndarray) -> list[np.ndarray]:
        """c_b − A_{C,b}ᵀ y_C for every block."""
        a_c = self.coupling_rows
        adjust = np.asarray(a_c.T @ y_c).ravel()
        full = self.relax.cost - adjust
        return [full[b.cols] for b in self.blocks]

    def bound(self, y_c: np.ndarray, solutions: list[BlockSolution]) -> float:
        """L(y) of highs_lp checked on the whole relaxation, y assembled from the prices and
        the blocks' row duals (a block without duals contributes y = 0 on its rows)."""
        y = np.zeros(len(self.relax.row_lo))
        y[self.coupling] = y_c
        for block, sol in zip(self.blocks, solutions, strict=True):
            if sol.row_dual is not None:
                y[block.rows] = sol.row_dual[: len(block.rows)]
        return self.relax.dual_bound(y)

    def point(self, solutions: list[BlockSolution]) -> np.ndarray:
        x = np.zeros(len(self.relax.cost))
        for block, sol in zip(self.blocks, solutions, strict=True):
            if sol.x is not None:
                x[block.cols] = sol.x
        return x

    def subgradient(self, x: np.ndarray, y_c: np.ndarray) -> np.ndarray:
        """rhs − A_C x, the side taken as the price's sign says (equalities: either)."""
        a_c = self.coupling_rows
        ax = a_c @ x
        lo, hi = self.relax.row_lo[self.coupling], self.relax.row_hi[self.coupling]
        side = np.where(lo <= -INF, hi, np.where(hi >= INF, lo, lo))
        g = side - ax
        # a one-sided row that holds with its price at 0 stays at 0
        slack_ok = ((lo <= -INF) & (g >= 0) & (y_c == 0)) | ((hi >= INF) & (g <= 0) & (y_c == 0))
        return np.where(slack_ok, 0.0, g)

    # --- primal rounds ----------------------------------------------------------------
    def localised(self, data: PlanningData, x_bar: np.ndarray) -> list[Localised]:
        """Every region block's coupling rows, the other blocks' columns held at ``x_bar``
        (flows routed in), its own flows routed out held at ``x_bar``, and NIW service as
        ``x_bar`` has the regions serve it, within what has arrived (``x_bar`` all zero:
        every region on its own, NIW served as it arrives, split by interactive demand)."""
        relax = self.relax
        a_c = self.coupling_rows
        names = [n for n, _ in sorted(relax.row.items(), key=lambda kv: kv[1])]
        niw = len(self.blocks) - 1 if self.blocks[-1].name == NIW_BLOCK else -1
        out: list[Localised] = []
        late = data.unmet_penalty.get(data.deferrable or "", 0.0) * FLOW_UNIT
        # per NIW row: what the regions serve (what x_bar has them serve, within what has
        # arrived: the backlog never goes negative), and each region's part of it
        niw_need: dict[int, float] = {}
        region_part: dict[tuple[int, int], float] = defaultdict(float)
        parts_of: dict[int, set[int]] = {}
        by_model: dict[str, list[tuple[int, int]]] = defaultdict(list)
        isolated = not x_bar.any()
        home: dict[tuple[str, int], float] = defaultdict(float)
        for (r0, _m, _k, tt), d in data.demand.items():
            home[(r0, tt)] += d
        for ci, i in enumerate(self.coupling):
            if not names[i].startswith("niw_balance["):
                continue
            m, t = names[i][len("niw_balance[") : -1].split(",")
            by_model[m].append((int(t), ci))
            row = a_c[ci]
            blocks = self.col_block[row.indices]
            parts_of[ci] = set(blocks.tolist()) - {niw}
            for b in parts_of[ci]:
                sel = blocks == b
                region_part[(ci, b)] = max(0.0, float(row.data[sel] @ x_bar[row.indices[sel]]))
            if isolated:
                for b in set(blocks.tolist()) - {niw}:  # none served: by interactive demand
                    region_part[(ci, b)] = 1e-9 + sum(
                        home[(region, int(t))] for region in self.blocks[b].regions
                    )
        for m, rows in by_model.items():
            available = arrived = served = 0.0
            for t, ci in sorted(rows):
                i = self.coupling[ci]
                available += relax.row_lo[i]  # arrivals (the opening backlog in hour 1)
                arrived += relax.row_lo[i]
                wanted = sum(region_part[(ci, b)] for b in parts_of[ci])
                if isolated:
                    wanted = relax.row_lo[i]  # nothing to follow: serve arrivals as they come
                # at least what the deadline needs: the backlog within the window
                due = arrived - data.niw_window(m, t) / FLOW_UNIT - served
                niw_need[ci] = max(0.0, min(max(wanted, due), available))
                available -= niw_need[ci]
                served += niw_need[ci]
                if niw_need[ci] > 0 and wanted <= 1e-12:  # none planned: by interactive demand
                    for b in parts_of[ci]:
                        region_part[(ci, b)] = 1e-9 + sum(
                            home[(region, t)] for region in self.blocks[b].regions
                        )
        for b, block in enumerate(self.blocks):
            if block.name == NIW_BLOCK:
                continue
            local = np.full(len(relax.cost), -1, dtype=np.int64)
            local[block.cols] = np.arange(len(block.cols))
            rows_i: list[int] = []
            rows_j: list[int] = []
            rows_v: list[float] = []
            lo: list[float] = []
            hi: list[float] = []
            coef: list[float] = []
            cost: list[float] = []
            ids: list[int] = []
            fixed_cols: list[int] = []
            for ci, i in enumerate(self.coupling):
                row = a_c[ci]
                blocks = self.col_block[row.indices]
                mine = blocks == b
                if not mine.any():
                    continue
                name = names[i]
                if (
                    name.startswith("interactive_assign[")
                    and name.split("[")[1].split(",")[0] not in block.regions
                ):
                    continue  # flows routed away from b: held at x_bar below
                if name.startswith("vm_rounding"):
                    continue  # a cut over every region: every integer plan satisfies it
                r = len(lo)
                ids.append(ci)
                rows_i += [r] * int(mine.sum())
                rows_j += local[row.indices[mine]].tolist()
                rows_v += row.data[mine].tolist()
                if name.startswith("niw_balance["):
                    parts = {bb: region_part[(ci, bb)] for bb in set(blocks.tolist()) - {niw}}
                    total = sum(parts.values())
                    share = parts[b] / total if total > 1e-12 else 1.0 / max(1, len(parts))
                    target = niw_need[ci] * share
                    lo.append(target)
                    hi.append(target)
                    coef.append(float(np.sign(row.data[mine][0])) or 1.0)
                    cost.append(late)
                else:  # interactive_assign of this region: what others route in is fixed
                    other = ~mine
                    fixed_in = float(row.data[other] @ x_bar[row.indices[other]])
                    target = relax.row_lo[i] - fixed_in
                    lo.append(target)
                    hi.append(target)
                    k = name[:-1].split(",")[2]
                    coef.append(1.0)
                    cost.append(data.unmet_penalty[k] * FLOW_UNIT)
            # flows routed away from b (f[b, r'], r' ≠ b) held at x_bar
            for j in block.cols:
                family, key = self.family_key[int(j)]
                if family == "f" and key[1] not in block.regions:
                    fixed_cols.append(int(local[j]))
            fc = np.asarray(fixed_cols, dtype=np.int64)
            k_rows = len(lo)
            matrix = sparse.csr_matrix((rows_v, (rows_i, rows_j)), shape=(k_rows, len(block.cols)))
            out.append(
                Localised(
                    matrix,
                    np.asarray(lo, dtype=float),
                    np.asarray(hi, dtype=float),
                    np.asarray(coef, dtype=float),
                    np.asarray(cost, dtype=float),
                    fc,
                    x_bar[block.cols[fc]] if len(fc) else np.zeros(0),
                    np.asarray(ids, dtype=np.int64),
                )
            )
        return out

    def niw_localised(self, region_x: np.ndarray) -> Localised:
        """The NIW block's balance rows with the regions' service at ``region_x`` fixed (its
        deadline rows are its own): the backlog the served NIW leaves."""
        relax = self.relax
        a_c = self.coupling_rows
        b = len(self.blocks) - 1
        block = self.blocks[b]
        local = np.full(len(relax.cost), -1, dtype=np.int64)
        local[block.cols] = np.arange(len(block.cols))
        rows_i: list[int] = []
        rows_j: list[int] = []
        rows_v: list[float] = []
        lo: list[float] = []
        ids: list[int] = []
        for ci, i in enumerate(self.coupling):
            row = a_c[ci]
            mine = self.col_block[row.indices] == b
            if not mine.any():
                continue
            served = float(row.data[~mine] @ region_x[row.indices[~mine]])
            rows_i += [len(lo)] * int(mine.sum())
            rows_j += local[row.indices[mine]].tolist()
            rows_v += row.data[mine].tolist()
            lo.append(relax.row_lo[i] - served)
            ids.append(ci)
        k = len(lo)
        return Localised(
            sparse.csr_matrix((rows_v, (rows_i, rows_j)), shape=(k, len(block.cols))),
            np.asarray(lo),
            np.asarray(lo),
            np.ones(k),
            np.full(k, 1e9),  # never used by a feasible plan (the assembly checks)
            np.zeros(0, dtype=np.int64),
            np.zeros(0),
            np.asarray(ids, dtype=np.int64),
        )

    def initial_prices(self, data: PlanningData) -> np.ndarray:
        """Cost-based prices (planner.ilp.lagrange.initial_prices and
        initial_niw_prices): serving a kilotoken/s earns its cheapest cost."""
        from planner.ilp.lagrange import (
            initial_niw_prices,
            initial_prices,
            niw_servable,
            served_keys,
        )

        relax = self.relax
        pi = initial_prices(data, served_keys(data))
        mu = initial_niw_prices(data, niw_servable(data)[1])
        w_cols = {j for j, (f, _k) in enumerate(self.family_key) if f in ("w", "v")}
        a_c = self.coupling_rows
        names = {i: n for n, i in relax.row.items()}
        y = np.zeros(len(self.coupling))
        for ci, i in enumerate(self.coupling):
            name = names[int(i)]
            key = tuple(name[name.index("[") + 1 : -1].split(","))
            row = a_c[ci]
            signs = [a for j, a in zip(row.indices, row.data, strict=True) if int(j) in w_cols]
            if not signs:
                continue
            sign = float(np.sign(signs[0]))
            if name.startswith("interactive_assign["):
                y[ci] = sign * pi.get((key[0], key[1], key[2], int(key[3])), 0.0)
            elif name.startswith("niw_balance["):
                y[ci] = sign * mu.get((key[0], int(key[1])), 0.0)
        return self.project(y)

    def assemble(
        self,
        data: PlanningData,
        solutions: list[BlockSolution],
        extras: list[Localised],
        pool_niw: BlockSolution,
    ) -> np.ndarray:
        """The whole point from the region dives and the NIW block: an import a region
        could not serve is unmet at its origins (the flows routed in reduced pro rata, then
        the region's own flow), so demand cover and assignment rows hold."""
        relax = self.relax
        x = np.zeros(len(relax.cost))
        regions = [b for b in self.blocks if b.name != NIW_BLOCK]
        for block, sol in zip(regions, solutions, strict=True):
            assert sol.x is not None
            x[block.cols] = sol.x
        names = {i: n for n, i in relax.row.items()}
        into: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
        for j, (family, key) in enumerate(self.family_key):
            if family == "f":
                r0, r1, mm, kk, tt = key
                into[(r1, mm, kk, str(tt))].append((r0, j))
        for block, sol, extra in zip(regions, solutions, extras, strict=True):
            assert sol.slack is not None
            for short, ci in zip(sol.slack, extra.row_ids, strict=True):
                name = names[int(self.coupling[ci])]
                if short <= 1e-9 or not name.startswith("interactive_assign["):
                    continue
                r, m, k, t = name[name.index("[") + 1 : -1].split(",")
                flows = list(into[(r, m, k, t)])
                # flows from other blocks first (fixed there), the block's own flows last
                flows.sort(key=lambda rf: rf[0] in block.regions)
                for r0, j in flows:
                    cut = min(short, x[j])
                    if cut <= 0:
                        continue
                    x[j] -= cut
                    x[self.col_of[("e", (r0, m, k, int(t)))]] += cut
                    short -= cut
        nb = self.blocks[-1]
        if nb.name == NIW_BLOCK and pool_niw.x is not None:
            x[nb.cols] = pool_niw.x
        return x

    def values(self, x: np.ndarray) -> Values:
        """Every family's values at ``x``, in plan units (flows × FLOW_UNIT)."""
        out: Values = {family: {} for family in FAMILIES}
        for j, (family, key) in enumerate(self.family_key):
            if family:
                out[family][key] = FAMILIES[family].scale * float(x[j])
        return out

    def violation(self, x: np.ndarray) -> float:
        """The largest row violation of ``x`` (the cut over every region excluded)."""
        ax = self.relax.matrix @ x
        viol = np.maximum(self.relax.row_lo - ax, ax - self.relax.row_hi)
        return float(viol.max(initial=0.0))


def column_keys(relax: HighsRelaxation) -> list[tuple[str, tuple[Any, ...]]]:
    """(family, key) of every column of the relaxation, in column order."""
    family_key: list[tuple[str, tuple[Any, ...]]] = [("", ())] * len(relax.cost)
    for family, variables in relax.built.vars.items():
        for key, var in variables.items():
            family_key[relax.column[var.name]] = (family, key)
    return family_key


def region_groups(data: PlanningData, k: int) -> dict[str, str]:
    """Regions cut into ``k`` contiguous groups of (nearly) equal size along the latency
    map: ordered by latency from the most remote region, so that most allowed routes stay
    inside a group. Region → group name (the region itself when ``k`` ≥ regions)."""
    regions = list(data.regions)
    if k >= len(regions):
        return {r: r for r in regions}
    far = max(regions, key=lambda r: (sum(data.latency[(r, o)] for o in regions), r))
    ordered = sorted(regions, key=lambda r: (data.latency[(far, r)], r))
    out = {}
    for i, r in enumerate(ordered):
        out[r] = f"group{i * k // len(ordered)}"
    return out


def split_decompose(data: PlanningData, settings: Any, pool: Any) -> Any:
    """The module docstring's rounds within ``settings.time_limit_s``: a Lagrangian round at
    cost-based prices, a primal round from its point (the first plan), then Lagrangian
    rounds (sign steps) with a primal round from the best bound's point every third round
    when the bound rose.

    The portfolio (``settings.split_portfolio`` and at least two workers): the whole
    relaxation is solved by interior point on one worker from the start, beside the rounds
    on the others. When it finishes, its bound (checked from its row duals by
    HighsRelaxation.dual_bound, like any other) is the best any prices can give, so the
    Lagrangian rounds stop (a round in progress is abandoned) and a primal round from the
    relaxation's own point follows: the groups dive with the routes between them and the
    NIW shares where the relaxation has them. If it does not finish, the rounds' bound and
    plans stand. Returns a planner.ilp.decompose.DecompositionResult."""
    from planner.ilp.build import create_model
    from planner.ilp.decompose import DecompositionResult

    started = time.perf_counter()
    deadline = started + settings.time_limit_s
    wall_deadline = time.time() + settings.time_limit_s
    out = DecompositionResult(-math.inf, 0, None, math.inf, workers=pool.workers)
    out.start = "cost-based prices, then sign steps"
    out.subproblems = "region LPs (the relaxation split by region)"
    relax = HighsRelaxation(create_model(data, relax=True, valid_cuts=True))
    whole: Any = None
    if getattr(settings, "split_portfolio", False) and int(pool.workers) >= 2:
        limit = deadline - time.perf_counter()
        dive_until = wall_deadline - WHOLE_DIVE_RESERVE_S if WHOLE_DIVE else 0.0
        whole = pool.submit(
            solve_whole, (Split.whole_block(relax), limit, wall_deadline, dive_until)
        )
        out.start = "the whole relaxation (interior point, one worker) beside cost-based prices"
    split = Split.of(relax, settings.split_groups)
    out.lp_seconds = time.perf_counter() - started
    regions = [b for b in split.blocks if b.name != NIW_BLOCK]
    log.info(
        "split: %d columns, %d rows, %d coupling rows, %d blocks, %.1f s",
        len(relax.cost),
        len(relax.row_lo),
        len(split.coupling),
        len(split.blocks),
        out.lp_seconds,
    )
    del relax.built.model  # the SCIP model is not needed again (memory)
    relax.h.clearModel()  # nor HiGHS's copy: the split works on the arrays

    def left() -> float:
        return float(deadline - time.perf_counter())

    def slots() -> int:
        """Workers free for the split's tasks (one holds the whole relaxation until done)."""
        busy = whole is not None and not whole.done()
        return max(1, int(pool.workers) - int(busy))

    def run(
        fn: Any,
        tasks: list[tuple[Any, ...]],
        interruptible: bool,
        at_start: Any = None,
    ) -> list[Any] | None:
        """``fn`` on every task, results in task order. In the portfolio at most
        :func:`slots` tasks are in flight (a task queued behind the whole relaxation would
        hold a worker after it), and ``at_start(task, tasks not yet started)`` may rewrite
        a task as it starts (its time limit); None if ``interruptible`` and the whole
        relaxation finished first (the tasks in flight finish unread, the rest are not
        started)."""
        if whole is None:
            return list(pool.map(fn, tasks))
        results: list[Any] = [None] * len(tasks)
        pending = list(enumerate(tasks))
        running: dict[int, Any] = {}
        while pending or running:
            if interruptible and whole.done():
                return None
            while pending and len(running) < slots():
                i, task = pending.pop(0)
                running[i] = pool.submit(fn, at_start(task, len(pending)) if at_start else task)
            for i, f in list(running.items()):
                if f.done():
                    results[i] = f.result()
                    del running[i]
            time.sleep(0.02)
        return results

    def lagrange(
        y_c: np.ndarray, interruptible: bool = True
    ) -> tuple[float, np.ndarray, list[BlockSolution]] | None:
        costs = split.priced_costs(y_c)
        tasks = [(b, c, left(), wall_deadline) for b, c in zip(split.blocks, costs, strict=True)]
        sols: list[BlockSolution] | None = run(solve_priced, tasks, interruptible)
        if sols is None:
            return None
        out.region_seconds += sum(x.seconds for x in sols)
        out.iterations += 1
        bound = split.bound(y_c, sols) if all(x.x is not None for x in sols) else -math.inf
        return bound, split.point(sols), sols

    def dive_limit(task: tuple[Any, ...], waiting: int) -> tuple[Any, ...]:
        """A group's dive as it starts in the portfolio: the time left less 20 s for each
        dive still waiting per free worker. Groups' dives differ (on the 20×30×4 rung one
        needed more than the fair share of 57 s while the others took ~15-25 s), and a
        plan needs every group's."""
        limit = max(left() * slots() / (waiting + 1), left() - 20.0 * waiting / slots())
        return (task[0], task[1], limit, *task[3:])

    def primal(x_bar: np.ndarray, source: str) -> np.ndarray | None:
        """A plan from the point ``x_bar``; the prices its LPs imply."""
        began = time.perf_counter()
        extras = split.localised(data, x_bar)
        # each group's fair share of the time left (the groups queue on the workers)
        share = left() * slots() / max(1, len(regions))
        tasks = [(b, e, share, wall_deadline, True) for b, e in zip(regions, extras, strict=True)]
        sols: list[BlockSolution] = run(solve_primal, tasks, False, dive_limit) or []
        out.region_seconds += sum(x.seconds for x in sols)
        prices = np.zeros(len(split.coupling))
        counts = np.zeros(len(split.coupling))
        for sol, extra, block in zip(sols, extras, regions, strict=True):
            if sol.row_dual is not None:
                dual = sol.row_dual[len(block.rows) :]
                np.add.at(prices, extra.row_ids, dual)
                np.add.at(counts, extra.row_ids, 1.0)
        y_next = split.project(np.where(counts > 0, prices / np.maximum(counts, 1), 0.0))
        if any(x.x is None for x in sols) or left() <= 0:
            log.info("split: a region's dive did not finish: %s", [x.status for x in sols])
            return None
        region_x = split.point([*sols, BlockSolution(NIW_BLOCK, "", None, None)])
        niw = split.blocks[-1]
        niw_sol = solve_primal(data, niw, split.niw_localised(region_x), left(), dive=False)
        if niw_sol.x is None or (niw_sol.slack is not None and niw_sol.slack.max(initial=0) > 1e-7):
            log.info("split: the NIW schedule does not close (%s)", niw_sol.status)
            return y_next
        x = split.assemble(data, sols, extras, niw_sol)
        viol = split.violation(x)
        objective = relax.objective_of(x)
        out.assembly_seconds += time.perf_counter() - began
        log.info("split: plan %.2f from %s, largest row violation %.2e", objective, source, viol)
        if viol <= 1e-5:
            out.offer_plan(split.values(x), objective, source)
        return y_next

    def take_whole() -> None:
        """The whole relaxation's bound and a plan from its point (the portfolio)."""
        try:
            sol: BlockSolution = whole.result()
        except Exception:  # a worker lost (memory, Dask): the rounds' bound and plans stand
            log.exception("split: the whole relaxation failed")
            return
        log.info("split: the whole relaxation: %s, %.1f s", sol.status, sol.seconds)
        out.region_seconds += sol.seconds
        if sol.row_dual is None or sol.x is None:
            return
        out.offer_bound(relax.dual_bound(sol.row_dual), "LP relaxation (whole, interior point)")
        if sol.plan is not None:
            viol, objective = split.violation(sol.plan), relax.objective_of(sol.plan)
            log.info(
                "split: plan %.2f from the whole relaxation's dive, violation %.2e", objective, viol
            )
            if viol <= 1e-5:
                out.offer_plan(split.values(sol.plan), objective, "the whole relaxation's dive")
        out.record_round(out.lower_bound, time.perf_counter() - started, "split whole LP")
        # its dives on every worker take about the first plan's time × its slots / workers
        expected = first_plan_s * first_slots / max(1, int(pool.workers))
        if left() > expected and out.gap > settings.gap:
            primal(sol.x, "group dives from the whole relaxation's point")
        else:
            log.info(
                "split: %.0f s left, %.0f s expected: no plan from its point", left(), expected
            )

    # round 1 at cost-based prices; the first plan follows its point
    y = split.initial_prices(data)
    first = lagrange(y, interruptible=False)
    assert first is not None
    bound, x, _ = first
    out.offer_bound(bound, "Lagrangian (region LPs)")
    first_slots, began = slots(), time.perf_counter()
    if left() > 0:
        primal(x, "regions (split LP dives)")
    first_plan_s = time.perf_counter() - began
    best_y, best_x, theta, stall = y, x, 0.0125, 0
    scale = np.maximum(np.abs(y), 1e-3 * float(np.abs(y).max(initial=1.0)))
    improved = False
    while left() > 0 and out.iterations < settings.max_iterations:
        out.record_round(bound, time.perf_counter() - started, "split")
        if out.gap <= settings.gap or (whole is not None and whole.done()):
            break
        if out.iterations % 3 == 0 and improved and whole is None:
            # a plan from the best bound's point (the average's plans cost 47-60 % more on
            # the 20×30×4 rung: its NIW shares mix rounds); in the portfolio the worker is
            # kept for the Lagrangian bound until the whole relaxation's point is there
            primal(best_x, "regions (split LP dives)")
            improved = False
        # sign steps, each price moved by a share of its cost-based size: on the 12×15×4
        # rung they raised the bound where Polyak's steps (towards the plan) did not
        if stall:  # back to the best prices, shorter steps
            theta, y, x = theta / 2, best_y, best_x
        g = split.subgradient(x, y)
        if not np.any(g):
            break
        y = split.project(y + theta * scale * np.sign(g))
        if left() <= 0:
            break
        step = lagrange(y)
        if step is None:
            break  # the whole relaxation finished: its bound is the best any prices give
        bound, x, _ = step
        if bound > out.lower_bound:
            best_y, best_x, stall, improved = y, x, 0, True
            theta = min(0.1, theta * 1.5)
        else:
            stall = 1
        out.offer_bound(bound, "Lagrangian (region LPs)")
    if whole is not None:
        while not whole.done() and left() > 0:
            time.sleep(0.05)
        if whole.done():
            take_whole()
        else:
            whole.cancel()
            log.info("split: the whole relaxation did not finish in time")
    out.seconds = time.perf_counter() - started
    return out
