"""Ingest of per-minute demand aggregates (``--format minute-aggregates``) into
``demand_minutes``, which the demand mart and the replay read beside the request rows.

Columns: ``minute`` (UTC, the minute's start), ``region``, ``model``, ``tier``, ``requests``,
``input_tokens``, ``output_tokens`` (whole numbers ≥ 0) and ``cv`` (inter-arrival CV, ≥ 0 or
empty); Parquet or CSV with a header, gzip too. The same guarantees as the row path
(``flows.warehouse.ingest``), by the same means:

* checks in SQL over the whole file (``sql/aggregates/check.sql``): every failed check of a
  row is listed in its quarantine reason, with the file and record number; good rows load;
* a key (minute, region, model, tier) loaded before or earlier in the file with the same
  values is a duplicate (skipped), with other values a conflict (quarantined);
* every file reconciles (read = loaded + quarantined + duplicates); one transaction per
  file; the same content ingested again loads nothing (``ingested_files``, sha256 + format);
  a missing, empty, unreadable or wrongly-shaped file is named with the reason and the others
  still load.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from flows.warehouse import arrival_window
from flows.warehouse.loading import (
    FileRejected,
    FileReport,
    IngestReport,
    clean_error,
    identify,
    ingest_each,
    load_file,
    next_file_key,
    record_file,
)
from flows.warehouse.sqlfiles import execute, run, sql
from planner.config import FleetConfig
from planner.utc import naive_utc

log = logging.getLogger(__name__)
FORMAT = "minute-aggregates"
COLUMNS = ("minute", "region", "model", "tier", "requests", "input_tokens", "output_tokens", "cv")
_TEMP = ("agg_raw", "agg_checked")


def ingest_minute_paths(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path | str],
    cfg: FleetConfig,
    now: datetime,
    on_file: Callable[[FileReport], None] | None = None,
) -> IngestReport:
    """Ingest every aggregate file under ``paths``; a bad file is reported, others load."""
    return ingest_each(paths, lambda path: ingest_minute_file(con, path, cfg, now), on_file)


def _staging(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".parquet"):
        return "staging/minute_aggregates_parquet"
    if name.endswith(".csv"):
        return "staging/minute_aggregates_csv"
    raise FileRejected(f"unknown file type {path.suffix!r}: expected .parquet or .csv(.gz)")


def ingest_minute_file(
    con: duckdb.DuckDBPyConnection, path: Path, cfg: FleetConfig, now: datetime
) -> FileReport:
    """Load one aggregate file in one transaction; never raises for a bad file."""
    return load_file(
        con,
        path,
        lambda: (_staging(path), *identify(path, [FORMAT, {}])),
        lambda staging, file_id, size: _load(con, path, staging, cfg, file_id, size, now),
        _TEMP,
    )


def _load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    staging: str,
    cfg: FleetConfig,
    file_id: str,
    size: int,
    now: datetime,
) -> FileReport:
    source = sql(staging)
    params = {"path": str(path)}
    try:
        present = {r[0] for r in execute(con, f"DESCRIBE {source}", params).fetchall()}
    except (duckdb.Error, OSError) as exc:
        raise FileRejected(f"unreadable as {FORMAT}: {clean_error(exc)}") from exc
    missing = [c for c in COLUMNS if c not in present]
    if missing:
        found = sorted(present - {"_row"})
        raise FileRejected(f"missing required columns {missing}; found {found}")
    run(con, "aggregates/stage", {"source": source}, **params)
    w = cfg.warehouse
    low, high = arrival_window(cfg, now)
    ids: dict[str, Any] = {
        "regions": cfg.region_ids,
        "models": cfg.model_ids,
        "tiers": cfg.tier_ids,
    }
    run(con, "aggregates/check", **ids, min_time=low, max_time=high, max_tokens=w.max_tokens)
    keys: dict[str, Any] = {"file_id": file_id, "path": str(path)}
    keys["now"] = naive_utc(now).to_pydatetime()
    run(con, "aggregates/insert_minutes", **keys)
    run(con, "aggregates/quarantine", **keys)
    counts = run(con, "aggregates/counts").fetchone()
    assert counts is not None
    keys["file_key"] = next_file_key(con)
    sample = "aggregates/sample_quarantine"
    return record_file(con, counts, keys, sample, format=FORMAT, adapter=None, bytes=size)
