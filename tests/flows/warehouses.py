"""A warehouse of synthetic request logs, built the way `sageserve ingest` builds one."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
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


# The 8-day log (seed 5, 40k requests a day) that the planning, replan, evaluation, metrics,
# Prefect-server and demo-serve modules all plan on: synthesized and ingested once per session
# (fixture ``demo_log`` in tests/flows/conftest.py); each module plans on its own copy.
DEMO_LOG = SynthSpec(days=8, seed=5, requests_per_day=40_000)


@dataclass(frozen=True)
class SynthLog:
    """A finished synthetic log: its day files and the warehouse they were ingested into."""

    spec: SynthSpec
    logs: Path
    warehouse: Path

    def copy_warehouse(self, to: Path) -> Path:
        """A private copy of the warehouse at ``to`` (a file path), for a test that writes."""
        to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.warehouse, to)
        return to
