"""The one place that talks to DuckDB: connection, migrations, ingest, marts, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandera.polars as pa

from planner.config import FleetConfig
from validation.requests import requests_schema


def requests_contract(cfg: FleetConfig, now: datetime) -> pa.DataFrameSchema:
    """The pandera ``requests`` schema for this fleet, with arrivals bounded by the config's
    sane window: from ``warehouse.min_arrival`` to ``now + warehouse.max_future_h``."""
    low = datetime.fromisoformat(cfg.warehouse.min_arrival).astimezone(UTC).replace(tzinfo=None)
    high = (now + timedelta(hours=cfg.warehouse.max_future_h)).replace(tzinfo=None)
    return requests_schema(
        cfg.region_ids, cfg.model_ids, cfg.tier_ids, low, high, cfg.warehouse.max_tokens
    )
