"""Load request-log files into the warehouse: one transaction per file, validated in DuckDB,
bad rows quarantined with file, row and reason, re-ingest of the same content a no-op.

Per file: hash the bytes (plus adapter parameters) → skip if the manifest has it → stage the file
through its named SQL reader → classify duplicates → insert the rows passing the pandera schema
compiled to SQL (one boolean filter) that are not duplicates → quarantine the rest with every
failed check → check rows read = loaded + quarantined + duplicates skipped → record the manifest
row → commit. Any error rolls the file back whole. The report carries wall seconds per phase.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from flows.barrier import barrier
from flows.warehouse.sqlfiles import execute, run, sql, transaction
from validation.columns import REQUIRED_COLUMNS

if TYPE_CHECKING:
    import pandera.polars as pa

    # The schema, or its future: `sageserve ingest` builds it (importing pandera, ~0.5 s) in a
    # thread while DuckDB hashes the file and looks for duplicate ids, which need no schema.
    Contract = pa.DataFrameSchema | Future[pa.DataFrameSchema]

log = logging.getLogger(__name__)

Format = Literal["native", "azure2023", "mooncake"]
Status = Literal["loaded", "skipped", "rejected"]
_TEMP_TABLES = (
    "stage_raw",
    "stage_bad",
    "stage_taken",
    "stage_dupes",
    "stage_rejects",
    "stage_rejects_scan",
)
_HASH_CHUNK = 1 << 22
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


@dataclass
class FileReport:
    path: str
    status: Status
    file_id: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    duplicates_skipped: int = 0
    message: str | None = None
    problems: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # wall seconds per ingest phase

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestReport:
    files: list[FileReport]

    @property
    def totals(self) -> dict[str, int]:
        keys = ("rows_read", "rows_loaded", "rows_quarantined", "duplicates_skipped")
        out = {k: sum(getattr(f, k) for f in self.files) for k in keys}
        for status in ("loaded", "skipped", "rejected"):
            out[f"files_{status}"] = sum(f.status == status for f in self.files)
        return out

    @property
    def ok(self) -> bool:
        return all(f.status != "rejected" for f in self.files)

    def as_dict(self) -> dict[str, Any]:
        return {"files": [f.as_dict() for f in self.files], "totals": self.totals, "ok": self.ok}


class FileRejected(Exception):
    """The whole file is unusable; the message says why."""


def expand_paths(paths: Iterable[Path | str]) -> tuple[list[Path], list[FileReport]]:
    """Files to ingest (a directory means every non-hidden file in it, sorted) and a rejected
    report for every path that does not exist."""
    files: list[Path] = []
    missing: list[FileReport] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            )
        elif path.exists():
            files.append(path)
        else:
            missing.append(FileReport(str(path), "rejected", message="path not found"))
    return files, missing


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


def ingest_each(
    paths: Sequence[Path | str],
    one: Callable[[Path], FileReport],
    on_file: Callable[[FileReport], None] | None = None,
) -> IngestReport:
    """``one`` over every file under ``paths`` (each reported to ``on_file``); what cannot be
    listed is reported too, and the others still load."""
    files, reports = expand_paths(paths)
    for report in reports:
        log.error("%s: %s", report.path, report.message)
    for path in files:
        reports.append(one(path))
        if on_file:
            on_file(reports[-1])
    return IngestReport(reports)


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
        con, path, lambda: (_staging_name(path, spec), *_identify(path, spec)), load, _TEMP_TABLES
    )


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    identify: Callable[[], tuple[str, int, str]],
    load: Callable[[str, str, int], FileReport],
    temp_tables: Iterable[str],
) -> FileReport:
    """One file (a request log, or minute aggregates) in one transaction; never raises for a
    bad file. ``identify`` gives its (staging reader, size, file_id), or raises FileRejected;
    content ingested before is skipped; ``load`` (staging, file_id, size) writes it, and on
    any error nothing of it stays. Its temp tables are dropped either way."""
    started = time.perf_counter()
    try:
        staging, size, file_id = identify()
    except FileRejected as exc:
        log.error("%s: %s", path, exc)
        return FileReport(str(path), "rejected", message=str(exc))
    previous = run(con, "ingest/find_file", file_id=file_id).fetchone()
    if previous:
        msg = f"already ingested as {previous[0]} at {previous[1]:%Y-%m-%d %H:%M:%S}"
        log.info("%s: %s", path, msg)
        return FileReport(str(path), "skipped", file_id=file_id, message=msg)
    log.info("%s: loading (%s, %d bytes)", path, staging, size)
    hashed = time.perf_counter()
    try:
        with transaction(con):
            report = load(staging, file_id, size)
            loaded = time.perf_counter()
        commit = round(time.perf_counter() - loaded, 3)
        report.phases = {"hash": round(hashed - started, 3), **report.phases, "commit": commit}
    except Exception as exc:
        message = exc.args[0] if isinstance(exc, FileRejected) else _clean_error(exc)
        log.error("%s: rejected: %s", path, message)
        return FileReport(str(path), "rejected", file_id=file_id, message=message)
    finally:
        for table in temp_tables:
            con.execute(f"DROP TABLE IF EXISTS temp.{table}")
    log.info(
        "%s: read %d, loaded %d, quarantined %d, duplicates %d",
        path,
        report.rows_read,
        report.rows_loaded,
        report.rows_quarantined,
        report.duplicates_skipped,
    )
    return report


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
    _drop_temp(con)
    params = _staging_params(readable, spec, file_id)
    source, header_lines = _stage(con, staging, params)
    present = _describe(con, source, params, spec)
    clock.lap("stage")
    run(con, "ingest/find_taken_ids", {"source": source}, **params)
    clock.lap("duplicates")
    from validation.sql_checks import compile_schema

    contract = schema.result() if isinstance(schema, Future) else schema
    checked = compile_schema(contract, present, source)
    slots = {"checked": checked.sql}
    clock.lap("schema")
    if _scalar(con, "SELECT count(*) FROM stage_taken"):
        run(con, "ingest/classify_duplicates", slots, **params, **checked.params)
    else:
        run(con, "ingest/create_empty_dupes")
    set_aside = _scalar(con, "SELECT count(*) FROM stage_dupes")
    clock.lap("duplicates")
    keys: dict[str, Any] = {
        "file_id": file_id,
        "file_key": next_file_key(con),
        "path": str(path),
        "now": now,
        "header_lines": header_lines,
    }
    insert = "ingest/insert_requests" if set_aside else "ingest/insert_passing_rows"
    passing = {"passing": checked.passing_sql}
    loaded_now = _first(run(con, insert, passing, **(params | checked.params | keys)).fetchone())
    clock.lap("load")
    staged = _scalar(con, f"SELECT count(*) FROM ({source})", **params)
    if staged > loaded_now + set_aside:
        run(con, "ingest/find_failed_rows", slots, **params, **checked.params)
    else:
        run(con, "ingest/create_empty_bad")
    run(con, "ingest/quarantine_failed_checks", **keys)
    run(con, "ingest/quarantine_conflicts", **keys)
    run(con, "ingest/quarantine_rejected_lines", **keys)
    clock.lap("quarantine")
    counts = run(con, "ingest/batch_counts", {"source": source}, **(params | keys)).fetchone()
    assert counts is not None
    read, loaded, quarantined, dupes, min_arrival, max_arrival = counts
    if read == 0:
        raise FileRejected("empty: no data rows")
    if read != loaded + quarantined + dupes:
        raise RuntimeError(
            f"reconciliation failed: read {read} ≠ loaded {loaded} + quarantined "
            f"{quarantined} + duplicates {dupes}"
        )
    clock.lap("reconcile")
    adapter = spec.adapter_params()
    run(
        con,
        "ingest/record_file",
        **keys,
        format=spec.format,
        adapter=json.dumps(adapter, sort_keys=True) if adapter else None,
        bytes=size,
        rows_read=read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        duplicates_skipped=dupes,
        min_arrival=min_arrival,
        max_arrival=max_arrival,
    )
    problems = [
        f"row {row}: {reason}" if row is not None else reason
        for row, reason in run(con, "ingest/sample_quarantine", file_id=file_id, limit=5).fetchall()
    ]
    clock.lap("manifest")
    return FileReport(
        str(path), "loaded", file_id, read, loaded, quarantined, dupes, None, problems, clock.laps
    )


def next_file_key(con: duckdb.DuckDBPyConnection) -> int:
    """The integer key of the file being loaded, inside its transaction: its manifest row's
    ``file_key``, which its rows carry in ``requests.file_key`` (migration 0040)."""
    return _first(run(con, "ingest/next_file_key").fetchone())


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
        raise FileRejected(f"wrong columns: {_clean_error(exc)}") from exc
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


def _identify(path: Path, spec: SourceSpec) -> tuple[int, str]:
    """(size, file_id): sha256 of the bytes and the adapter parameters."""
    try:
        size = path.stat().st_size
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    except PermissionError as exc:
        raise FileRejected("cannot read: permission denied") from exc
    except OSError as exc:
        raise FileRejected(f"cannot read: {exc.strerror}") from exc
    if size == 0:
        raise FileRejected("empty file (0 bytes)")
    digest.update(json.dumps([spec.format, spec.adapter_params()], sort_keys=True).encode())
    return size, digest.hexdigest()


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
            "start": spec.start.replace(tzinfo=None) if spec.start else None,
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
            f"wrong columns for the {spec.format} format: {_clean_error(exc)}"
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


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for table in _TEMP_TABLES:
        con.execute(f"DROP TABLE IF EXISTS temp.{table}")


def _clean_error(exc: Exception) -> str:
    """DuckDB errors carry pages of reader settings; keep the lines that say what is wrong."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keep = [
        line
        for line in lines
        if not line.startswith(("Possible Solution", "file =", "LINE "))
        and " = " not in line
        and not line.startswith("^")
    ]
    text = " ".join(keep[:3]) or str(exc)
    for prefix in ("Invalid Input Error: ", "Binder Error: ", "IO Error: ", "Conversion Error: "):
        text = text.replace(prefix, "")
    return text
