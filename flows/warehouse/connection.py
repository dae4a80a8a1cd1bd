"""Opening the DuckDB warehouse: UTC session, bounded memory, migrations applied."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from flows.warehouse.migrations import migrate

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
    and, unless read-only, bring its schema up to date. Read-only opens take no write lock."""
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
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise WarehouseError(
                f"warehouse {path} is in use by another process; try again when it finishes"
            ) from exc
        raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc
    con.execute("SET TimeZone = 'UTC'")
    if not read_only:
        migrate(con)
    return con
