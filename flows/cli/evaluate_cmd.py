"""`sageserve evaluate`: replay the request log through the policies and compare them."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import (
    STATE,
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    progress_bar,
)
from flows.evaluation import POLICIES, run_evaluation, write_outputs

log = logging.getLogger(__name__)


def evaluate(
    policies: Annotated[
        str, typer.Option(help=f"comma-separated, from: {','.join(POLICIES)}")
    ] = ",".join(POLICIES),
    hours: Annotated[int, typer.Option(min=1, help="hours replayed (whole hours)")] = 48,
    end: Annotated[
        str | None, typer.Option(help="window end (UTC); default: the log's last full hour")
    ] = None,
    time_limit: Annotated[
        float | None, typer.Option(min=0.1, help="SCIP seconds per hourly plan")
    ] = None,
    seed: Annotated[int, typer.Option(help="SCIP seed, recorded with the results")] = 0,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay the warehouse's request log through each policy on the simulator; write a
    comparison table (markdown, CSV, JSON) and plots."""
    cfg = STATE.config()
    names = [n.strip() for n in policies.split(",") if n.strip()]
    bad = [n for n in names if n not in POLICIES]
    if bad or not names:
        fail(f"--policies: unknown {bad or 'empty list'}; choose from {', '.join(POLICIES)}")
    stop = parse_time(end, "--end") if end else None
    plans = hours * (any(n.startswith("lt-") for n in names) + ("oracle" in names))
    con = open_warehouse()
    with con, progress_bar() as bar:
        task = bar.add_task("hourly plans", total=plans or None)
        try:
            evaluation = run_evaluation(
                con, cfg, names, hours, stop, time_limit, seed, lambda n: bar.advance(task, n)
            )
        except ValueError as exc:
            fail(str(exc))
    folder = out or Path(cfg.paths.outputs) / (
        f"evaluation-{evaluation.start:%Y%m%dT%H%M}-{hours}h-{evaluation.config_hash}"
    )
    paths = write_outputs(evaluation, folder)
    table = evaluation.table()
    if as_json:
        emit_json(
            {
                "window": [str(evaluation.start), str(evaluation.end)],
                "config_hash": evaluation.config_hash,
                "seed": seed,
                "results": table.to_dict(orient="records"),
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return
    columns = [
        "policy",
        "gpu_hours",
        "gpu_hours_scaling",
        "cost",
        "IW-F_sla",
        "IW-N_sla",
        "NIW_sla",
    ]
    extra = [c for c in ("gpu_hours_vs_reactive", "gpu_hours_vs_oracle") if c in table]
    view = Table(*columns, *extra, title=f"{evaluation.start} .. {evaluation.end}")
    for row in table.to_dict(orient="records"):
        view.add_row(
            *(
                f"{row[c]:,.4g}" if isinstance(row[c], float) else str(row[c])
                for c in [*columns, *extra]
            )
        )
    console.print(view)
    console.print(f"comparison: {paths['md']}; plots in {folder}")
