"""pandera models of the request-log tables: ``requests`` and ``ingested_files`` (the
quarantine's columns are fixed by ``sql/migrations``; nothing validates its rows in Python).

``requests_schema`` is the contract of a row in the warehouse. At ingest it is not run in pandas:
:mod:`validation.sql_checks` compiles it to SQL predicates that DuckDB evaluates over the whole
batch, and tests check that the compiled form and pandera's own polars backend flag the same
(row, column, check) triples.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandera.polars as pa
import polars as pl

from validation.columns import NATIVE_COLUMNS, REQUIRED_COLUMNS

__all__ = ["NATIVE_COLUMNS", "REQUIRED_COLUMNS", "requests_schema"]


def requests_schema(
    regions: Sequence[str],
    models: Sequence[str],
    tiers: Sequence[str],
    min_arrival: datetime,
    max_arrival: datetime,
    max_tokens: int,
) -> pa.DataFrameSchema:
    """The ``requests`` contract for a fleet (known ids) and a sane arrival window (UTC)."""
    return pa.DataFrameSchema(
        {
            "request_id": pa.Column(
                pl.String, pa.Check.str_length(1, 200), nullable=False, unique=True
            ),
            "arrival_time": pa.Column(
                pl.Datetime("us"),
                pa.Check.in_range(min_arrival, max_arrival),
                nullable=False,
            ),
            "region": pa.Column(pl.String, pa.Check.isin(list(regions)), nullable=False),
            "model": pa.Column(pl.String, pa.Check.isin(list(models)), nullable=False),
            "tier": pa.Column(pl.String, pa.Check.isin(list(tiers)), nullable=False),
            "input_tokens": pa.Column(pl.Int64, pa.Check.in_range(0, max_tokens), nullable=False),
            "output_tokens": pa.Column(pl.Int64, pa.Check.in_range(0, max_tokens), nullable=False),
            "tenant": pa.Column(
                pl.String, pa.Check.str_length(1, 200), nullable=True, required=False
            ),
            "ttft_ms": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True, required=False),
            "e2e_ms": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True, required=False),
        },
        name="requests",
        strict=False,
    )


ingested_files = pa.DataFrameSchema(
    {
        "file_id": pa.Column(pl.String, pa.Check.str_length(64, 64), unique=True),
        # the file's number in requests.file_key (migration 0040): 1, 2, ... in ingest order
        "file_key": pa.Column(pl.Int32, pa.Check.ge(1), unique=True),
        "path": pa.Column(pl.String),
        "format": pa.Column(
            pl.String,
            # "unknown": rows without a manifest row that migration 0040 kept
            pa.Check.isin(["native", "azure2023", "mooncake", "minute-aggregates", "unknown"]),
        ),
        "bytes": pa.Column(pl.Int64, pa.Check.ge(0)),
        "rows_read": pa.Column(pl.Int64, pa.Check.ge(0)),
        "rows_loaded": pa.Column(pl.Int64, pa.Check.ge(0)),
        "rows_quarantined": pa.Column(pl.Int64, pa.Check.ge(0)),
        "duplicates_skipped": pa.Column(pl.Int64, pa.Check.ge(0)),
    },
    checks=pa.Check(
        lambda d: d.lazyframe.select(
            pl.col("rows_read")
            == pl.col("rows_loaded") + pl.col("rows_quarantined") + pl.col("duplicates_skipped")
        ),
        name="reconciles",
        error="rows_read = rows_loaded + rows_quarantined + duplicates_skipped",
    ),
    name="ingested_files",
    strict=False,
)
