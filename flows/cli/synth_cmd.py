"""Synthesis commands: a request log from the config's tenants, or from ServeGen's client
profiles (requests, or per-minute aggregates), one Parquet file per UTC day."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import emit_json, fail, parse_time, progress_bar, settings
from planner.files import write_parquet_atomic

if TYPE_CHECKING:
    import pandas as pd

    from planner.config import FleetConfig
    from planner.workload.servegen import ServeGenClient, ServeGenSpec

log = logging.getLogger(__name__)
DEFAULT_AZURE = Path("../shared/data/azure2023")


def synth(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="folder for one Parquet file per day")],
    days: Annotated[int, typer.Option(min=1, max=366)] = 14,
    seed: Annotated[int, typer.Option()] = 7,
    requests_per_day: Annotated[int, typer.Option(min=1)] = 2_000_000,
    start: Annotated[str, typer.Option(help="UTC start (a Monday keeps weekdays aligned)")] = (
        "2024-06-03T00:00Z"
    ),
    azure: Annotated[Path, typer.Option(help="Azure 2023 trace folder (token lengths)")] = (
        DEFAULT_AZURE
    ),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Generate a deterministic multi-day, multi-region request log (native Parquet)."""
    from planner.workload.synth import SynthSpec, synthesize
    from planner.workload.tokens import TokenSampler

    cfg = settings(ctx).config()
    spec = SynthSpec(days, seed, parse_time(start, "--start"), requests_per_day)
    try:
        tokens = TokenSampler.from_azure(azure)
    except FileNotFoundError as exc:
        fail(str(exc), code=2)
    files, total = [], 0
    with progress_bar() as bar:
        task = bar.add_task("synthesising days", total=days)
        for day, frame in synthesize(cfg, spec, tokens):
            path = out / f"requests-{day:%Y-%m-%d}.parquet"
            write_parquet_atomic(frame, path)
            files.append(str(path))
            total += len(frame)
            bar.advance(task)
    log.info("wrote %d rows in %d files under %s", total, len(files), out)
    if as_json:
        emit_json({"files": files, "rows": total, "seed": seed, "days": days})


def synth_servegen(
    ctx: typer.Context,
    source: Annotated[list[Path], typer.Option(help="ServeGen folder, e.g. .../language/m-mid")],
    out: Annotated[Path, typer.Option(help="folder for one Parquet file per UTC day")],
    model: Annotated[
        list[str] | None, typer.Option(help="model id per --source (default: by folder name)")
    ] = None,
    scale: Annotated[float, typer.Option(min=1e-7, max=1.0, help="volume scale")] = 0.001,
    seed: Annotated[int, typer.Option()] = 7,
    start: Annotated[str, typer.Option(help="local date of ServeGen day 0")] = "2024-06-03",
    aggregate: Annotated[
        str | None,
        typer.Option(help="'minute': per-minute aggregates from the rate series, not rows"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Turn ServeGen per-client rate series into native request rows (or, with --aggregate
    minute, per-minute demand aggregates for `ingest --format minute-aggregates`)."""
    import pandas as pd

    from planner.workload.servegen import ServeGenSpec, synthesize_servegen

    cfg = settings(ctx).config()
    models = model or [_default_model(s) for s in source]
    if len(models) != len(source):
        fail(f"--model given {len(models)} times for {len(source)} --source folders", code=2)
    for m in models:
        if m not in cfg.model_ids:
            fail(f"--model: unknown model {m!r}; known: {cfg.model_ids}", code=2)
    if aggregate not in (None, "minute"):
        fail(f"--aggregate: only 'minute' is supported, got {aggregate!r}", code=2)
    start_date = parse_time(start, "--start").date()
    specs = [ServeGenSpec(m, scale, seed, start_date) for m in models]
    if aggregate == "minute":
        _synth_minutes(cfg, source, specs, out, as_json)
        return
    frames = [
        frame
        for clients, spec in _clients(source, specs)
        for frame in synthesize_servegen(cfg, clients, spec)
    ]
    if not frames:
        fail("no requests generated (scale too small?)")
    rows = pd.concat(frames, ignore_index=True).sort_values("arrival_time", kind="stable")
    rows.insert(0, "request_id", [f"sg{seed}-{i:09d}" for i in range(len(rows))])
    files = _write_days(rows, "arrival_time", out, "servegen")
    log.info("wrote %d rows in %d files under %s", len(rows), len(files), out)
    if as_json:
        emit_json({"files": files, "rows": len(rows), "seed": seed, "scale": scale})


def _clients(
    sources: list[Path], specs: list[ServeGenSpec]
) -> Iterator[tuple[list[ServeGenClient], ServeGenSpec]]:
    """Each ``--source`` folder's clients (a missing folder fails the command) and its spec."""
    from planner.workload.servegen import load_source

    for src, spec in zip(sources, specs, strict=True):
        try:
            clients = load_source(src)
        except FileNotFoundError as exc:
            fail(str(exc), code=2)
        yield clients, spec


def _write_days(rows: pd.DataFrame, column: str, out: Path, prefix: str) -> list[str]:
    """One Parquet file per UTC day of ``column``, ``out/<prefix>-YYYY-MM-DD.parquet``."""
    files = []
    for day, frame in rows.groupby(rows[column].dt.floor("D"), sort=True):
        path = out / f"{prefix}-{day:%Y-%m-%d}.parquet"
        write_parquet_atomic(frame.reset_index(drop=True), path)
        files.append(str(path))
    return files


def _synth_minutes(
    cfg: FleetConfig, sources: list[Path], specs: list[ServeGenSpec], out: Path, as_json: bool
) -> None:
    import pandas as pd

    from planner.workload.servegen_minutes import synthesize_minutes

    frames = [synthesize_minutes(cfg, clients, spec) for clients, spec in _clients(sources, specs)]
    minutes = pd.concat(frames, ignore_index=True).sort_values("minute", kind="stable")
    if minutes.empty:
        fail("no demand generated (scale too small?)")
    files = _write_days(minutes, "minute", out, "servegen-minutes")
    requests = int(minutes["requests"].sum())
    log.info("wrote %d minute rows (%d requests) in %d files", len(minutes), requests, len(files))
    if as_json:
        emit_json(
            {
                "files": files,
                "rows": len(minutes),
                "requests": requests,
                "seed": specs[0].seed,
                "scale": specs[0].scale,
            }
        )


def _default_model(source: Path) -> str:
    return {"m-large": "llama2-70b", "m-mid": "llama3.1-8b"}.get(source.name, "llama3.1-8b")
