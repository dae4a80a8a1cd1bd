"""An evaluation's scenario, built from the log alone: the true demand the oracle plans on,
and the policies compared (baselines set up from the log, plan-following ones from the hourly
plans)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from planner.config import FleetConfig
from planner.config.lt_f import LtfSettings
from planner.ilp.plan import Plan
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.fluid import Policy
from planner.sim.plans import plan_targets
from planner.sim.policies import Siloed
from planner.sim.sweep import Point, build_policy

# the policies an evaluation compares, as points of the sweep's families (their defaults)
EVALUATED = {
    "reactive": Point("reactive"),
    "siloed": Point("siloed", {"headroom": Siloed.headroom}),
    **{m: Point("plan", {"plans": "forecast", "mode": m}) for m in ("lt-i", "lt-u", "lt-ua")},
    "oracle": Point("plan", {"plans": "oracle", "mode": "lt-i"}),
    # LT-F at the config's dials (``lt_f``; these are its defaults, make_policies' lt_f)
    "lt-f": Point("plan", {"plans": "forecast", "mode": "lt-f", **LtfSettings().dials()}),
}


def truth_demand(cfg: FleetConfig, demand: MinuteDemand, p: FleetParams) -> pd.DataFrame:
    """Rows (hour, region, model, tier, value): each tier's planning metric measured from the
    log, extended 2 days past its end with the value 24 h earlier (the oracle's horizon)."""
    peak, mean = demand.hourly_tokens_per_s("peak"), demand.hourly_tokens_per_s("mean")
    records = []
    hours = peak.shape[0]
    for q, tier in enumerate(p.tiers):
        source = peak if cfg.tier(tier).planning_metric == "peak_token_rate" else mean
        for h in range(hours + 48):
            src_h = h if h < hours else hours - 24 + (h - hours) % 24
            for a, r in enumerate(p.regions):
                for i, m in enumerate(p.models):
                    value = float(source[max(src_h, 0), a, i, q])
                    hour = demand.start + pd.Timedelta(hours=h)
                    records.append((hour, r, m, tier, value))
    return pd.DataFrame(records, columns=["hour", "region", "model", "tier", "value"])


def make_policies(
    names: Sequence[str],
    p: FleetParams,
    demand: MinuteDemand,
    plans: dict[str, list[Plan]],
    lt_f: Mapping[str, Any] | None = None,
) -> list[Policy]:
    """The named policies of an evaluation over ``demand`` (``EVALUATED``, built by
    ``planner.sim.sweep.build_policy``), the plan-following ones from ``plans``
    (``forecast``: made on forecasts, ``oracle``: on the true demand); ``lt-f`` at the
    dials ``lt_f`` (the config's ``lt_f`` section, ``LtfSettings.dials``; default its
    defaults)."""
    unknown = [n for n in names if n not in EVALUATED]
    if unknown:
        raise ValueError(f"unknown policy {unknown[0]!r}")
    used = {EVALUATED[n].params["plans"] for n in names if "plans" in EVALUATED[n].params}
    targets = {k: plan_targets(plans[k], p) for k in used}
    points = dict(EVALUATED)
    if lt_f is not None:
        points["lt-f"] = Point("plan", {**EVALUATED["lt-f"].params, **lt_f})
    return [build_policy(points[n], p, demand, targets, name=n) for n in names]
