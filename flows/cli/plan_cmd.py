"""`sageserve plan` and `sageserve explain`: the hourly plan, and why it looks as it does."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import console, emit_json, fail, open_warehouse, parse_time, settings
from flows.clock import clock_for
from planner.utc import naive_utc

log = logging.getLogger(__name__)


def plan(
    ctx: typer.Context,
    as_of: Annotated[
        str | None,
        typer.Option(
            help="when the plan is made (UTC); it covers the next hours. Default: now by the "
            "config's clock (the replay clock in the demo)"
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="publish root (default paths.outputs/plans)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make, verify, store and publish the plan for the hours after --as-of."""
    from flows.pipeline import forecast_and_plan

    cfg = settings(ctx).config()
    if as_of is None:
        clock = clock_for(cfg)
        when = clock.now().tz_localize("UTC").to_pydatetime()
        log.info("planning at %s UTC by the %s", f"{when:%Y-%m-%d %H:%M}", clock.describe())
    else:
        when = parse_time(as_of, "--as-of")
    root = out or Path(cfg.paths.outputs) / "plans"
    if root.exists() and not root.is_dir():
        fail(f"--out {root}: exists and is not a folder", code=2)
    with open_warehouse(ctx) as con:
        try:
            result = forecast_and_plan(con, cfg, when, root)
        except ValueError as exc:
            fail(str(exc))
    p = result.plan
    summary = p.summary()
    summary["verified"] = result.check.ok
    summary["violations"] = result.check.violations
    summary["export_path"] = str(result.export_path) if result.export_path else None
    summary["previous_plan"] = result.previous_plan_id
    summary["notes"] = list(p.notes)
    if as_json:
        emit_json(summary)
    else:
        _print(p, summary)
    if not result.check.ok:
        raise typer.Exit(1)


def _print(p: Any, s: dict[str, Any]) -> None:
    gap = s["gap_text"]
    console.print(
        f"plan {s['plan_id']} for {s['hours']} h from {s['start']}: ${s['total_cost']:,.0f}, "
        f"SCIP {s['scip_version']} {s['status']} gap {gap} in {s['solve_seconds']:.1f} s"
        + (f" [yellow]FALLBACK: {s['fallback_reason']}[/]" if s["fallback"] else "")
    )
    vms = p.vms.groupby(["region", "vm_type"])[["on_demand", "spot"]].agg(["min", "max"])
    table = Table(
        "region", "vm type", "on-demand min-max", "spot min-max", title="VMs over the horizon"
    )
    for (r, g), row in vms.iterrows():
        table.add_row(
            r,
            g,
            f"{row[('on_demand', 'min')]}-{row[('on_demand', 'max')]}",
            f"{row[('spot', 'min')]}-{row[('spot', 'max')]}",
        )
    console.print(table)
    first = p.actions[p.actions["hour"] == p.start]
    console.print(f"actions for the first hour: {len(first)}; in all: {len(p.actions)}")
    if len(p.unmet):
        console.print(f"[red]unmet demand: {s['unmet_tokens']:,.0f} tokens[/]")
    for note in s["notes"]:
        console.print(f"[yellow]{note}[/]")
    console.print(f"verified: {s['verified']}; published: {s['export_path']}")


def explain(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="a stored plan id")],
    hour: Annotated[
        str | None, typer.Option(help="only this planned hour (UTC), e.g. 2024-06-17T03:00")
    ] = None,
    region: Annotated[str | None, typer.Option(help="only this region")] = None,
    model: Annotated[str | None, typer.Option(help="only this model")] = None,
    limit: Annotated[int, typer.Option(min=1, help="rows shown (busiest first)")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per region, model and hour: instances, load, utilisation, unmet demand and the binding
    constraint family of a stored plan, with what each family means."""
    from flows.planning import load_plan, rebuild_data
    from planner.ilp.explain import BINDING_MEANING

    cfg = settings(ctx).config()
    for flag, value, known in (
        ("--region", region, cfg.region_ids),
        ("--model", model, cfg.model_ids),
    ):
        if value is not None and value not in known:
            fail(f"{flag}: unknown id {value!r}; known: {known}", code=2)
    with open_warehouse(ctx, read_only=True) as con:
        try:
            stored = load_plan(con, plan_id)
        except IndexError:
            fail(f"no plan {plan_id!r} in the warehouse (see `sageserve plans ls`)")
        data = rebuild_data(con, cfg, stored)
    from planner.ilp.explain import explain as explain_plan

    frame = explain_plan(stored, data)
    if hour is not None:
        when = naive_utc(parse_time(hour, "--hour"))
        frame = frame[pd.to_datetime(frame["hour"]) == when]
        if frame.empty:
            fail(
                f"--hour: {when} is not one of the plan's hours "
                f"({stored.start} + {len(stored.hours)} h)"
            )
    if region is not None:
        frame = frame[frame["region"] == region]
    if model is not None:
        frame = frame[frame["model"] == model]
    if as_json:
        emit_json(frame.to_dict(orient="records"))
        return
    counts = frame.groupby("binding").size().sort_values(ascending=False)
    legend = Table(
        "binding",
        "cells",
        "meaning",
        title=f"binding constraints over {len(frame)} cells",
        title_justify="left",
    )
    for family, n in counts.items():
        legend.add_row(str(family), str(n), BINDING_MEANING.get(str(family), ""))
    console.print(legend)
    busiest = frame.sort_values(["utilisation", "hour"], ascending=[False, True]).head(limit)
    table = Table(
        "hour (UTC)",
        "region",
        "model",
        "instances",
        "load (instances)",
        "utilisation",
        "unmet tok/s",
        "binding",
        title=f"busiest {len(busiest)} of {len(frame)} cells",
        title_justify="left",
    )
    r: Any  # a row of the explanation
    for r in busiest.itertuples():
        table.add_row(
            f"{pd.Timestamp(r.hour):%Y-%m-%d %H:%M}",
            r.region,
            r.model,
            f"{r.instances:g}",
            f"{r.load_instances:,.2f}",
            f"{r.utilisation:.0%}",
            f"{r.unmet_tokens_per_s:,.0f}",
            r.binding,
        )
    console.print(table)
