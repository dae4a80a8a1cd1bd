"""One file into the warehouse, whatever its kind (request log, minute aggregates): listed,
identified by its content, loaded in one transaction that any error rolls back whole, reconciled
(read = loaded + quarantined + duplicates), recorded in ``ingested_files`` and reported."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from flows.warehouse.sqlfiles import run, transaction

log = logging.getLogger(__name__)

Status = Literal["loaded", "skipped", "rejected"]
_HASH_CHUNK = 1 << 22


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


def identify(path: Path, tag: list[Any]) -> tuple[int, str]:
    """(size, file_id): sha256 of the bytes and of ``tag`` (the format and its parameters)."""
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
    digest.update(json.dumps(tag, sort_keys=True).encode())
    return size, digest.hexdigest()


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    identify: Callable[[], tuple[str, int, str]],
    load: Callable[[str, str, int], FileReport],
    temp_tables: Iterable[str],
) -> FileReport:
    """One file in one transaction; never raises for a bad file. ``identify`` gives its
    (staging reader, size, file_id), or raises FileRejected; content ingested before is
    skipped; ``load`` (staging, file_id, size) writes it, and on any error nothing of it stays.
    Its temp tables are dropped either way."""
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
        message = exc.args[0] if isinstance(exc, FileRejected) else clean_error(exc)
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


def next_file_key(con: duckdb.DuckDBPyConnection) -> int:
    """The integer key of the file being loaded, inside its transaction: its manifest row's
    ``file_key``, which its rows carry in ``requests.file_key`` (migration 0040)."""
    row = run(con, "ingest/next_file_key").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def record_file(
    con: duckdb.DuckDBPyConnection,
    counts: tuple[Any, ...],
    keys: dict[str, Any],
    sample: str,
    **manifest: Any,
) -> FileReport:
    """Inside the file's transaction: check that ``counts`` (read, loaded, quarantined,
    duplicates, first and last time) reconcile, write the file's manifest row (``keys`` and
    ``manifest``) and report it with up to five quarantine reasons (``sample``, a SQL file)."""
    read, loaded, quarantined, dupes, first, last = counts
    if read != loaded + quarantined + dupes:  # the verdicts partition the rows
        raise RuntimeError(
            f"reconciliation failed: read {read} ≠ loaded {loaded} + quarantined "
            f"{quarantined} + duplicates {dupes}"
        )
    run(
        con,
        "ingest/record_file",
        **keys,
        **manifest,
        rows_read=read,
        rows_loaded=loaded,
        rows_quarantined=quarantined,
        duplicates_skipped=dupes,
        min_arrival=first,
        max_arrival=last,
    )
    file_id = keys["file_id"]
    problems = [
        f"row {row}: {reason}" if row is not None else reason
        for row, reason in run(con, sample, file_id=file_id, limit=5).fetchall()
    ]
    counted = (int(read), int(loaded), int(quarantined), int(dupes))
    return FileReport(keys["path"], "loaded", file_id, *counted, problems=problems)


def clean_error(exc: Exception) -> str:
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
