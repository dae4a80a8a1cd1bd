"""Schema migrations: ordered files ``sql/migrations/NNNN_name.sql``, each applied once in its
own transaction and recorded with a checksum, so an edited applied migration is caught."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from flows.warehouse.sqlfiles import SQL_DIR, transaction

log = logging.getLogger(__name__)
MIGRATIONS_DIR = SQL_DIR / "migrations"


class MigrationError(RuntimeError):
    pass


def migration_files() -> list[tuple[int, Path]]:
    files = sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    return [(int(f.name[:4]), f) for f in files]


def latest_version() -> int:
    """The schema version this code expects: the newest migration file's."""
    return migration_files()[-1][0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()
    if not row or row[0] == 0:
        return 0
    result = con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(result[0]) if result else 0


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations; returns the schema version now in force."""
    files = migration_files()
    con.execute(files[0][1].read_text(encoding="utf-8"))  # creates the bookkeeping table
    applied = dict(con.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    for version, path in files:
        text = path.read_text(encoding="utf-8")
        checksum = hashlib.sha256(text.encode()).hexdigest()[:16]
        if version in applied:
            if applied[version] != checksum:
                raise MigrationError(
                    f"migration {path.name} was changed after it was applied "
                    f"(recorded {applied[version]}, file {checksum}); add a new migration instead"
                )
            continue
        with transaction(con):
            con.execute(text)
            con.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?, ?)",
                [version, path.stem, checksum, datetime.now(UTC).replace(tzinfo=None)],
            )
        log.info("applied migration %s", path.name)
    return schema_version(con)
