"""The hourly steps in their order, for callers that run them back to back (the `plan`
command, backfill): forecast (reusing forecasts already stored at the hour) → plan, store,
publish. Each step only calls forward; planning itself never forecasts."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import duckdb

from flows.forecasting import forecast_for_plan
from flows.planning import PlanRun, run_plan
from planner.config import FleetConfig


def forecast_and_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    as_of: datetime,
    out_root: Path | None,
) -> PlanRun:
    """The forecast step at ``as_of``'s hour, then :func:`flows.planning.run_plan`."""
    info = forecast_for_plan(con, cfg, as_of)
    result = run_plan(con, cfg, as_of, out_root)
    result.forecast.update(info)
    return result
