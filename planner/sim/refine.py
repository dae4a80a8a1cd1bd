"""Refining each family's best point on its continuous dial, by one rule for every family.

The grids of ``planner.sim.sweep`` move their continuous dials in coarse steps (target
pressure and scale-out level by 0.1), so a family's cheapest point meeting the targets can be
a grid artefact: on the ServeGen log the SLO-aware scaler at target 0.42 is ~4 % cheaper than
at 0.4. After the coarse grid, each *group* (the reactive family, the SLO-aware family, and
each plan mode: LT-UA, LT-R, LT-R at the SLO-aware dials, LT-F; LT-I and LT-U have no
continuous dial) is refined the same way, and per family only the group that holds the
family's cheapest row meeting the targets (so the plan family, with its several modes, gets
no more extra draws than a baseline: the same number of points per family):

1. take the group's cheapest row meeting the targets (none: the group is left alone);
2. its grid neighbours: the rows of the group with every other dial equal (cooldowns, NIW
   cap, quantile, hand-over, scale-out only on queueing) at the next lower and the next
   higher position of the continuous dial;
3. add the points ``STEPS`` (½ and ¼) of the way from the best point to each neighbour, i.e.
   the step halved twice: an interior best point gets four points, one at the grid's edge
   two (the grid's range is never left).

The continuous dial of each group, with the grid's own derivation rules kept:

* ``reactive``: the level (scale-out, target, scale-in thresholds), each interpolated
  linearly between the grid's levels (the grid's levels are hand-set tuples, not a formula);
* the SLO-aware dials (``slo-reactive``, LT-R at the SLO-aware dials, LT-F): the target
  pressure, scale-out and scale-in derived from it as the grid does
  (``planner.sim.sweep.slo_levels``: +0.1 capped at 0.98, or 1.0 for queue-only; 0.7 ×);
* LT-R's own grid: its target; LT-UA: its escape threshold ``ahead``.

Running the refined points and taking the frontier over coarse and refined rows together
can only lower (or keep) each family's best point: every family gets the same rule and the
same number of extra points for the same grid shape, baselines included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from planner.sim.sweep import TARGETS, Point, meets, slo_levels

STEPS = (0.5, 0.25)  # of the way from the best point to each grid neighbour


def group(family: str, params: Mapping[str, Any]) -> str:
    """The refinement group of a point: its family, and for the plan family its mode (LT-R
    at the SLO-aware dials apart)."""
    if family != "plan":
        return family
    mode = str(params.get("mode", ""))
    slo_dials = mode == "lt-r" and "cooldown_in_min" in params
    return f"plan:{mode}+slo-dials" if slo_dials else f"plan:{mode}"


def dial(family: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The continuous dial's keys of a point (empty: none, the point is not refined)."""
    if family == "reactive":
        return ("up", "target", "down")
    if "up" in params and "target" in params:
        return ("target",)  # up and down derived from it (slo_levels)
    for key in ("target", "ahead"):
        if key in params:
            return (key,)
    return ()


def _position(params: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(float(params[k]) for k in keys)


def _fixed(params: Mapping[str, Any], keys: tuple[str, ...]) -> frozenset[tuple[str, Any]]:
    """Every other dial of a point; for the SLO-aware dials whether it scales out on
    queueing only (its ``up`` is 1.0), the one discrete choice ``up`` carries."""
    derived = {"up", "down"} if keys == ("target",) and "up" in params else set()
    out = {(k, v) for k, v in params.items() if k not in keys and k not in derived}
    if derived:
        out.add(("queue_only", float(params["up"]) >= 1.0))
    return frozenset(out)


def _between(
    family: str, params: Mapping[str, Any], keys: tuple[str, ...], to: tuple[float, ...]
) -> list[Point]:
    """The points ``STEPS`` of the way from ``params`` to position ``to``."""
    here = _position(params, keys)
    out = []
    for f in STEPS:
        at = {k: round(a + f * (b - a), 4) for k, a, b in zip(keys, here, to, strict=True)}
        if keys == ("target",) and "up" in params:
            at = slo_levels(at["target"], float(params["up"]) >= 1.0)
        out.append(Point(family, {**params, **at}))
    return out


def refine_group(
    rows: Sequence[Mapping[str, Any]], targets: Mapping[str, float] = TARGETS
) -> list[Point]:
    """The refined points of one group's rows (see the module docstring)."""
    ok = [r for r in rows if meets(r, targets)]
    if not ok:
        return []
    best = min(ok, key=lambda r: r["gpu_hours"])
    family, params = str(best["family"]), best["params"]
    keys = dial(family, params)
    if not keys:
        return []
    fixed, here = _fixed(params, keys), _position(params, keys)
    positions = {
        _position(r["params"], keys)
        for r in rows
        if dial(r["family"], r["params"]) == keys and _fixed(r["params"], keys) == fixed
    }
    lower = [x for x in positions if x < here]
    higher = [x for x in positions if x > here]
    out = []
    for neighbours, pick in ((lower, max), (higher, min)):
        if neighbours:
            out += _between(family, params, keys, pick(neighbours))
    return out


def refine(
    rows: Sequence[Mapping[str, Any]], targets: Mapping[str, float] = TARGETS
) -> list[Point]:
    """The refined points over ``rows`` (one replay's rows: pass each plan variant's rows
    apart) of each family's best group (the group of its cheapest row meeting the targets),
    those already among ``rows`` left out."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(group(r["family"], r["params"]), []).append(r)
    best: dict[str, Mapping[str, Any]] = {}
    ok = [r for r in rows if meets(r, targets)]
    for r in sorted(ok, key=lambda r: float(r["gpu_hours"]), reverse=True):
        best[str(r["family"])] = r  # the family's cheapest written last
    seen = {(r["family"], frozenset(r["params"].items())) for r in rows}
    out = []
    for mine in (groups[group(b["family"], b["params"])] for b in best.values()):
        for pt in refine_group(mine, targets):
            if (pt.family, frozenset(pt.params.items())) not in seen:
                seen.add((pt.family, frozenset(pt.params.items())))
                out.append(pt)
    return out
