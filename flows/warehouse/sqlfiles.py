"""Named SQL files under ``sql/`` and a helper that binds exactly the parameters a file uses.

Values are always bound parameters (``$name``). A few files also have a structural slot: a
generated SELECT (``{{ checked }}``, ``{{ source }}``: the staging reader, or the pandera schema
compiled to SQL) or a table and key name (``sql/tables/``: per-table statements written once).
That is composition of trusted query text, never of values.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_SLOT = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>.sql`` (one statement)."""
    path = SQL_DIR / f"{name}.sql"
    return path.read_text(encoding="utf-8").rstrip().rstrip(";") + "\n"


def params_used(text: str) -> set[str]:
    return set(_PARAM.findall(_strip_comments(text)))


def render(text: str, slots: dict[str, str]) -> str:
    """Fill the structural ``{{ slot }}`` markers; every marker must be filled and vice versa."""
    wanted = set(_SLOT.findall(text))
    if wanted != set(slots):
        raise KeyError(f"SQL slots {sorted(wanted)} but given {sorted(slots)}")
    return _SLOT.sub(lambda m: slots[m.group(1)], text)


def run(
    con: duckdb.DuckDBPyConnection,
    name: str,
    slots: dict[str, str] | None = None,
    **params: Any,
) -> duckdb.DuckDBPyConnection:
    """Execute ``sql/<name>.sql`` binding the named parameters it references."""
    text = render(sql(name), slots or {})
    return execute(con, text, params)


def execute(
    con: duckdb.DuckDBPyConnection, text: str, params: dict[str, Any]
) -> duckdb.DuckDBPyConnection:
    used = params_used(text)
    missing = used - params.keys()
    if missing:
        raise KeyError(f"SQL needs parameters {sorted(missing)}")
    bound = {k: v for k, v in params.items() if k in used}
    return con.execute(text, bound) if bound else con.execute(text)


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN … COMMIT; on any exception (an interrupt included) ROLLBACK and re-raise, so a
    failed step leaves the warehouse as it was."""
    con.execute("BEGIN")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """``frame``'s rows into ``table``, columns matched by name."""
    con.register(f"staged_{table}", frame)
    try:
        run(con, "tables/insert_by_name", {"table": table, "staged": f"staged_{table}"})
    finally:
        con.unregister(f"staged_{table}")


def delete_rows(con: duckdb.DuckDBPyConnection, table: str, key: str, value: Any) -> None:
    """The rows of ``table`` whose column ``key`` is ``value`` (before they are replaced)."""
    run(con, "tables/delete_by_key", {"table": table, "key": key}, value=value)
