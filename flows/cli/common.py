"""Shared CLI plumbing: global options, logging, JSON output, friendly fatal errors."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flows.warehouse.connection import WarehouseError, connect
from planner.config import ConfigError, FleetConfig, load_config
from planner.utc import aware_utc

log = logging.getLogger("sageserve")
# Tables and results on stdout (`sageserve status | less` works); errors, progress and logs
# on stderr.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 160)


def progress_bar() -> Progress:
    """A progress bar on stderr with counts, elapsed time and ETA (gone when done)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


@dataclass
class CliSettings:
    """The global options of one `sageserve` invocation: the callback puts them on the typer
    context (``ctx.obj``), and every command reads them from there (:func:`settings`)."""

    config_path: Path | None = None
    warehouse: Path | None = None
    verbose: bool = False
    _config: FleetConfig | None = None

    def config(self) -> FleetConfig:
        if self._config is None:
            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                fail(str(exc), code=2)
        return self._config

    def warehouse_path(self) -> Path:
        return self.warehouse or Path(self.config().paths.warehouse)


def settings(ctx: typer.Context) -> CliSettings:
    """The invocation's settings (defaults when a command runs without the app's callback)."""
    if not isinstance(ctx.obj, CliSettings):
        ctx.obj = CliSettings()
    return ctx.obj


def open_warehouse(
    ctx: typer.Context, *, read_only: bool = False, create: bool = False
) -> duckdb.DuckDBPyConnection:
    """The configured warehouse, or a friendly fatal error saying why it cannot be opened.
    Only ``create`` (ingest, demo) makes a missing one; ``read_only`` (reports) takes no write
    lock, so it works beside a running writer's readers and never changes the file."""
    opts = settings(ctx)
    try:
        return connect(
            opts.warehouse_path(),
            memory_limit=opts.config().warehouse.memory_limit,
            read_only=read_only,
            create=create,
        )
    except WarehouseError as exc:
        fail(str(exc))


def setup_logging(verbose: bool) -> None:
    level = os.environ.get("SAGESERVE_LOG_LEVEL", "DEBUG" if verbose else "INFO").upper()
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("httpx", "httpcore", "numba", "matplotlib", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout (logs go to stderr)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_time(text: str, option: str) -> datetime:
    """An ISO-8601 time from the command line, as aware UTC (naive means UTC)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option}: not an ISO-8601 time: {text!r} (e.g. 2024-06-17T00:00Z)", code=2)
    return aware_utc(value)


def print_table(columns: Iterable[str], rows: Iterable[Iterable[Any]], **options: Any) -> None:
    """``rows`` as a rich table on stdout, every cell shown with ``str``."""
    table = Table(*columns, **options)
    for row in rows:
        table.add_row(*map(str, row))
    console.print(table)


@contextmanager
def clear_errors() -> Iterator[None]:
    """The pipeline's clear errors (``ValueError``: bad input, missing data) as a friendly
    fatal error instead of a traceback."""
    try:
        yield
    except ValueError as exc:
        fail(str(exc))


def choices(text: str, option: str, known: Sequence[str]) -> list[str]:
    """A comma-separated list of names from ``known`` given on the command line."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        fail(f"{option}: unknown {bad or 'empty list'}; choose from {', '.join(known)}")
    return names


def check_ids(cfg: FleetConfig, required_by: str | None = None, **ids: str | None) -> None:
    """Each of ``ids`` (region, model, tier) a known id of the fleet; ``None`` passes unless
    ``required_by`` names the --format that needs it."""
    known = {"region": cfg.region_ids, "model": cfg.model_ids, "tier": cfg.tier_ids}
    for key, value in ids.items():
        if value is None and required_by:
            fail(f"--{key} is required with --format {required_by} (known: {known[key]})", 2)
        if value is not None and value not in known[key]:
            fail(f"--{key}: unknown id {value!r}; known: {known[key]}", code=2)
