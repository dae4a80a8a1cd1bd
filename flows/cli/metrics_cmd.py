"""`sageserve metrics`: the same exposition the metrics endpoint serves, on stdout."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from flows.cli.common import emit_json, settings


def metrics(
    ctx: typer.Context,
    openmetrics: Annotated[
        bool, typer.Option("--openmetrics", help="OpenMetrics text instead of Prometheus text")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="samples as JSON")] = False,
    out: Annotated[
        Path | None, typer.Option(help="outputs root holding status/ (default paths.outputs)")
    ] = None,
) -> None:
    """Print the dashboard metrics (plan, fleet, demand vs forecast, freshness, last run)."""
    from flows.metrics import WarehouseSource, build_registry

    cfg = settings(ctx).config()
    source = WarehouseSource(settings(ctx).warehouse_path(), out or Path(cfg.paths.outputs))
    registry = build_registry(source)
    if as_json:
        emit_json(
            [
                {
                    "name": s.name,
                    "labels": s.labels,
                    "value": None if math.isnan(s.value) else s.value,
                }
                for family in registry.collect()
                for s in family.samples
            ]
        )
        return
    text = (
        generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        if openmetrics
        else generate_latest(registry)
    )
    sys.stdout.write(text.decode("utf-8"))
