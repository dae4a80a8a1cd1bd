"""Prefect flow: ingest every new log file of a folder and refresh the demand marts.

Thin by design: the task calls the same functions as `sageserve ingest` on the run's
warehouse (flows.run_context), opened once by the flow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.run_context import RunContext, run_config, run_context
from flows.warehouse import requests_contract
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.marts import refresh_demand


@task(name="ingest-folder", retries=2, retry_delay_seconds=[5, 30], cache_policy=NO_CACHE)
def ingest_folder(ctx: RunContext, folder: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    contract = requests_contract(ctx.cfg, now)
    report = ingest_paths(ctx.con, [Path(folder)], SourceSpec(), contract, now)
    refreshed = refresh_demand(ctx.con)
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
    with run_context(run_config(config_path), warehouse) as ctx:
        result = ingest_folder(ctx, folder)
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
