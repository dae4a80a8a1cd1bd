"""`sageserve evaluate`: replay the request log through the policies and compare them."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flows.cli.common import (
    choices,
    clear_errors,
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    print_table,
    progress_bar,
    settings,
)
from flows.policy_names import DEFAULT_QUANTILES, POLICIES
from planner.sim.sweep import FAMILIES

if TYPE_CHECKING:
    from flows.evaluation import Evaluation
    from flows.sweep import Sweep

log = logging.getLogger(__name__)
_COLUMNS = (  # the comparison table's columns shown, in order (the last two when compared)
    "policy",
    "gpu_hours",
    "gpu_hours_scaling",
    "cost",
    "IW-F_sla",
    "IW-N_sla",
    "NIW_sla",
    "gpu_hours_vs_reactive",
    "gpu_hours_vs_oracle",
)


def evaluate(
    ctx: typer.Context,
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
    sweep: Annotated[
        bool, typer.Option("--sweep", help="every family over its dial; frontier at equal SLA")
    ] = False,
    families: Annotated[
        str, typer.Option(help=f"with --sweep, comma-separated, from: {','.join(FAMILIES)}")
    ] = ",".join(FAMILIES),
    quantiles: Annotated[
        str, typer.Option(help="with --sweep, the plan family's planning quantiles")
    ] = ",".join(map("{:g}".format, DEFAULT_QUANTILES)),
    workers: Annotated[int, typer.Option(min=1, help="with --sweep, worker processes")] = 2,
    refine: Annotated[bool, typer.Option(help="with --sweep, refine each best point")] = True,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay the warehouse's log through each policy; write a comparison (markdown, CSV, JSON,
    plots). With --sweep, every family over its dial: its cheapest point meeting the targets."""
    from flows.evaluation import run_evaluation, write_outputs

    cfg = settings(ctx).config()
    if sweep:
        args = (families, quantiles, workers, refine, as_json)
        _sweep(ctx, hours, end, time_limit, seed, out, *args)
        return
    names = choices(policies, "--policies", POLICIES)
    stop = parse_time(end, "--end") if end else None
    plans = hours * (any(n.startswith("lt-") for n in names) + ("oracle" in names))
    con = open_warehouse(ctx)
    with con, progress_bar() as bar, clear_errors():
        task = bar.add_task("hourly plans", total=plans or None)
        evaluation = run_evaluation(
            con, cfg, names, hours, stop, time_limit, seed, lambda n: bar.advance(task, n)
        )
    folder = out or Path(cfg.paths.outputs) / (
        f"evaluation-{evaluation.start:%Y%m%dT%H%M}-{hours}h-{evaluation.config_hash}"
    )
    _report(evaluation, write_outputs(evaluation, folder), folder, as_json)


def _report(evaluation: Evaluation, paths: dict[str, Path], folder: Path, as_json: bool) -> None:
    """The comparison as JSON (``--json``) or as a table, and where its files are."""
    table = evaluation.table()
    if as_json:
        emit_json(
            {
                "window": [str(evaluation.start), str(evaluation.end)],
                "config_hash": evaluation.config_hash,
                "seed": evaluation.seed,
                "results": table.to_dict(orient="records"),
                "files": {k: str(v) for k, v in paths.items()},
            }
        )
        return
    columns = [c for c in _COLUMNS if c in table]
    print_table(
        columns,
        ((_cell(row[c]) for c in columns) for row in table.to_dict(orient="records")),
        title=f"{evaluation.start} .. {evaluation.end}",
    )
    console.print(f"comparison: {paths['md']}; plots in {folder}")


def _sweep(
    ctx: typer.Context,
    hours: int,
    end: str | None,
    time_limit: float | None,
    seed: int,
    out: Path | None,
    families: str,
    quantiles: str,
    workers: int,
    refine: bool,
    as_json: bool,
) -> None:
    from flows.sweep import run_sweep, sweep_json, write_sweep

    cfg = settings(ctx).config()
    fams = choices(families, "--families", FAMILIES)
    qs = _quantiles(quantiles)
    stop = parse_time(end, "--end") if end else None
    con = open_warehouse(ctx)
    with con, progress_bar() as bar, clear_errors():
        task = bar.add_task("sweep", total=None)
        result = run_sweep(
            con, cfg, hours, stop, fams, qs, time_limit, seed, workers,
            partial(bar.advance, task), refine,
        )  # fmt: skip
    folder = out or Path(cfg.paths.outputs) / (
        f"sweep-{result.start:%Y%m%dT%H%M}-{hours}h-{result.config_hash}"
    )
    paths = write_sweep(result, folder)
    if as_json:
        emit_json({**sweep_json(result), "files": {k: str(v) for k, v in paths.items()}})
        return
    _print_frontier(result)
    console.print(f"frontier: {paths['md']}; every point: {paths['csv']}; plots in {folder}")


def _quantiles(text: str) -> list[float]:
    """``--quantiles``: comma-separated, each in (0, 1)."""
    try:
        qs = [float(q) for q in text.split(",") if q.strip()]
    except ValueError:
        fail(f"--quantiles: not numbers: {text!r}")
    if not qs or any(not 0 < q < 1 for q in qs):
        fail(f"--quantiles: each must lie in (0, 1), got {text!r}")
    return qs


def _print_frontier(result: Sweep) -> None:
    """Per family, the cheapest point meeting the targets and how it compares."""
    rows = []
    for fam, r in result.frontier.items():
        if r is None:
            rows.append((fam, "none meets the targets", "", "", "", ""))
            continue
        saving = r["saving_vs_reactive"]
        versus = "" if saving is None or fam == "reactive" else f"{-100 * saving:+.1f} %"
        bounds = f"{r['vs_bound']:.2f}", f"{r['vs_work_bound']:.2f}"
        rows.append((fam, r["policy"], f"{r['gpu_hours']:,.0f}", versus, *bounds))
    print_table(
        ("family", "point", "GPU-h", "vs reactive", "vs clairvoyant", "vs work bound"),
        rows,
        title=f"frontier at equal SLA, {result.start} .. {result.end}",
    )


def _cell(value: object) -> str:
    return f"{value:,.4g}" if isinstance(value, float) else str(value)
