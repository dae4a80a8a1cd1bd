"""A safe lower bound on an LP from any row multipliers (Neumaier and Shcherbina, "Safe
bounds in linear and mixed-integer linear programming", Math. Program. 99, 2004), so that an
approximate dual (an interior point stopped at a loose tolerance, without crossover, or a
first-order method's) gives a *valid* bound on the relaxation and hence on the plan.

The LP is  min cᵀx + c₀  over  lo ≤ A x ≤ hi,  l ≤ x ≤ u.  For multipliers y with the signs
the rows allow (y_i > 0 only where lo_i is finite, y_i < 0 only where hi_i is finite) and any
feasible x, with r = c − Aᵀy:

    cᵀx = yᵀ(A x) + rᵀx ≥ Σ_i (y_i⁺·lo_i − y_i⁻·hi_i) + Σ_j min(r_j·l_j, r_j·u_j),

since y_i⁺ (A x)_i ≥ y_i⁺ lo_i, −y_i⁻ (A x)_i ≥ −y_i⁻ hi_i and r_j x_j ≥ min(r_j l_j, r_j u_j).
A y with a wrong sign for its row is projected (that entry set to 0), never trusted. A column
whose r_j points at an infinite bound makes the right side −∞, so the box used is the tighter
of the declared bounds and bounds implied by the rows (:func:`implied_bounds`); a column still
unbounded on its r_j's side gives −∞ (reported, not hidden). Floating point: r and the sums
are computed in double precision; the bound is lowered by a first-order bound on their
rounding error (Higham's γ_k = k·ε for a sum of k terms): k·ε·Σ_j (|c_j| + (|A|ᵀ|y|)_j)·|bound_j|
for r (k the longest column plus two) and (m + n + 2)·ε·(Σ|terms| + |c₀|) for the sums, so the
result stays a bound without directed rounding.

Implied bounds (the box shrunk to one that still holds an optimal solution, so the LP's
minimum over it is unchanged): (1) activity bounds, met by every feasible x: for a row
lo ≤ a·x ≤ hi and a column j in it, x_j ≤ (hi − min over the others of a·x)/a_j when
a_j > 0 (and the mirror cases), repeated until nothing changes (the NIW backlog chains
through the hours); (2) a column with c_j ≥ 0 that only helps its rows when raised
(a_ij > 0 only in rows with no upper side, a_ij < 0 only in rows with no lower side: VM
additions and releases, shortfalls) is, at some optimum, no larger than its rows need:
x_j ≤ max(l_j, max_i (side_i − the others' least help)/a_ij), the others within (1). Any
optimum lowered column by column to what its rows need stays feasible, costs no more and
meets these bounds. The bound then holds for the LP relaxation, hence for the integer
program (whose optimum is at least the relaxation's).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import sparse

INF = 1e20  # HiGHS's infinity; anything this large counts as infinite
SLACK = 1e-9  # implied bounds widened by this (relative) against rounding in their sums


def safe_lower_bound(
    cost: np.ndarray,
    matrix: sparse.spmatrix,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
    y: np.ndarray,
    offset: float = 0.0,
) -> float:
    """A lower bound on min cᵀx + offset over rows[0] ≤ A x ≤ rows[1], cols[0] ≤ x ≤ cols[1]
    from the multipliers ``y`` (module docstring; −inf when a column with a wrong-signed
    reduced cost has no finite bound on that side)."""
    lo, hi = rows
    x_lo, x_hi = cols
    y = np.where(np.isfinite(y), y, 0.0)
    y = np.where((y > 0) & (lo <= -INF), 0.0, y)  # projected onto the rows' sign cone
    y = np.where((y < 0) & (hi >= INF), 0.0, y)
    rhs = np.where(y > 0, lo, np.where(y < 0, hi, 0.0))
    a = sparse.csc_matrix(matrix)
    r = cost - a.T @ y
    side = np.where(r > 0, x_lo, np.where(r < 0, x_hi, 0.0))
    if np.any(np.abs(side) >= INF):
        return -math.inf
    row_terms, col_terms = y * rhs, r * side
    eps = float(np.finfo(float).eps)
    k = int(np.diff(a.indptr).max(initial=0)) + 2  # r_j: a dot product of k terms
    r_size = np.abs(cost) + abs(a).T @ np.abs(y)
    error = k * eps * float((r_size * np.abs(side)).sum())
    terms = float(np.abs(row_terms).sum() + np.abs(col_terms).sum()) + abs(offset)
    error += (len(y) + len(cost) + 2) * eps * terms  # the two sums and the offset
    return float(offset + row_terms.sum() + col_terms.sum() - error)


def implied_bounds(
    cost: np.ndarray,
    matrix: sparse.spmatrix,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
    passes: int = 60,
) -> tuple[np.ndarray, np.ndarray]:
    """The column box tightened by the rows (module docstring): activity bounds repeated up
    to ``passes`` times, then the helping columns' bounds. Never looser than ``cols``."""
    csr = sparse.csr_matrix(matrix)
    x_lo, x_hi = cols[0].astype(float).copy(), cols[1].astype(float).copy()
    for _ in range(passes):
        new_lo, new_hi = _activity_pass(csr, rows, (x_lo, x_hi))
        with np.errstate(invalid="ignore"):
            moved = (new_hi < x_hi - 1e-6 * (1 + np.abs(new_hi))) | (
                new_lo > x_lo + 1e-6 * (1 + np.abs(new_lo))
            )
        x_lo, x_hi = np.maximum(x_lo, new_lo), np.minimum(x_hi, new_hi)
        if not moved.any():
            break
    return x_lo, np.minimum(x_hi, _helping_bounds(cost, csr, rows, (x_lo, x_hi)))


def _terms(csr: sparse.csr_matrix, cols: tuple[np.ndarray, np.ndarray], least: bool) -> np.ndarray:
    """Per nonzero a_ij: the least (``least``) or greatest value of a_ij·x_j over the box
    (±inf where the box is open on that side)."""
    j, a = csr.indices, csr.data
    x_lo, x_hi = cols[0][j], cols[1][j]
    with np.errstate(invalid="ignore"):
        at_lo = np.where(x_lo <= -INF, np.where(a > 0, -np.inf, np.inf), a * x_lo)
        at_hi = np.where(x_hi >= INF, np.where(a > 0, np.inf, -np.inf), a * x_hi)
    return np.minimum(at_lo, at_hi) if least else np.maximum(at_lo, at_hi)


def _others(csr: sparse.csr_matrix, terms: np.ndarray) -> np.ndarray:
    """Per nonzero a_ij: the sum of its row's other terms (nan if one of them is infinite)."""
    rows = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    infinite = ~np.isfinite(terms)
    finite = np.where(infinite, 0.0, terms)
    total = np.bincount(rows, weights=finite, minlength=csr.shape[0])
    count = np.bincount(rows, weights=infinite.astype(float), minlength=csr.shape[0])
    rest = total[rows] - finite
    return np.where(count[rows] - infinite > 0, np.nan, rest)


def _activity_pass(
    csr: sparse.csr_matrix,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of activity bounds: every column's tightest lower and upper bound."""
    lo, hi = rows
    x_lo, x_hi = cols
    r_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    j, a = csr.indices, csr.data
    min_rest = _others(csr, _terms(csr, cols, least=True))  # nan: unbounded
    max_rest = _others(csr, _terms(csr, cols, least=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        from_hi = np.where(hi[r_of] < INF, (hi[r_of] - min_rest) / a, np.nan)
        from_lo = np.where(lo[r_of] > -INF, (lo[r_of] - max_rest) / a, np.nan)
    # widened by a relative 1e-9 against rounding in the sums; _others subtracts from a
    # row's total, which can cancel, so this is a margin, not a proof (a column bound may
    # be shaved by ~row length × ε × the row's size; the bound moves by far less)
    upper = np.where(a > 0, from_hi, from_lo)
    upper = upper + SLACK * (1.0 + np.abs(upper))
    lower = np.where(a > 0, from_lo, from_hi)
    lower = lower - SLACK * (1.0 + np.abs(lower))
    new_hi, new_lo = x_hi.copy(), x_lo.copy()
    ok = np.isfinite(upper)
    np.minimum.at(new_hi, j[ok], upper[ok])
    ok = np.isfinite(lower)
    np.maximum.at(new_lo, j[ok], lower[ok])
    return new_lo, new_hi


def _helping_bounds(
    cost: np.ndarray,
    csr: sparse.csr_matrix,
    rows: tuple[np.ndarray, np.ndarray],
    cols: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Upper bounds of the columns that only help their rows when raised and cost ≥ 0
    (module docstring, (2)); inf for every other column."""
    lo, hi = rows
    x_lo = cols[0]
    r_of = np.repeat(np.arange(csr.shape[0]), np.diff(csr.indptr))
    j, a = csr.indices, csr.data
    helps = ((a > 0) & (hi[r_of] >= INF)) | ((a < 0) & (lo[r_of] <= -INF))
    hurts = np.bincount(j, weights=~helps, minlength=len(cost)) > 0
    # a helping column needs at most (side − the others' worst) / a in each of its rows
    min_rest = _others(csr, _terms(csr, cols, least=True))
    max_rest = _others(csr, _terms(csr, cols, least=False))
    with np.errstate(invalid="ignore", divide="ignore"):
        need = np.where(a > 0, (lo[r_of] - min_rest) / a, (hi[r_of] - max_rest) / a)
    need = np.where(np.isnan(need), np.inf, need)
    free = ((a > 0) & (lo[r_of] <= -INF)) | ((a < 0) & (hi[r_of] >= INF))
    need = np.where(free, -np.inf, need)
    out = np.full(len(cost), -np.inf)
    np.maximum.at(out, j, need)
    out = np.maximum(out, x_lo)
    # no finite need and no finite lower bound: no cap (−∞ + ∞ would be NaN, −∞ a wrong box)
    finite = np.isfinite(out)
    out[finite] += SLACK * (1.0 + np.abs(out[finite]))
    out[~finite] = np.inf
    return np.where(hurts | (cost < 0), np.inf, out)
