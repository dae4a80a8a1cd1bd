"""The operator view of a stored plan, from the warehouse: the fleet it started from, quotas,
why each region looks as it does (`explain`), and last hour's demand against its forecast.
Rendered by reports/operator.py (artifact, `plans show`) and reports/plan_report.py (page)."""

from __future__ import annotations

import logging
from typing import Any

import duckdb
import pandas as pd

from flows.planning import rebuild_data
from flows.warehouse.sqlfiles import run
from planner.config import FleetConfig
from planner.ilp.data import FleetState
from planner.ilp.explain import explain
from reports.operator import OperatorView, build_view

log = logging.getLogger(__name__)


def current_vms(con: duckdb.DuckDBPyConnection, plan_id: str) -> dict[tuple[str, str], int]:
    """VMs (on-demand + spot) per region and type in the state the plan started from."""
    header = run(con, "plans/plan_header", plan_id=plan_id).df()
    if header.empty:
        return {}
    state = FleetState.from_json(header.iloc[0]["state"])
    out: dict[tuple[str, str], int] = {}
    for mapping in (state.vms, state.spot_vms):
        for key, n in mapping.items():
            out[key] = out.get(key, 0) + int(n)
    return out


def operator_view(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    plan: Any,
    quality: dict[str, Any] | None = None,
    verified: bool | None = None,
    versus: pd.DataFrame | None = None,
) -> OperatorView:
    try:
        explained = explain(plan, rebuild_data(con, cfg, plan))
    except (KeyError, ValueError, IndexError) as exc:  # a plan of another config
        log.warning("plan %s: no binding reasons (%s)", plan.plan_id, exc)
        explained = None
    if versus is None:
        hour = pd.Timestamp(plan.start) - pd.Timedelta(hours=1)
        versus = run(con, "quality/demand_vs_forecast", hour=hour).df()
    return build_view(
        plan,
        current=current_vms(con, plan.plan_id),
        quotas={(e.region, e.vm_type): e.quota for e in cfg.fleet},
        explained=explained,
        quality=quality,
        verified=verified,
        versus=versus,
    )
