"""A warehouse of synthetic request logs, built the way `sageserve ingest` builds one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from flows.warehouse import requests_contract
from flows.warehouse.connection import connect
from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.marts import refresh_demand
from planner.config import FleetConfig
from planner.workload.synth import SynthSpec, synthesize
from planner.workload.tokens import TokenSampler


def synth_warehouse(
    logs: Path,
    cfg: FleetConfig,
    shared_data: Path,
    spec: SynthSpec,
    warehouse: Path | None = None,
) -> Path:
    """Day files of ``spec`` in ``logs`` (Parquet), ingested and marted into ``warehouse``
    (default ``logs/wh.duckdb``)."""
    logs.mkdir(parents=True, exist_ok=True)
    tokens = TokenSampler.from_azure(shared_data / "azure2023")
    for day, frame in synthesize(cfg, spec, tokens):
        frame.to_parquet(logs / f"day-{day:%Y%m%d}.parquet", index=False)
    path = warehouse or logs / "wh.duckdb"
    now = datetime(2024, 7, 1, tzinfo=UTC)
    with connect(path) as con:
        ingest_paths(con, [logs], SourceSpec(), requests_contract(cfg, now), now)
        refresh_demand(con)
    return path
