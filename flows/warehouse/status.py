"""Read-only summaries of the warehouse for `sageserve status` and the demo."""

from __future__ import annotations

from typing import Any

import duckdb

from flows.warehouse.sqlfiles import run


def _records(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    columns = [d[0] for d in cur.description or []]
    return [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]


def warehouse_status(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    overview = _records(run(con, "status/overview"))[0]
    return {
        "overview": overview,
        "series": _records(run(con, "status/requests_by_series")),
        "files": _records(run(con, "status/files")),
        "quarantine": _records(run(con, "status/quarantine_by_file")),
    }


def demand_summary(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return _records(run(con, "marts/demand_summary"))
