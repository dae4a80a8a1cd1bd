"""Opening the DuckDB warehouse: UTC session, bounded memory, migrations applied."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from flows.warehouse.migrations import latest_version, migrate, schema_version
from flows.warehouse.sqlfiles import run

log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse cannot be opened (missing, locked by another process, unreadable)."""


def connect(
    path: Path | str,
    *,
    memory_limit: str = "1GB",
    threads: int | None = None,
    read_only: bool = False,
    create: bool = True,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse at ``path`` (creating it only when ``create`` and not ``read_only``)
    with its schema up to date. Read-only opens take no write lock, except once on a warehouse
    an older version wrote, to migrate it (a lock held elsewhere then is a clear error)."""
    path = Path(path)
    if (read_only or not create) and not path.exists():
        raise WarehouseError(
            f"no warehouse at {path} (check --warehouse / SAGESERVE_WAREHOUSE; "
            "`sageserve ingest` creates one)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit}
    if threads:
        config["threads"] = threads
    con = _open(path, read_only, config)
    if not read_only:
        migrate(con)
    elif schema_version(con) < latest_version():
        # an older warehouse read by a newer sageserve: bring it up to date once (a write
        # connection, briefly), then read it as asked; reads never see an old schema
        con.close()
        found = _open(path, False, config, doing=" (to migrate its schema)")
        try:
            log.info("warehouse %s migrated to schema v%d", path, migrate(found))
        finally:
            found.close()
        con = _open(path, True, config)
    return con


def _open(
    path: Path,
    read_only: bool,
    config: dict[str, str | bool | int | float | list[str]],
    doing: str = "",
) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseError(
                f"warehouse {path} is in use by another process{doing}; try again when it finishes"
            ) from exc
        raise WarehouseError(f"cannot open warehouse {path}{doing}: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    return con


class Warehouse:
    """The run's warehouse, opened once (on first use) and closed with the run, with the reads
    flows make typed over the named SQL. Functions of the pipeline take its connection
    (:attr:`con`; their writes go through flows.warehouse.sqlfiles.transaction). A flow builds
    one per run (flows.run_context.RunContext) and hands it to its tasks, which never reopen
    DuckDB."""

    def __init__(self, path: Path | str, memory_limit: str = "1GB") -> None:
        self.path, self.memory_limit = Path(path), memory_limit
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = connect(self.path, memory_limit=self.memory_limit)
        return self._con

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (a run context sent to a Dask worker with a task) as where it is, without
        its connection: a copy opens its own on first use."""
        return {**self.__dict__, "_con": None}

    def frame(self, name: str, **params: Any) -> pd.DataFrame:
        """The rows of ``sql/<name>.sql`` with ``params`` bound."""
        return run(self.con, name, **params).df()

    def requests_in_window(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The requests that arrived in [start, end)."""
        return self.frame("quality/requests_in_window", start=start, end=end)

    def hourly_tier_requests(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Requests per hour and tier in [start, end) (what the quality bands learn from)."""
        return self.frame("quality/hourly_tier_requests", start=start, end=end)

    def demand_vs_forecast(self, hour: datetime) -> pd.DataFrame:
        """The demand of ``hour`` beside what was forecast for it."""
        return self.frame("quality/demand_vs_forecast", hour=hour)

    def recent_demand(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self.frame("reports/recent_demand", start=start, end=end)

    def forecasts_at(self, origin: datetime | None) -> pd.DataFrame:
        """The forecasts stored at ``origin``."""
        return self.frame("plans/forecasts_at", origin=origin)

    def tenant_traffic(self, start: datetime, end: datetime, headroom: float) -> pd.DataFrame:
        """Per-tenant traffic in [start, end), flagged above ``headroom`` × the usual share."""
        return self.frame("reports/tenant_traffic", start=start, end=end, headroom=headroom)
