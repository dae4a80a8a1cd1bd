"""Column names of the native request-log schema, without importing pandera or polars (the
ingest checks a file's columns before the schema is built; `sageserve` start-up stays light)."""

from __future__ import annotations

NATIVE_COLUMNS = (
    "request_id",
    "arrival_time",
    "region",
    "model",
    "tier",
    "input_tokens",
    "output_tokens",
    "tenant",
    "ttft_ms",
    "e2e_ms",
)
REQUIRED_COLUMNS = NATIVE_COLUMNS[:7]
