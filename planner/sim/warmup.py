"""The warm-up before a metered replay window (``simulate(metered_from=...)``): every family
runs its own policy from its own first fleet over the warm-up, and only the window is
metered, so no family's figure is decided by where it starts."""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.sim.fleet import FleetParams
from planner.sim.sweep import Point


def warmup_hours(points: Sequence[Point], p: FleetParams) -> int:
    """The default warm-up: the longest scale-in window of any point replayed, plus the
    longest VM lead time and model load, in whole hours. A scaler started from its first
    packing has then had every chance to hand back what it did not need (a 480-min window
    holds a pool through 8 quiet hours), and a plan's first purchase has served."""
    window = max((int(pt.params.get("cooldown_in_min", 0)) for pt in points), default=0)
    return math.ceil((window + int(p.lead_min.max()) + int(p.load_min.max())) / 60)
