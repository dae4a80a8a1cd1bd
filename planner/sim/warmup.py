"""The warm-up before a metered replay window (``simulate(metered_from=...)``): every family
runs its own policy from its own first fleet over the warm-up, and only the window is
metered, so a first fleet whose utilisation falls below its scale-in threshold has handed
back its surplus before the meter starts (a count in the middle band is kept: see
:func:`warmup_hours`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.sim.fleet import FleetParams
from planner.sim.sweep import Point


def warmup_hours(points: Sequence[Point], p: FleetParams) -> int:
    """The default warm-up: the longest scale-in window of any point replayed, plus the
    longest VM lead time and model load, in whole hours. What it covers: a pool whose
    utilisation is below its scaler's scale-in threshold has had a full window to shrink
    (a 480-min window holds a pool through 8 quiet hours), and a plan's first purchase has
    served. What it does not: a reactive scaler scales in only below ``down``, so a first
    count whose utilisation sits between ``down`` and ``up`` is kept however long the
    warm-up, and the window's figure still depends on that first fleet."""
    window = max((int(pt.params.get("cooldown_in_min", 0)) for pt in points), default=0)
    return math.ceil((window + int(p.lead_min.max()) + int(p.load_min.max())) / 60)
