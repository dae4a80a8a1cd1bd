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

The portfolio (two workers or more, planner.ilp.split_portfolio): the whole relaxation by
first-order PDLP on one worker beside the first round and plan; its checked bound is close
to the maximum of L (20×30×4 rung: $558,219 after ~95-150 s, the LP $558,380), so no more
rounds run and both workers dive from its point when it ends. The workers' tasks are in
planner.ilp.split_tasks, the primal rounds' algebra in planner.ilp.split_primal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse

from planner.ilp.data import PlanningData
from planner.ilp.highs_lp import INF, HighsRelaxation
from planner.ilp.split_primal import NIW_BLOCK
from planner.ilp.split_tasks import Block, BlockSolution
from planner.ilp.variables import INTEGER_FAMILIES, REGIONLESS_FAMILIES


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
            names.append(NIW_BLOCK if family in REGIONLESS_FAMILIES else group[str(key[0])])
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
                if family_key[int(j)][0] in INTEGER_FAMILIES
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
            if family in INTEGER_FAMILIES
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

    def boxed_blocks(self) -> list[Block]:
        """The blocks with the relaxation's implied box (HighsRelaxation.box, the bound's
        own) as their column bounds: every block LP is bounded at any prices, and its
        minimum is the most its rows' duals can add to the bound at those prices."""
        lo, hi = self.relax.box
        return [replace(b, col_lo=lo[b.cols], col_hi=hi[b.cols]) for b in self.blocks]

    def block_losses(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Per block, how far its part of the bound from the row duals ``y`` lies under its
        part of the objective at ``x`` (both at the prices ``y`` sets on the coupling rows,
        over the implied box): Σ_j r_j·(x_j − side_j) + Σ_i y_i·((A x)_i − rhs_i) over the
        block's columns and rows. Where re-solving a block can raise the bound most."""
        relax, (lo, hi) = self.relax, self.relax.box
        y = np.where((y > 0) & (relax.row_lo <= -INF), 0.0, y)
        y = np.where((y < 0) & (relax.row_hi >= INF), 0.0, y)
        rhs = np.where(y > 0, relax.row_lo, np.where(y < 0, relax.row_hi, 0.0))
        r = relax.cost - relax.matrix.T @ y
        col = r * (x - np.where(r > 0, lo, np.where(r < 0, hi, 0.0)))
        row = y * (relax.matrix @ x - rhs)
        out = np.bincount(self.col_block, weights=col, minlength=len(self.blocks))
        for b, block in enumerate(self.blocks):
            out[b] += float(row[block.rows].sum())
        return np.asarray(out, dtype=float)

    def refined(self, y: np.ndarray, solutions: list[BlockSolution | None]) -> np.ndarray:
        """``y`` with each block's rows replaced by the row duals of its LP solved at the
        prices ``y`` sets on the coupling rows (:meth:`boxed_blocks`), where it has them.
        Any y gives a bound (HighsRelaxation.dual_bound); at fixed coupling prices the
        bound is a sum over blocks, and a block's exact duals give its LP's minimum, the
        most its part can be."""
        out = y.copy()
        for block, sol in zip(self.blocks, solutions, strict=True):
            if sol is not None and sol.row_dual is not None:
                out[block.rows] = sol.row_dual[: len(block.rows)]
        return out

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
