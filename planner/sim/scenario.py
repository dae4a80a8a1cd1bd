"""An evaluation's scenario, built from the log alone: the true demand the oracle plans on,
and the policies compared (baselines set up from the log, plan-following ones from the hourly
plans)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from planner.config import FleetConfig
from planner.ilp.plan import Plan
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams
from planner.sim.fluid import Policy
from planner.sim.plans import plan_targets
from planner.sim.policies import PlanFollowing, Reactive, Siloed


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
) -> list[Policy]:
    """The named policies of an evaluation over ``demand``: the baselines set up from the
    log's first hour and peaks, the plan-following ones from ``plans`` (``forecast``: made
    on forecasts, ``oracle``: on the true demand)."""
    first_hour = demand.tokens[:60].mean(axis=0) / 60.0  # [r, m, k] tokens/s
    peak_min = demand.tokens.max(axis=0) / 60.0
    out: list[Policy] = []
    for name in names:
        if name == "reactive":
            out.append(Reactive(p, first_hour))
        elif name == "siloed":
            inter = peak_min.copy()
            inter[:, :, p.deferrable] = 0.0
            niw_hours = demand.hourly_tokens_per_s("mean")[:, :, :, p.deferrable]
            out.append(Siloed(p, inter, niw_hours.max(axis=0)))
        elif name in ("lt-i", "lt-u", "lt-ua"):
            made = plan_targets(plans["forecast"], p)
            out.append(PlanFollowing(p, made.hourly, made.expected, mode=name, name=name))
        elif name == "oracle":
            made = plan_targets(plans["oracle"], p)
            out.append(PlanFollowing(p, made.hourly, made.expected, mode="lt-i", name="oracle"))
        else:
            raise ValueError(f"unknown policy {name!r}")
    return out
