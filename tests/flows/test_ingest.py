"""Ingest: every bad-input case names file and row, keeps the good rows, and reconciles;
re-ingest is a no-op; a file is all or nothing."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.polars as pa
import pytest

from flows.warehouse.ingest import SourceSpec, ingest_paths
from flows.warehouse.loading import FileReport, IngestReport

HEADER = "request_id,arrival_time,region,model,tier,input_tokens,output_tokens"
GOOD = [
    "a1,2024-06-03T10:00:00.125Z,us-east,llama2-70b,IW-F,100,20",
    "a2,2024-06-03T10:00:01Z,us-west,llama3.1-8b,NIW,3000,500",
    "a3,2024-06-03T12:30:00+02:00,us-central,bloom-176b,IW-N,50,5",
]
NOW = datetime(2024, 7, 1, tzinfo=UTC)


def _csv(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def _ingest(
    con: duckdb.DuckDBPyConnection,
    contract: pa.DataFrameSchema,
    *paths: Path | str,
    spec: SourceSpec | None = None,
) -> IngestReport:
    return ingest_paths(con, list(paths), spec or SourceSpec(), contract, NOW)


def _only(report: IngestReport) -> FileReport:
    (file,) = report.files
    return file


def _reconciles(report: IngestReport) -> None:
    for f in report.files:
        assert f.rows_read == f.rows_loaded + f.rows_quarantined + f.duplicates_skipped, f
    t = report.totals
    assert t["rows_read"] == t["rows_loaded"] + t["rows_quarantined"] + t["duplicates_skipped"]


def _quarantine(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
    return con.execute(
        "SELECT row_number, request_id, reason FROM requests_quarantine ORDER BY row_number"
    ).fetchall()


def _count(con: duckdb.DuckDBPyConnection, table: str = "requests") -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_good_csv_loads_with_utc_millisecond_times(warehouse, contract, tmp_path: Path) -> None:
    report = _ingest(warehouse, contract, _csv(tmp_path / "good.csv", GOOD))
    f = _only(report)
    assert (f.status, f.rows_read, f.rows_loaded, f.rows_quarantined) == ("loaded", 3, 3, 0)
    times = dict(warehouse.execute("SELECT request_id, arrival_time FROM requests").fetchall())
    assert times["a1"] == datetime(2024, 6, 3, 10, 0, 0, 125000)
    assert times["a3"] == datetime(2024, 6, 3, 10, 30)  # +02:00 converted to UTC


def test_the_report_times_each_phase(warehouse, contract, tmp_path: Path) -> None:
    f = _only(_ingest(warehouse, contract, _csv(tmp_path / "good.csv", GOOD)))
    phases = (
        "hash",
        "stage",
        "duplicates",
        "schema",
        "load",
        "quarantine",
        "reconcile",
        "manifest",
    )
    assert list(f.phases) == [*phases, "commit"]
    assert all(seconds >= 0 for seconds in f.phases.values())
    assert f.as_dict()["phases"] == f.phases  # what `sageserve ingest --json` prints


def test_bad_values_are_quarantined_with_row_and_reason(
    warehouse, contract, tmp_path: Path
) -> None:
    lines = [
        GOOD[0],
        "b2,2024-06-03T10:00:01Z,us-east,llama2-70b,IW-N,-5,20",
        "b3,2024-06-03T10:00:02Z,mars,llama2-70b,IW-F,100,abc",
        "b4,not-a-time,us-east,gpt-9,PLATINUM,1,1",
        "b5,2031-01-01T00:00:00Z,us-east,llama2-70b,IW-F,1,1",
        ",2024-06-03T10:00:03Z,us-east,llama2-70b,IW-F,1,1",
        GOOD[1],
    ]
    report = _ingest(warehouse, contract, _csv(tmp_path / "mixed.csv", lines))
    f = _only(report)
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (7, 2, 5)
    _reconciles(report)
    q = {row: reason for row, _, reason in _quarantine(warehouse)}
    assert q[2] == "input_tokens: in_range(0, 2000000), got -5"
    assert "region: isin(['us-east', 'us-central', 'us-west']), got mars" in q[3]
    assert "output_tokens: expected BIGINT, got abc" in q[3]
    assert "arrival_time: expected TIMESTAMP, got not-a-time" in q[4]
    assert "model: isin" in q[4] and "tier: isin" in q[4]
    assert q[5].startswith("arrival_time: in_range(")
    assert q[6] == "request_id: not_nullable"
    raw = warehouse.execute("SELECT raw FROM requests_quarantine WHERE row_number = 3").fetchone()
    assert raw is not None and json.loads(raw[0])["region"] == "mars"


def test_malformed_lines_keep_the_other_rows_and_their_numbers(
    warehouse, contract, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    body = (
        HEADER
        + "\n"
        + GOOD[0]
        + "\n"
        + "c2,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,1,1,extra\n"
        + "c3,2024-06-03T10:00:00Z,us-east\n"
    ).encode()
    body += b"c4,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,1,caf\xe9\n"
    body += (GOOD[1] + "\n" + "c6,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,-1,1\n").encode()
    path.write_bytes(body)
    report = _ingest(warehouse, contract, path)
    f = _only(report)
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (6, 2, 4)
    _reconciles(report)
    q = {row: reason for row, _, reason in _quarantine(warehouse)}
    assert "TOO MANY COLUMNS" in q[2]
    assert "MISSING COLUMNS" in q[3]
    assert "INVALID ENCODING" in q[4]
    # row 6 failed a value check after three rejected lines: its number is still right
    assert q[6].startswith("input_tokens:")


def test_jsonl_malformed_line_is_one_bad_row(warehouse, contract, tmp_path: Path) -> None:
    rows = [dict(zip(HEADER.split(","), line.split(","), strict=True)) for line in GOOD[:2]]
    path = tmp_path / "log.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(rows[0]) + "\n")
        fh.write('{"request_id": "j2", "arrival_time": \n')
        fh.write("\n")
        fh.write(json.dumps(rows[1] | {"tenant": "acme", "ttft_ms": 120.5}) + "\n")
        fh.write(json.dumps({"request_id": "j5"}) + "\n")
    report = _ingest(warehouse, contract, path)
    f = _only(report)
    assert (f.rows_read, f.rows_loaded, f.rows_quarantined) == (4, 2, 2)
    q = {row: reason for row, _, reason in _quarantine(warehouse)}
    assert q[2].startswith("malformed JSON")
    assert "arrival_time: not_nullable" in q[5]
    tenant = warehouse.execute("SELECT tenant, ttft_ms FROM requests WHERE request_id='a2'")
    assert tenant.fetchone() == ("acme", 120.5)


def test_parquet_with_aware_timestamps_and_narrow_ints(warehouse, contract, tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["p1", "p2"],
            "arrival_time": pd.to_datetime(["2024-06-03T10:00:00+02:00"] * 2, utc=True),
            "region": ["us-east", "atlantis"],
            "model": ["llama2-70b"] * 2,
            "tier": ["IW-F"] * 2,
            "input_tokens": pd.array([10, 20], dtype="int32"),
            "output_tokens": pd.array([1, 2], dtype="int16"),
        }
    )
    path = tmp_path / "x.parquet"
    frame.to_parquet(path)
    f = _only(_ingest(warehouse, contract, path))
    assert (f.rows_loaded, f.rows_quarantined) == (1, 1)
    assert _quarantine(warehouse)[0][:2] == (2, "p2")
    row = warehouse.execute("SELECT arrival_time FROM requests").fetchone()
    assert row == (datetime(2024, 6, 3, 8, 0),)


def test_duplicates_skip_when_identical_and_quarantine_when_conflicting(
    warehouse, contract, tmp_path: Path
) -> None:
    first = _csv(tmp_path / "day1.csv", GOOD)
    changed = GOOD[1].replace(",500", ",501")
    second = _csv(tmp_path / "day2.csv", [GOOD[0], changed, GOOD[2], GOOD[2], "d9" + GOOD[0][2:]])
    report = _ingest(warehouse, contract, first, second)
    _reconciles(report)
    one, two = report.files
    assert (one.rows_loaded, two.rows_read) == (3, 5)
    # a1 and a3 (twice) were already loaded with the same values; a2 differs; d9 is new.
    assert (two.rows_loaded, two.duplicates_skipped, two.rows_quarantined) == (1, 3, 1)
    (conflict,) = _quarantine(warehouse)
    assert conflict[:2] == (2, "a2")
    assert conflict[2] == f"request_id: already loaded from {first}"
    assert _count(warehouse) == 4


def test_duplicates_within_one_file(warehouse, contract, tmp_path: Path) -> None:
    conflicting = "a1,2024-06-03T10:00:00.125Z,us-east,llama2-70b,IW-F,100,21"
    lines = [GOOD[0], GOOD[0], conflicting, GOOD[1]]
    f = _only(_ingest(warehouse, contract, _csv(tmp_path / "dup.csv", lines)))
    assert (f.rows_loaded, f.duplicates_skipped, f.rows_quarantined) == (2, 1, 1)
    assert _quarantine(warehouse)[0][2] == "request_id: repeats row 1 of this file"


def test_same_content_twice_loads_nothing_new(warehouse, contract, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    path = _csv(logs / "a.csv", GOOD)
    copy = logs / "renamed.csv"
    copy.write_bytes(path.read_bytes())
    first = _ingest(warehouse, contract, path)
    again = _ingest(warehouse, contract, path, copy, logs)
    assert _only(first).rows_loaded == 3
    assert {f.status for f in again.files} == {"skipped"}
    assert len(again.files) == 4  # path, copy, and both again through the folder
    assert _count(warehouse) == 3 and _count(warehouse, "ingested_files") == 1


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "empty file (0 bytes)"),
        ("header.csv", (HEADER + "\n").encode(), "empty: no data rows"),
        ("blank.jsonl", b"\n\n", "empty: no data rows"),
        (
            "cols.csv",
            b"request_id,arrival_time,region\nx,2024-06-03T00:00:00Z,us-east\n",
            "missing required columns ['model', 'tier', 'input_tokens', 'output_tokens']",
        ),
        ("bad.csv.gz", b"this is not gzip", "gzip"),
        ("table.xlsx", b"PK\x03\x04", "unsupported file type '.xlsx'"),
        ("broken.parquet", b"PAR1 not really parquet", "parquet"),
    ],
)
def test_files_rejected_whole_say_why_and_others_still_load(
    warehouse, contract, tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    good = _csv(tmp_path / "good.csv", GOOD)
    report = _ingest(warehouse, contract, bad, tmp_path / "missing.csv", good)
    by_path = {f.path: f for f in report.files}
    assert by_path[str(bad)].status == "rejected"
    assert message.lower() in (by_path[str(bad)].message or "").lower()
    assert by_path[str(tmp_path / "missing.csv")].message == "path not found"
    assert by_path[str(good)].rows_loaded == 3
    assert not report.ok
    assert _count(warehouse, "ingested_files") == 1  # nothing of the bad file was recorded


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(warehouse, contract, tmp_path: Path) -> None:
    path = _csv(tmp_path / "secret.csv", GOOD)
    path.chmod(0)
    f = _only(_ingest(warehouse, contract, path))
    assert f.status == "rejected" and f.message == "cannot read: permission denied"


def test_azure2023_slice_maps_to_the_native_schema(
    warehouse, contract, tmp_path: Path, shared_data: Path
) -> None:
    source = shared_data / "azure2023" / "AzureLLMInferenceTrace_conv.csv"
    head = source.read_text().splitlines()[:301]
    path = tmp_path / "conv.csv"
    path.write_text("\n".join(head) + "\n")
    spec = SourceSpec("azure2023", "us-east", "llama2-70b", "IW-F", "splitwise")
    f = _only(_ingest(warehouse, contract, path, spec=spec))
    assert (f.rows_read, f.rows_loaded) == (300, 300)
    row = warehouse.execute(
        "SELECT request_id, arrival_time, input_tokens, output_tokens, tenant FROM requests "
        "ORDER BY arrival_time LIMIT 1"
    ).fetchone()
    assert row is not None
    first = head[1].split(",")
    assert row[0].startswith("azure2023-") and row[0].endswith("-1")
    assert row[1] == datetime.fromisoformat(first[0][:26])
    assert (row[2], row[3], row[4]) == (int(first[1]), int(first[2]), "splitwise")
    # The same file standing for another region is another source, not a duplicate.
    other = SourceSpec("azure2023", "us-west", "llama2-70b", "IW-F")
    assert _only(_ingest(warehouse, contract, path, spec=other)).rows_loaded == 300


@pytest.mark.parametrize(
    "start",  # the same instant, given in UTC and in UTC+2 (converted, not stripped of its zone)
    [
        datetime(2024, 6, 3, 9, tzinfo=UTC),
        datetime(2024, 6, 3, 11, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_mooncake_slice_maps_relative_times(
    warehouse, contract, tmp_path: Path, shared_data: Path, start: datetime
) -> None:
    lines = (shared_data / "mooncake" / "conversation_trace.jsonl").read_text().splitlines()
    path = tmp_path / "moon.jsonl"
    path.write_text("\n".join(lines[:200]) + "\n")
    spec = SourceSpec("mooncake", "us-west", "llama3.1-8b", "IW-N", None, start)
    f = _only(_ingest(warehouse, contract, path, spec=spec))
    assert f.rows_loaded == 200
    last = json.loads(lines[199])
    got = warehouse.execute("SELECT max(arrival_time), sum(input_tokens) FROM requests").fetchone()
    assert got is not None
    assert got[0] == datetime(2024, 6, 3, 9) + pd.Timedelta(milliseconds=last["timestamp"])
    assert got[1] == sum(json.loads(x)["input_length"] for x in lines[:200])


def test_adapter_on_the_wrong_file_is_rejected(warehouse, contract, tmp_path: Path) -> None:
    path = _csv(tmp_path / "native.csv", GOOD)
    spec = SourceSpec("azure2023", "us-east", "llama2-70b", "IW-F")
    f = _only(_ingest(warehouse, contract, path, spec=spec))
    assert f.status == "rejected"
    assert "wrong columns" in (f.message or "") and "TIMESTAMP" in (f.message or "")
