"""pandera models of the per-minute aggregate tables: ``demand_minutes`` (what
``sageserve ingest --format minute-aggregates`` loads; the checks themselves run in SQL over
the whole file, ``sql/aggregates/check.sql``) and ``demand_minutes_quarantine``."""

from __future__ import annotations

from collections.abc import Sequence

import pandera.polars as pa
import polars as pl


def demand_minutes_schema(
    regions: Sequence[str], models: Sequence[str], tiers: Sequence[str]
) -> pa.DataFrameSchema:
    """A loaded aggregate row: known ids, whole non-negative counts, CV ≥ 0 or missing."""
    return pa.DataFrameSchema(
        {
            "minute": pa.Column(pl.Datetime("us"), nullable=False),
            "region": pa.Column(pl.String, pa.Check.isin(list(regions)), nullable=False),
            "model": pa.Column(pl.String, pa.Check.isin(list(models)), nullable=False),
            "tier": pa.Column(pl.String, pa.Check.isin(list(tiers)), nullable=False),
            "requests": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "input_tokens": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "output_tokens": pa.Column(pl.Int64, pa.Check.ge(0), nullable=False),
            "cv": pa.Column(pl.Float64, pa.Check.ge(0), nullable=True),
            "file_id": pa.Column(pl.String, pa.Check.str_length(64, 64), nullable=False),
        },
        unique=["minute", "region", "model", "tier"],
        name="demand_minutes",
        strict=True,
    )


demand_minutes_quarantine = pa.DataFrameSchema(
    {
        "file_id": pa.Column(pl.String, nullable=False),
        "path": pa.Column(pl.String, nullable=False),
        "row_number": pa.Column(pl.Int64, pa.Check.ge(1), nullable=True),
        "reason": pa.Column(pl.String, pa.Check.str_length(1, None), nullable=False),
        "raw": pa.Column(pl.String, nullable=True),
        "quarantined_at": pa.Column(pl.Datetime("us"), nullable=False),
    },
    name="demand_minutes_quarantine",
    strict=True,
)
