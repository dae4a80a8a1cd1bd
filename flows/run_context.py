"""What every flow and task of a run starts from, written once: the run's config (the given
file, else SAGESERVE_CONFIG, else the default), its warehouse (the given path, else the
config's) and its time (the given ``as_of``, else now), as naive UTC."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pandas as pd

from planner.config import FleetConfig, load_config
from planner.utc import naive_utc

WAREHOUSE_LIMIT = "sageserve-warehouse"  # the Prefect concurrency limit of warehouse writers


def as_of_time(as_of: str | None) -> pd.Timestamp:
    """The run's time: ``as_of`` (any ISO time) or now, naive UTC."""
    return naive_utc(as_of or datetime.now(UTC))


def run_config(config_path: str | None) -> FleetConfig:
    """The run's config: the given file, else SAGESERVE_CONFIG, else the default one."""
    return load_config(config_path or os.environ.get("SAGESERVE_CONFIG") or None)


def warehouse_path(cfg: FleetConfig, warehouse: str | None) -> str:
    """The run's warehouse: the given path, else the config's."""
    return warehouse or cfg.paths.warehouse
