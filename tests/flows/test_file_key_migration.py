"""Migrations 0040/0041: a warehouse made before them (a 64-character ``file_id`` on every
``requests`` row) is upgraded in place to the integer ``file_key``: no row lost, each row still
names its file, the manifest validates, opening again changes nothing, and the next ingest
takes the next key and still names the earlier file of a repeated id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandera.polars as pa
import pytest

from flows.warehouse import migrations
from flows.warehouse.connection import connect
from flows.warehouse.ingest import SourceSpec, ingest_paths
from validation.requests import ingested_files

T = datetime(2024, 6, 20, 8, 0)
OLD_FILES = [("a" * 64, "day1.csv", 2), ("b" * 64, "day0.csv", 1)]
OLD_ROWS = [
    ("r1", "a" * 64),
    ("r2", "a" * 64),
    ("r0", "b" * 64),
    ("hand", "c" * 64),  # no manifest row: kept, given one
]


def _old_warehouse(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warehouse before 0040 with two ingested files and one row without a manifest row."""
    old = [(v, f) for v, f in migrations.migration_files() if v < 40]
    with monkeypatch.context() as m:
        m.setattr(migrations, "migration_files", lambda: old)
        con = connect(path)
    for file_id, name, rows in OLD_FILES:
        con.execute(
            "INSERT INTO ingested_files (file_id, path, format, bytes, rows_read, rows_loaded, "
            "rows_quarantined, duplicates_skipped, min_arrival, max_arrival, ingested_at, "
            "mart_refreshed) VALUES (?, ?, 'native', 100, ?, ?, 0, 0, ?, ?, ?, true)",
            [file_id, name, rows, rows, T, T, T],  # one run: the same ingested_at
        )
    for request_id, file_id in OLD_ROWS:
        con.execute(
            "INSERT INTO requests VALUES (?, ?, 'us-east', 'llama2-70b', 'IW-F', 10, 2, NULL, "
            "NULL, NULL, ?)",
            [request_id, T, file_id],
        )
    con.close()


def test_an_old_warehouse_is_upgraded_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, contract: pa.DataFrameSchema
) -> None:
    path = tmp_path / "w.duckdb"
    _old_warehouse(path, monkeypatch)
    con = connect(path)
    columns = [r[0] for r in con.execute("DESCRIBE requests").fetchall()]
    assert "file_id" not in columns and columns[-1] == "file_key"
    rows = con.execute(
        "SELECT r.request_id, f.file_key, f.path, f.format, f.rows_loaded "
        "FROM requests AS r JOIN ingested_files AS f USING (file_key) ORDER BY r.request_id"
    ).fetchall()
    orphan = "(rows without a manifest row, kept by migration 0040)"
    assert rows == [  # keys by ingest time, then path; the orphan's manifest row is newer
        ("hand", 3, orphan, "unknown", 1),
        ("r0", 1, "day0.csv", "native", 1),
        ("r1", 2, "day1.csv", "native", 2),
        ("r2", 2, "day1.csv", "native", 2),
    ]
    ingested_files.validate(con.execute("SELECT * FROM ingested_files").pl())
    assert con.execute("SELECT count(*) FROM ingested_files WHERE NOT mart_refreshed").fetchone()
    versions = con.execute("SELECT count(*) FROM schema_migrations").fetchone()
    con.close()

    con = connect(path)  # opening again applies nothing and changes nothing
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone() == versions
    assert con.execute("SELECT count(*), sum(file_key) FROM requests").fetchone() == (4, 8)
    log = tmp_path / "next.csv"
    log.write_text(
        "request_id,arrival_time,region,model,tier,input_tokens,output_tokens\n"
        "new,2024-06-21T00:00:00Z,us-east,llama2-70b,IW-F,10,2\n"
        "r1,2024-06-21T00:00:00Z,us-east,llama2-70b,IW-F,10,2\n"  # r1 with other values
    )
    report = ingest_paths(con, [log], SourceSpec(), contract, datetime(2024, 7, 1, tzinfo=UTC))
    assert report.totals["rows_loaded"] == 1 and report.totals["rows_quarantined"] == 1
    assert con.execute(
        "SELECT f.file_key, f.path FROM requests JOIN ingested_files AS f USING (file_key) "
        "WHERE request_id = 'new'"
    ).fetchall() == [(4, str(log))]
    (reason,) = con.execute("SELECT reason FROM requests_quarantine").fetchone()  # type: ignore[misc]
    assert reason == "request_id: already loaded from day1.csv"
    con.close()


def test_the_upgrade_is_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure inside 0040 (here its last check, made to fire) leaves the old schema and rows."""
    path = tmp_path / "w.duckdb"
    _old_warehouse(path, monkeypatch)
    files = migrations.migration_files()
    broken = tmp_path / "0040_requests_file_key.sql"
    text = dict(files)[40].read_text(encoding="utf-8")
    broken.write_text(text.replace("WHERE file_key = 0", "WHERE file_key > 0"), encoding="utf-8")
    with monkeypatch.context() as m:
        m.setattr(
            migrations, "migration_files", lambda: [(v, broken if v == 40 else f) for v, f in files]
        )
        with pytest.raises(Exception, match="found no manifest row; nothing changed"):
            connect(path)
    with duckdb.connect(str(path), read_only=True) as raw:  # as it was, before 0040
        before = max(v for v, _ in files if v < 40)
        assert raw.execute("SELECT max(version) FROM schema_migrations").fetchone() == (before,)
        assert raw.execute("SELECT count(DISTINCT file_id) FROM requests").fetchone() == (3,)
        assert "file_key" not in [r[0] for r in raw.execute("DESCRIBE ingested_files").fetchall()]
    con = connect(path)  # the real migrations apply cleanly afterwards
    assert con.execute("SELECT count(*) FROM requests").fetchone() == (4,)
    assert con.execute("SELECT count(*) FROM ingested_files").fetchone() == (3,)
    con.close()
