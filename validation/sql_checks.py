"""Compile a pandera (polars) schema into SQL that DuckDB runs over a whole batch.

Why: the ingest validates millions of rows per file; pulling them into a DataFrame only to learn
which rows are bad costs more than the load itself. The pandera schema stays the one definition
of a valid row; this module turns each column's dtype, nullability and built-in checks into SQL
predicates with bound parameters, evaluated by DuckDB in the same pass that casts the columns.

Per row, ``_reason`` lists every failed check as ``column: check, got value`` using pandera's own
check labels (``greater_than_or_equal_to(0)``), so reports read like pandera's failure cases.
Set-level checks (``unique``) are not row predicates; the ingest's duplicate SQL enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandera.polars as pa
import polars as pl

_DUCKDB_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Int64: "BIGINT",
    pl.Int32: "INTEGER",
    pl.Float64: "DOUBLE",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMP",
}


class UnsupportedCheck(ValueError):
    """A check the compiler has no SQL for: refusing beats silently not checking."""


@dataclass
class CompiledSchema:
    """``sql`` selects ``_row``, the typed schema columns, ``_reason`` and ``_raw`` (the row's
    raw values as JSON, only where ``_reason`` is not empty) from ``(source) AS stage``.

    ``passing_sql`` selects ``_row`` and the typed columns of exactly the rows whose ``_reason``
    is empty, from the same predicates as a plain boolean filter: no reason strings, no raw JSON.
    The ingest loads from it in one pass and builds reasons only when some row failed."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    passing_sql: str = ""


def duckdb_type(column: pa.Column) -> str:
    dtype = column.dtype.type
    base = dtype if isinstance(dtype, type) else type(dtype)
    for pl_type, sql_type in _DUCKDB_TYPES.items():
        if base is pl_type or issubclass(base, pl_type):
            return sql_type
    raise UnsupportedCheck(f"column {column.name}: no DuckDB type for {dtype}")


def compile_schema(
    schema: pa.DataFrameSchema, present: Mapping[str, str], source_sql: str
) -> CompiledSchema:
    """Build the checking SELECT over ``source_sql`` whose columns (name → DuckDB type) are
    ``present``. Required columns must be present (the caller rejects the file otherwise)."""
    params: dict[str, Any] = {}
    typed_cols: list[str] = []
    raw_fields: list[str] = []
    failures: list[str] = []
    failing: list[str] = []  # the same conditions as ``failures``, as booleans
    present_lower = {name.lower(): name for name in present}

    def fails_when(cond: str, column: str, error: str, got: str | None = None) -> None:
        """A check of ``column`` failing when ``cond`` is TRUE, its reason naming ``error``
        and the value ``got``."""
        failing.append(f"({cond})")
        message = f"'{column}: {error}" + (f", got ' || {got}" if got else "'")
        failures.append(f"CASE WHEN {cond} THEN {message} END")

    for name, column in schema.columns.items():
        sql_type = duckdb_type(column)
        source_name = present_lower.get(name.lower())
        if source_name is None:
            if column.required:
                raise ValueError(f"required column {name!r} is not in the source")
            typed_cols.append(f"CAST(NULL AS {sql_type}) AS {_q(name)}")
            continue
        raw = f"stage.{_q(source_name)}"
        typed = _typed_expr(raw, sql_type, present[source_name].upper())
        typed_cols.append(f"{typed} AS {_q(name)}")
        raw_fields.append(f"{_q(name)} := {raw}")
        if "TRY_CAST" in typed:
            got = f"left(CAST({raw} AS VARCHAR), 80)"
            fails_when(f"{raw} IS NOT NULL AND {typed} IS NULL", name, f"expected {sql_type}", got)
        if not column.nullable:
            fails_when(f"{raw} IS NULL", name, "not_nullable")
        for check in column.checks:
            predicate = _failing_predicate(check, typed, params)
            got = f"left(CAST({typed} AS VARCHAR), 80)"
            fails_when(f"{typed} IS NOT NULL AND ({predicate})", name, _sql_str(check.error), got)
    sql, passing_sql = _selects(source_sql, typed_cols, raw_fields, failures, failing, present)
    return CompiledSchema(sql, params, list(schema.columns), passing_sql)


def _selects(
    source_sql: str,
    typed_cols: list[str],
    raw_fields: list[str],
    failures: list[str],
    failing: list[str],
    present: Mapping[str, str],
) -> tuple[str, str]:
    """The checking SELECT (every row, typed, with its reasons and raw fields) and the passing
    SELECT (the rows no check fails, typed)."""
    reason = "concat_ws('; ', " + ", ".join(failures) + ")" if failures else "''"
    # concat_ws skips the NULL of every CASE whose condition is not TRUE, so the reason is
    # empty exactly when no condition is TRUE (NULL counts as not failing, as in the CASEs).
    passes = "(" + " OR ".join(failing) + ") IS NOT TRUE" if failing else "TRUE"
    if "_parse_error" in present:
        # A line that did not parse has no fields: report that alone, not a null per column.
        reason = f"coalesce(stage._parse_error, {reason})"
        passes = f"(stage._parse_error IS NULL AND {passes} OR stage._parse_error = '')"
    inner = (
        f"SELECT stage._row AS _row, {', '.join(typed_cols)}, {reason} AS _reason, "
        f"struct_pack({', '.join(raw_fields)}) AS _raw_struct FROM ({source_sql}) AS stage"
    )
    sql = (
        "SELECT * EXCLUDE (_raw_struct), "
        "CASE WHEN _reason <> '' THEN CAST(to_json(_raw_struct) AS VARCHAR) END AS _raw "
        f"FROM ({inner}) AS checked"
    )
    passing_sql = (
        f"SELECT stage._row AS _row, {', '.join(typed_cols)} FROM ({source_sql}) AS stage "
        f"WHERE {passes}"
    )
    return sql, passing_sql


_WIDENING = {
    "BIGINT": ("TINYINT", "SMALLINT", "INTEGER", "UTINYINT", "USMALLINT", "UINTEGER"),
    "DOUBLE": ("FLOAT", "TINYINT", "SMALLINT", "INTEGER", "BIGINT"),
}


def _typed_expr(raw: str, sql_type: str, source_type: str) -> str:
    """The value as ``sql_type``: as is when the source already has the type, a plain cast when
    it cannot fail, ``TRY_CAST`` (whose NULL marks a dtype failure) otherwise."""
    if source_type == sql_type:
        return raw
    if source_type in _WIDENING.get(sql_type, ()):
        return f"CAST({raw} AS {sql_type})"
    if sql_type == "TIMESTAMP":
        if source_type.startswith("TIMESTAMP"):
            # Naive timestamps are UTC; aware ones convert to UTC (the session runs in UTC).
            return f"CAST({raw} AS TIMESTAMP)"
        # Text: parse as TIMESTAMPTZ so offsets are honoured; naive text is taken as UTC.
        return f"CAST(TRY_CAST({raw} AS TIMESTAMPTZ) AS TIMESTAMP)"
    if sql_type == "BIGINT":
        # DuckDB rounds '1.5' and 1.5 to 2: a value with a fraction is a dtype failure instead
        exact = f"TRY_CAST({raw} AS DECIMAL(38, 9)) = TRY_CAST({raw} AS BIGINT)"
        return f"CASE WHEN {exact} THEN TRY_CAST({raw} AS BIGINT) END"
    return f"TRY_CAST({raw} AS {sql_type})"


def _failing_predicate(check: pa.Check, value: str, params: dict[str, Any]) -> str:
    """SQL that is true where ``value`` fails ``check``; constants become bound parameters."""
    stats = check.statistics or {}

    def bind(v: Any) -> str:
        key = f"p{len(params)}"
        params[key] = v
        return f"${key}"

    match check.name:
        case "greater_than_or_equal_to":
            return f"{value} < {bind(stats['min_value'])}"
        case "greater_than":
            return f"{value} <= {bind(stats['min_value'])}"
        case "less_than_or_equal_to":
            return f"{value} > {bind(stats['max_value'])}"
        case "less_than":
            return f"{value} >= {bind(stats['max_value'])}"
        case "equal_to":
            return f"{value} <> {bind(stats['value'])}"
        case "not_equal_to":
            return f"{value} = {bind(stats['value'])}"
        case "in_range":
            low = "<" if stats.get("include_min", True) else "<="
            high = ">" if stats.get("include_max", True) else ">="
            return (
                f"{value} {low} {bind(stats['min_value'])} OR "
                f"{value} {high} {bind(stats['max_value'])}"
            )
        case "isin":
            return f"NOT list_contains({bind(list(stats['allowed_values']))}, {value})"
        case "notin":
            return f"list_contains({bind(list(stats['forbidden_values']))}, {value})"
        case "str_length":
            return _str_length(stats, value, bind)
    raise UnsupportedCheck(f"no SQL form for pandera check {check.name!r}")


def _str_length(stats: Mapping[str, Any], value: str, bind: Any) -> str:
    if stats.get("exact_value") is not None:
        return f"length({value}) <> {bind(stats['exact_value'])}"
    parts = []
    if stats.get("min_value") is not None:
        parts.append(f"length({value}) < {bind(stats['min_value'])}")
    if stats.get("max_value") is not None:
        parts.append(f"length({value}) > {bind(stats['max_value'])}")
    return " OR ".join(parts) or "FALSE"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _sql_str(text: str) -> str:
    return text.replace("'", "''")
