"""Demand marts: recompute the hours touched by newly ingested files, in one transaction."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import duckdb

from flows.warehouse.sqlfiles import run, transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MartRefresh:
    start_hour: datetime | None
    end_hour: datetime | None
    rows: int

    @property
    def hours(self) -> int:
        if self.start_hour is None or self.end_hour is None:
            return 0
        return int((self.end_hour - self.start_hour).total_seconds() // 3600) + 1


def refresh_demand(con: duckdb.DuckDBPyConnection, full: bool = False) -> MartRefresh:
    """Recompute ``demand_hourly`` for pending files' hours (or the whole log with ``full``)."""
    rng = run(con, "marts/full_range" if full else "marts/pending_range").fetchone()
    start, end = rng if rng else (None, None)
    if start is None or end is None:
        return MartRefresh(None, None, 0)
    with transaction(con):
        if full:
            con.execute("DELETE FROM demand_hourly")
        else:
            run(con, "marts/delete_demand_hourly", start_hour=start, end_hour=end)
        run(con, "marts/insert_demand_hourly", start_hour=start, end_hour=end)
        run(con, "marts/mark_refreshed")
        rows = con.execute(
            "SELECT count(*) FROM demand_hourly WHERE hour BETWEEN ? AND ?", [start, end]
        ).fetchone()
    count = int(rows[0]) if rows else 0
    log.info("demand_hourly: recomputed %s .. %s (%d rows)", start, end, count)
    return MartRefresh(start, end, count)
