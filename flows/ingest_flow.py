"""Prefect flow: ingest every new log file of a folder and refresh the demand marts.

Thin by design: the tasks open the warehouse and call the same functions as `sageserve ingest`.
The warehouse path (not a connection) crosses task boundaries so results stay hashable.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task

from flows.warehouse import requests_contract
from flows.warehouse.connection import connect
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.marts import refresh_demand
from planner.config import load_config


@task(name="ingest-folder", retries=2, retry_delay_seconds=[5, 30])
def ingest_folder(folder: str, config_path: str | None, warehouse: str | None) -> dict[str, Any]:
    cfg = load_config(config_path or os.environ.get("SAGESERVE_CONFIG") or None)
    now = datetime.now(UTC)
    with connect(warehouse or cfg.paths.warehouse, memory_limit=cfg.warehouse.memory_limit) as con:
        report = ingest_paths(con, [Path(folder)], SourceSpec(), requests_contract(cfg, now), now)
        refreshed = refresh_demand(con)
    payload = report.as_dict()
    payload["mart_rows"] = refreshed.rows
    return payload


@flow(name="ingest-logs", log_prints=False)
def ingest_logs(
    folder: str = ".sageserve/inbox",
    config_path: str | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Load new request-log files from ``folder`` (already-ingested content is skipped)."""
    logger = get_run_logger()
    result = ingest_folder(folder, config_path, warehouse)
    totals = result["totals"]
    logger.info(
        "read %d rows: loaded %d, quarantined %d, duplicates %d; %d files rejected",
        totals["rows_read"],
        totals["rows_loaded"],
        totals["rows_quarantined"],
        totals["duplicates_skipped"],
        totals["files_rejected"],
    )
    return result
