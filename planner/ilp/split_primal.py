"""The split relaxation's primal rounds (planner.ilp.split_lp's module docstring, "The
plan"): each region block's coupling rows localised at a point, the NIW block's balance at
the regions' service, and the whole point assembled from the blocks' dives."""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import sparse

from planner.ilp.data import PlanningData
from planner.ilp.split_tasks import BlockSolution, Localised
from planner.ilp.variables import FAMILIES, FLOW_UNIT, Values

if TYPE_CHECKING:
    from planner.ilp.split_lp import Split

NIW_BLOCK = "niw"
Parts = dict[tuple[int, int], float]  # (coupling row, block) → the block's part of a NIW row


def niw_index(split: Split) -> int:
    """The NIW block's index (the last block), −1 without one."""
    return len(split.blocks) - 1 if split.blocks[-1].name == NIW_BLOCK else -1


def localised(split: Split, data: PlanningData, x_bar: np.ndarray) -> list[Localised]:
    """Every region block's coupling rows, the other blocks' columns held at ``x_bar``
    (flows routed in), its own flows routed out held at ``x_bar``, and NIW service as
    ``x_bar`` has the regions serve it, within what has arrived (``x_bar`` all zero:
    every region on its own, NIW served as it arrives, split by interactive demand).
    ``x_bar`` is :func:`repaired` first (a first-order solver's point holds its rows only
    to its tolerance)."""
    x_bar = repaired(split, data, x_bar)
    names = [n for n, _ in sorted(split.relax.row.items(), key=lambda kv: kv[1])]
    targets = _niw_targets(split, data, x_bar, names)
    return [
        _localise(split, data, b, x_bar, names, targets)
        for b, block in enumerate(split.blocks)
        if block.name != NIW_BLOCK
    ]


def repaired(split: Split, data: PlanningData, x_bar: np.ndarray) -> np.ndarray:
    """``x_bar`` within its column bounds, and the flows each origin routes to other blocks
    (held there in a group's LP) scaled down where they sum to more than its demand, so
    every group's demand cover row can hold with them. PDLP's point (the whole LP at 1e-4)
    broke both by ~1e-4 and its group LPs were infeasible (the 20×30×4 rung: three of four)."""
    x: np.ndarray = np.clip(x_bar, split.relax.col_lo, split.relax.col_hi)
    home = {r: b for b, block in enumerate(split.blocks) for r in block.regions}
    away: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for j, (family, key) in enumerate(split.family_key):
        if family == "f" and home[key[1]] != home[key[0]]:
            away[(key[0], *key[2:])].append(j)
    for key, cols in away.items():
        cap, total = data.demand.get(key, 0.0) / FLOW_UNIT, float(x[cols].sum())
        if total > cap:
            x[cols] *= cap / total
    return x


Targets = tuple[dict[int, float], dict[int, float], Parts]  # need, extra, parts


def _niw_targets(split: Split, data: PlanningData, x_bar: np.ndarray, names: list[str]) -> Targets:
    """Per NIW row: what the regions serve (what ``x_bar`` has them serve, within what has
    arrived: the backlog never goes negative, at least what the deadline needs), what they
    may serve beyond it (:func:`_extra`), and each region block's part of it."""
    niw = niw_index(split)
    isolated = not x_bar.any()
    home: dict[tuple[str, int], float] = defaultdict(float)
    for (r0, _m, _k, tt), d in data.demand.items():
        home[(r0, tt)] += d

    def by_demand(ci: int, t: int, blocks: set[int]) -> None:
        for b in blocks:  # none served: by interactive demand
            parts[(ci, b)] = 1e-9 + sum(home[(r, t)] for r in split.blocks[b].regions)

    parts: Parts = defaultdict(float)
    parts_of: dict[int, set[int]] = {}
    by_model: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for ci, i in enumerate(split.coupling):
        if not names[i].startswith("niw_balance["):
            continue
        m, t = names[i][len("niw_balance[") : -1].split(",")
        by_model[m].append((int(t), ci))
        row = split.coupling_rows[ci]
        blocks = split.col_block[row.indices]
        parts_of[ci] = set(blocks.tolist()) - {niw}
        for b in parts_of[ci]:
            sel = blocks == b
            parts[(ci, b)] = max(0.0, float(row.data[sel] @ x_bar[row.indices[sel]]))
        if isolated:
            by_demand(ci, int(t), parts_of[ci])
    need: dict[int, float] = {}
    extra: dict[int, float] = {}
    for m, rows in by_model.items():
        available = arrived = served = 0.0
        backlog: list[tuple[int, float]] = []
        for t, ci in sorted(rows):
            lo = split.relax.row_lo[split.coupling[ci]]  # arrivals (the opening backlog first)
            available, arrived = available + lo, arrived + lo
            wanted = sum(parts[(ci, b)] for b in parts_of[ci])
            if isolated:
                wanted = lo  # nothing to follow: serve arrivals as they come
            due = arrived - data.niw_window(m, t) / FLOW_UNIT - served
            need[ci] = max(0.0, min(max(wanted, due), available))
            available, served = available - need[ci], served + need[ci]
            backlog.append((ci, available))
            if need[ci] > 0 and wanted <= 1e-12:
                by_demand(ci, t, parts_of[ci])
        extra.update(_extra(backlog))
    return need, extra, parts


def _extra(backlog: list[tuple[int, float]]) -> dict[int, float]:
    """NIW the regions may serve beyond the targets, per row of one model in time order,
    from the backlog B[t] the targets leave: E[t] = M[t] − M[t−1] with
    M[t] = min_{t' ≥ t} B[t'] (M[0] = 0), so whatever part of it is served,
    Σ_{t' ≤ t} E[t'] = M[t] ≤ B[t]: the backlog stays ≥ 0 in every hour."""
    out: dict[int, float] = {}
    later, floors = float("inf"), []
    for _ci, b in reversed(backlog):
        later = min(later, max(b, 0.0))
        floors.append(later)
    before = 0.0
    for (ci, _b), floor in zip(backlog, reversed(floors), strict=True):
        out[ci] = max(0.0, floor - before)
        before = max(before, floor)
    return out


# ci, cols, coefs, rhs, shortfall coefficient and cost, surplus bound and cost
Row = tuple[int, list[Any], list[Any], float, float, float, float, float]


def _localise(
    split: Split,
    data: PlanningData,
    b: int,
    x_bar: np.ndarray,
    names: list[str],
    targets: Targets,
) -> Localised:
    """Block ``b``'s coupling rows at ``x_bar`` (:func:`localised`)."""
    block, keys = split.blocks[b], split.family_key
    local = _local_index(split, b)
    rows: list[Row] = []
    for ci, i in enumerate(split.coupling):
        row = _localised_row(split, data, b, ci, names[i], x_bar, targets)
        if row is not None:
            rows.append((ci, local[row[0]].tolist(), *row[1:]))
    away = [
        int(local[j])
        for j in block.cols
        if keys[j][0] == "f" and keys[j][1][1] not in block.regions
    ]
    fc = np.asarray(away, dtype=np.int64)  # flows routed away from b (f[b, r'], r' ≠ b)
    return _localised(rows, len(block.cols), fc, x_bar[block.cols[fc]] if len(fc) else np.zeros(0))


def _local_index(split: Split, b: int) -> np.ndarray:
    """Whole-relaxation column → block ``b``'s column (−1 outside it)."""
    local = np.full(len(split.relax.cost), -1, dtype=np.int64)
    local[split.blocks[b].cols] = np.arange(len(split.blocks[b].cols))
    return local


def _localised(rows: list[Row], n: int, fixed: np.ndarray, values: np.ndarray) -> Localised:
    """The rows (each held at its rhs on both sides) as a Localised over ``n`` columns."""
    ri = [r for r, row in enumerate(rows) for _ in row[1]]
    rj = [j for row in rows for j in row[1]]
    rv = [v for row in rows for v in row[2]]
    rhs = np.asarray([row[3] for row in rows], dtype=float)
    surplus = np.asarray([row[6] for row in rows], dtype=float)
    return Localised(
        sparse.csr_matrix((rv, (ri, rj)), shape=(len(rows), n)),
        rhs,
        rhs.copy(),
        np.asarray([row[4] for row in rows], dtype=float),
        np.asarray([row[5] for row in rows], dtype=float),
        fixed,
        values,
        np.asarray([row[0] for row in rows], dtype=np.int64),
        surplus if surplus.any() else None,
        np.asarray([row[7] for row in rows], dtype=float) if surplus.any() else None,
    )


def _localised_row(
    split: Split,
    data: PlanningData,
    b: int,
    ci: int,
    name: str,
    x_bar: np.ndarray,
    targets: Targets,
) -> tuple[np.ndarray, list[float], float, float, float, float, float] | None:
    """Coupling row ``ci`` held in block ``b``: its columns there (whole-relaxation indices),
    coefficients, target (both sides), shortfall coefficient and cost, surplus bound and
    cost (NIW served beyond the target: ``b``'s part of the extra, valued at the backlog
    it saves at the horizon); None if the row stays out of ``b`` (no column of ``b``,
    flows routed away, the cut over every region)."""
    row = split.coupling_rows[ci]
    blocks = split.col_block[row.indices]
    mine = blocks == b
    if not mine.any() or name.startswith("vm_rounding"):
        return None  # the cut over every region: every integer plan satisfies it
    cols, coefs = row.indices[mine], row.data[mine].tolist()
    if name.startswith("niw_balance["):
        need, extra, parts = targets
        part = {bb: parts[(ci, bb)] for bb in set(blocks.tolist()) - {niw_index(split)}}
        total = sum(part.values())
        share = part[b] / total if total > 1e-12 else 1.0 / max(1, len(part))
        late = data.unmet_penalty.get(data.deferrable or "", 0.0) * FLOW_UNIT
        carry = split.col_of.get(("b", (name[len("niw_balance[") :].split(",")[0], len(data.T))))
        value = 0.0 if carry is None else float(split.relax.cost[carry])
        sign = float(np.sign(coefs[0])) or 1.0
        return cols, coefs, need[ci] * share, sign, late, extra[ci] * share, -value
    if name.split("[")[1].split(",")[0] not in split.blocks[b].regions:
        return None  # flows routed away from b: held at x_bar
    # interactive_assign of this region: what others route in is fixed
    other = ~mine
    fixed_in = float(row.data[other] @ x_bar[row.indices[other]])
    target = split.relax.row_lo[split.coupling[ci]] - fixed_in
    late = data.unmet_penalty[name[:-1].split(",")[2]] * FLOW_UNIT
    return cols, coefs, target, 1.0, late, 0.0, 0.0


def niw_localised(split: Split, region_x: np.ndarray) -> Localised:
    """The NIW block's balance rows with the regions' service at ``region_x`` fixed (its
    deadline rows are its own): the backlog the served NIW leaves. Its shortfall cost is
    never paid by a feasible plan (the assembly checks)."""
    b = len(split.blocks) - 1
    local = _local_index(split, b)
    rows: list[Row] = []
    for ci, i in enumerate(split.coupling):
        row = split.coupling_rows[ci]
        mine = split.col_block[row.indices] == b
        if mine.any():
            served = float(row.data[~mine] @ region_x[row.indices[~mine]])
            cols, coefs = local[row.indices[mine]].tolist(), row.data[mine].tolist()
            rows.append((ci, cols, coefs, split.relax.row_lo[i] - served, 1.0, 1e9, 0.0, 0.0))
    return _localised(rows, len(split.blocks[b].cols), np.zeros(0, dtype=np.int64), np.zeros(0))


def assemble(
    split: Split,
    solutions: list[BlockSolution],
    extras: list[Localised],
    pool_niw: BlockSolution,
) -> np.ndarray:
    """The whole point from the region dives and the NIW block: an import a region
    could not serve is unmet at its origins (the flows routed in reduced pro rata, then
    the region's own flow), so demand cover and assignment rows hold."""
    x = np.zeros(len(split.relax.cost))
    regions = [b for b in split.blocks if b.name != NIW_BLOCK]
    for block, sol in zip(regions, solutions, strict=True):
        assert sol.x is not None
        x[block.cols] = sol.x
    names = {i: n for n, i in split.relax.row.items()}
    into: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for j, (family, key) in enumerate(split.family_key):
        if family == "f":
            r0, r1, mm, kk, tt = key
            into[(r1, mm, kk, str(tt))].append((r0, j))
    for block, sol, extra in zip(regions, solutions, extras, strict=True):
        assert sol.slack is not None
        for short, ci in zip(sol.slack, extra.row_ids, strict=True):
            name = names[int(split.coupling[ci])]
            if short <= 1e-9 or not name.startswith("interactive_assign["):
                continue
            r, m, k, t = name[name.index("[") + 1 : -1].split(",")
            # flows from other blocks first (fixed there), the block's own flows last
            flows = sorted(into[(r, m, k, t)], key=lambda rf: rf[0] in block.regions)
            for r0, j in flows:
                cut = min(short, x[j])
                if cut <= 0:
                    continue
                x[j] -= cut
                x[split.col_of[("e", (r0, m, k, int(t)))]] += cut
                short -= cut
    nb = split.blocks[-1]
    if nb.name == NIW_BLOCK and pool_niw.x is not None:
        x[nb.cols] = pool_niw.x
    return x


def values(split: Split, x: np.ndarray) -> Values:
    """Every family's values at ``x``, in plan units (flows × FLOW_UNIT)."""
    out: Values = {family: {} for family in FAMILIES}
    for j, (family, key) in enumerate(split.family_key):
        if family:
            out[family][key] = FAMILIES[family].scale * float(x[j])
    return out


def family_costs(split: Split, x: np.ndarray) -> dict[str, float]:
    """The objective at ``x`` by variable family ($, the families that cost anything)."""
    out: dict[str, float] = defaultdict(float)
    paid = split.relax.cost * x
    for j in np.flatnonzero(paid):
        out[split.family_key[j][0]] += float(paid[j])
    return {f: round(v, 2) for f, v in sorted(out.items())}


def shortfall_costs(
    split: Split, solutions: list[BlockSolution], extras: list[Localised]
) -> dict[str, float]:
    """The groups' shortfalls on their localised rows, $ by row family (what pinning the
    coupling rows at a point costs a primal round)."""
    names = {i: n for n, i in split.relax.row.items()}
    out: dict[str, float] = defaultdict(float)
    for sol, extra in zip(solutions, extras, strict=True):
        if sol.slack is None:
            continue
        for short, cost, ci in zip(sol.slack, extra.slack_cost, extra.row_ids, strict=True):
            if short > 1e-9:
                out[names[int(split.coupling[ci])].split("[")[0]] += float(short * cost)
    return {k: round(v, 2) for k, v in out.items()}
