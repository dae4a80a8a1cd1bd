"""What every flow and task of a run starts from, built once at the flow's entry: the run's
config (the given file, else SAGESERVE_CONFIG, else the default), its warehouse (the given
path, else the config's; opened once, on first use, and closed with the run), its outputs
folder and its time (naive UTC). Flows pass the context into their tasks, which neither
re-read the config nor reopen DuckDB."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from flows.warehouse.connection import Warehouse
from planner.config import FleetConfig, load_config
from planner.utc import naive_utc

WAREHOUSE_LIMIT = "sageserve-warehouse"  # the Prefect concurrency limit of warehouse writers


def as_of_time(as_of: str | None) -> pd.Timestamp:
    """The run's time: ``as_of`` (any ISO time) or now, naive UTC."""
    return naive_utc(as_of or datetime.now(UTC))


def run_config(config_path: str | None) -> FleetConfig:
    """The run's config: the given file, else SAGESERVE_CONFIG, else the default one."""
    return load_config(config_path or os.environ.get("SAGESERVE_CONFIG") or None)


@dataclass(frozen=True)
class RunContext:
    """One run's config, warehouse, outputs folder and time. Never a task's cache key: it
    holds an open connection (tasks taking it use ``cache_policy=NO_CACHE``)."""

    cfg: FleetConfig
    warehouse: Warehouse
    out: Path
    as_of: pd.Timestamp

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.warehouse.con


@contextmanager
def run_context(
    cfg: FleetConfig,
    warehouse: str | None = None,
    out: str | None = None,
    as_of: pd.Timestamp | str | None = None,
    *,
    hold: bool = False,
) -> Iterator[RunContext]:
    """The run's context (``warehouse`` and ``out`` default to the config's); its warehouse
    is closed when the block ends. ``hold``: the block holds the warehouse writers' global
    concurrency slot (when the Prefect server has that limit) and opens the warehouse in it."""
    when = naive_utc(as_of or datetime.now(UTC))
    path = warehouse or cfg.paths.warehouse
    with ExitStack() as stack:
        if hold:
            from prefect.concurrency.sync import concurrency

            stack.enter_context(concurrency(WAREHOUSE_LIMIT, occupy=1, strict=False))
        wh = stack.enter_context(Warehouse(path, memory_limit=cfg.warehouse.memory_limit))
        yield RunContext(cfg, wh, Path(out or cfg.paths.outputs), when)
