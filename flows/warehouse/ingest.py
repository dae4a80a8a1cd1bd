"""Load request-log files into the warehouse: one transaction per file, validated in DuckDB,
bad rows quarantined with file, row and reason, re-ingest of the same content a no-op.

Per file: hash the bytes (plus adapter parameters) → skip if the manifest has it → stage the file
through its named SQL reader → classify duplicates → insert the rows passing the pandera schema
compiled to SQL (one boolean filter) that are not duplicates → quarantine the rest with every
failed check → check rows read = loaded + quarantined + duplicates skipped → record the manifest
row → commit. Any error rolls the file back whole. The report carries wall seconds per phase.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from flows.barrier import barrier
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
from planner.utc import naive_utc
from validation.columns import REQUIRED_COLUMNS

if TYPE_CHECKING:
    import pandera.polars as pa

    from validation.sql_checks import CompiledSchema

    # The schema, or its future: `sageserve ingest` builds it (importing pandera, ~0.5 s) in a
    # thread while DuckDB hashes the file and looks for duplicate ids, which need no schema.
    Contract = pa.DataFrameSchema | Future[pa.DataFrameSchema]

log = logging.getLogger(__name__)

Format = Literal["native", "azure2023", "mooncake"]
_TEMP_TABLES = (
    "stage_raw",
    "stage_bad",
    "stage_taken",
    "stage_dupes",
    "stage_rejects",
    "stage_rejects_scan",
)
_GLOB = re.compile(r"[*?\[\]{}]")


@dataclass(frozen=True)
class SourceSpec:
    """How to read files: the native schema, or a public trace and what it stands for."""

    format: Format = "native"
    region: str | None = None
    model: str | None = None
    tier: str | None = None
    tenant: str | None = None
    start: datetime | None = None  # Mooncake: UTC time of the trace's timestamp 0

    def adapter_params(self) -> dict[str, Any]:
        if self.format == "native":
            return {}
        out: dict[str, Any] = {"region": self.region, "model": self.model, "tier": self.tier}
        out["tenant"] = self.tenant
        if self.format == "mooncake":
            out["start"] = self.start.isoformat() if self.start else None
        return out


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: Sequence[Path | str],
    spec: SourceSpec,
    schema: Contract,
    now: datetime,
    on_file: Callable[[FileReport], None] | None = None,
) -> IngestReport:
    """Ingest every file under ``paths``; a bad file is reported and the others still load."""
    return ingest_each(paths, lambda path: ingest_file(con, path, spec, schema, now), on_file)


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    spec: SourceSpec,
    schema: Contract,
    now: datetime,
) -> FileReport:
    """Load one file in one transaction; never raises for a bad file, returns its report."""

    def load(staging: str, file_id: str, size: int) -> FileReport:
        with literal_path(path) as readable:
            report = _load(con, path, spec, staging, schema, file_id, size, now, readable)
        barrier("ingest-loaded")  # rows and manifest row written, not yet committed
        return report

    return load_file(
        con,
        path,
        lambda: (_staging_name(path, spec), *identify(path, [spec.format, spec.adapter_params()])),
        load,
        _TEMP_TABLES,
    )


def _load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    spec: SourceSpec,
    staging: str,
    schema: Contract,
    file_id: str,
    size: int,
    now: datetime,
    readable: Path,
) -> FileReport:
    """One file inside the caller's transaction. Passes over the staged source: duplicates
    (request ids only), the load (every check as a boolean filter), and the reasons for failed
    rows, which runs only when the load left rows unaccounted for (usually none)."""
    clock = _PhaseClock()
    params = _staging_params(readable, spec, file_id)
    source, header_lines = _stage(con, staging, params)
    present = _describe(con, source, params, spec)
    clock.lap("stage")
    run(con, "ingest/find_taken_ids", {"source": source}, **params)
    clock.lap("duplicates")
    from validation.sql_checks import compile_schema

    contract = schema.result() if isinstance(schema, Future) else schema
    checked = compile_schema(contract, present, source)
    clock.lap("schema")
    keys: dict[str, Any] = {"file_id": file_id, "file_key": next_file_key(con), "path": str(path)}
    keys |= {"now": now, "header_lines": header_lines}
    _write_rows(con, source, params | checked.params, checked, keys, clock)
    counts = run(con, "ingest/batch_counts", {"source": source}, **(params | keys)).fetchone()
    if counts is None or counts[0] == 0:
        raise FileRejected("empty: no data rows")
    clock.lap("reconcile")
    adapter = spec.adapter_params()
    report = record_file(
        con,
        counts,
        keys,
        "ingest/sample_quarantine",
        format=spec.format,
        adapter=json.dumps(adapter, sort_keys=True) if adapter else None,
        bytes=size,
    )
    clock.lap("manifest")
    report.phases = clock.laps
    return report


def _write_rows(
    con: duckdb.DuckDBPyConnection,
    source: str,
    params: dict[str, Any],
    checked: CompiledSchema,
    keys: dict[str, Any],
    clock: _PhaseClock,
) -> None:
    """The staged rows: duplicates set aside, the rows passing every check loaded, the others
    quarantined with every failed check (that pass runs only when the load left rows
    unaccounted for, usually never)."""
    slots = {"checked": checked.sql}
    if _scalar(con, "SELECT count(*) FROM stage_taken"):
        run(con, "ingest/classify_duplicates", slots, **params)
    else:
        run(con, "ingest/create_empty_dupes")
    set_aside = _scalar(con, "SELECT count(*) FROM stage_dupes")
    clock.lap("duplicates")
    insert = "ingest/insert_requests" if set_aside else "ingest/insert_passing_rows"
    passing = {"passing": checked.passing_sql}
    loaded_now = _first(run(con, insert, passing, **(params | keys)).fetchone())
    clock.lap("load")
    if _scalar(con, f"SELECT count(*) FROM ({source})", **params) > loaded_now + set_aside:
        run(con, "ingest/find_failed_rows", slots, **params)
    else:
        run(con, "ingest/create_empty_bad")
    for reason in ("failed_checks", "conflicts", "rejected_lines"):
        run(con, f"ingest/quarantine_{reason}", **keys)
    clock.lap("quarantine")


class _PhaseClock:
    """Wall seconds per ingest phase, for the report (``--json``) and bench/ingest.py."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = round(self.laps.get(phase, 0.0) + now - self._last, 3)
        self._last = now


def _stage(con: duckdb.DuckDBPyConnection, staging: str, params: dict[str, Any]) -> tuple[str, int]:
    """The SELECT the checks read from, and how many header lines the format has.

    Parquet is read in place on every pass (columnar, cheap to re-read). Text formats are parsed
    once into ``stage_raw`` (rejected lines land in ``stage_rejects``) and renumbered so every
    row carries its record number in the file.
    """
    reader = sql(f"staging/{staging}")
    if staging.endswith("parquet"):
        run(con, "ingest/create_empty_rejects")
        return reader, 0
    header_lines = 1 if staging.endswith("csv") else 0
    try:
        run(con, "ingest/stage_text_file", {"source": reader}, **params)
    except duckdb.BinderException as exc:
        raise FileRejected(f"wrong columns: {clean_error(exc)}") from exc
    if not _table_exists(con, "stage_rejects"):
        run(con, "ingest/create_empty_rejects")
    if _scalar(con, "SELECT count(*) FROM stage_rejects"):
        run(con, "ingest/renumber_after_rejects", header_lines=header_lines)
    return "SELECT * FROM stage_raw", header_lines


_NATIVE_SUFFIXES = {
    ".csv": "native_csv",
    ".parquet": "native_parquet",
    ".pq": "native_parquet",
    ".jsonl": "native_jsonl",
    ".ndjson": "native_jsonl",
    ".json": "native_jsonl",
}


def _staging_name(path: Path, spec: SourceSpec) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    suffix = suffixes[-1] if suffixes else ""
    if spec.format == "azure2023":
        if suffix != ".csv":
            raise FileRejected("the azure2023 format is CSV: expected a .csv or .csv.gz file")
        return "azure2023_csv"
    if spec.format == "mooncake":
        if suffix not in (".jsonl", ".json", ".ndjson"):
            raise FileRejected("the mooncake format is JSON lines: expected .jsonl(.gz)")
        return "mooncake_jsonl"
    if suffix == ".parquet" and path.suffix.lower() == ".gz":
        raise FileRejected("gzip-compressed Parquet is not supported; Parquet compresses itself")
    staging = _NATIVE_SUFFIXES.get(suffix)
    if staging is None:
        raise FileRejected(
            f"unsupported file type {path.suffix!r}: expected .csv, .parquet or .jsonl "
            "(optionally .gz)"
        )
    return staging


@contextmanager
def literal_path(path: Path) -> Iterator[Path]:
    """A name DuckDB's readers take literally for ``path``. They expand ``*``, ``?``, ``[…]``
    and ``{…}`` as glob patterns, so ``req[1].csv`` would read ``req1.csv``; such a file is
    read through a symlink with a plain name in a temporary folder (same suffixes)."""
    if not _GLOB.search(str(path)):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sageserve-literal-") as folder:
        suffixes = "".join(s for s in path.suffixes if not _GLOB.search(s))
        link = Path(folder) / f"input{suffixes}"
        link.symlink_to(path.resolve())
        yield link


def _staging_params(path: Path, spec: SourceSpec, file_id: str) -> dict[str, Any]:
    params: dict[str, Any] = {"path": str(path)}
    if spec.format != "native":
        params |= {
            "id_prefix": f"{spec.format}-{file_id[:12]}",
            "region": spec.region,
            "model": spec.model,
            "tier": spec.tier,
            "tenant": spec.tenant,
            "start": naive_utc(spec.start).to_pydatetime() if spec.start else None,
        }
    return params


def _describe(
    con: duckdb.DuckDBPyConnection, source_sql: str, params: dict[str, Any], spec: SourceSpec
) -> dict[str, str]:
    """Columns the staged file offers; rejects files whose columns do not fit the format."""
    try:
        rows = execute(con, f"DESCRIBE {source_sql}", params).fetchall()
    except duckdb.BinderException as exc:
        raise FileRejected(
            f"wrong columns for the {spec.format} format: {clean_error(exc)}"
        ) from exc
    present = {row[0]: row[1] for row in rows}
    if spec.format == "native":
        lower = {c.lower() for c in present}
        missing = [c for c in REQUIRED_COLUMNS if c not in lower]
        if missing:
            found = [c for c in present if c != "_row"]
            raise FileRejected(f"missing required columns {missing}; found {found}")
    return present


def _table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(
        _scalar(
            con,
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = $name AND temporary",
            name=name,
        )
    )


def _first(row: tuple[Any, ...] | None) -> int:
    return int(row[0]) if row and row[0] is not None else 0


def _scalar(con: duckdb.DuckDBPyConnection, text: str, **params: Any) -> int:
    return _first(execute(con, text, params).fetchone())
