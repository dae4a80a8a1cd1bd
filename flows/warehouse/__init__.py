"""The one place that talks to DuckDB: connection, migrations, ingest, marts, status."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandera.polars as pa

    from planner.config import FleetConfig


def requests_contract(cfg: FleetConfig, now: datetime) -> pa.DataFrameSchema:
    """The pandera ``requests`` schema for this fleet, with arrivals bounded by the config's
    sane window: from ``warehouse.min_arrival`` to ``now + warehouse.max_future_h``.

    pandera (with pandas and polars) is imported here, not at module level: it is ~0.5 s of
    every command's start-up, and `sageserve ingest` builds the contract in a thread while DuckDB
    reads the file (flows/cli/data.py)."""
    from validation.requests import requests_schema

    low, high = arrival_window(cfg, now)
    return requests_schema(
        cfg.region_ids, cfg.model_ids, cfg.tier_ids, low, high, cfg.warehouse.max_tokens
    )


def arrival_window(cfg: FleetConfig, now: datetime) -> tuple[datetime, datetime]:
    """The sane window of arrival times, naive UTC: from ``warehouse.min_arrival`` to
    ``now + warehouse.max_future_h``."""
    from planner.utc import naive_utc

    w = cfg.warehouse
    low = naive_utc(w.min_arrival).to_pydatetime()
    return low, naive_utc(now + timedelta(hours=w.max_future_h)).to_pydatetime()
