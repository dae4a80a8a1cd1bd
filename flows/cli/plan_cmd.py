"""`sageserve plan` and `sageserve explain`: the hourly plan, and why it looks as it does."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from flows.cli.common import (
    check_ids,
    clear_errors,
    console,
    emit_json,
    fail,
    open_warehouse,
    parse_time,
    print_table,
    settings,
)
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
    with open_warehouse(ctx) as con, clear_errors():
        result = forecast_and_plan(con, cfg, when, root)
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
    print_table(
        ("region", "vm type", "on-demand min-max", "spot min-max"),
        (
            (
                r,
                g,
                *(f"{row[(kind, 'min')]}-{row[(kind, 'max')]}" for kind in ("on_demand", "spot")),
            )
            for (r, g), row in vms.iterrows()
        ),
        title="VMs over the horizon",
    )
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

    cfg = settings(ctx).config()
    check_ids(cfg, region=region, model=model)
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
    for column, value in (("region", region), ("model", model)):
        if value is not None:
            frame = frame[frame[column] == value]
    if as_json:
        emit_json(frame.to_dict(orient="records"))
        return
    _print_explanation(frame, limit)


def _print_explanation(frame: pd.DataFrame, limit: int) -> None:
    """The binding families with their meaning, and the busiest cells."""
    from planner.ilp.explain import BINDING_MEANING

    counts = frame.groupby("binding").size().sort_values(ascending=False)
    print_table(
        ("binding", "cells", "meaning"),
        ((family, n, BINDING_MEANING.get(str(family), "")) for family, n in counts.items()),
        title=f"binding constraints over {len(frame)} cells",
        title_justify="left",
    )
    busiest = frame.sort_values(["utilisation", "hour"], ascending=[False, True]).head(limit)
    print_table(
        (
            "hour (UTC)",
            "region",
            "model",
            "instances",
            "load (instances)",
            "utilisation",
            "unmet tok/s",
            "binding",
        ),
        (
            (
                f"{pd.Timestamp(r['hour']):%Y-%m-%d %H:%M}",
                r["region"],
                r["model"],
                f"{r['instances']:g}",
                f"{r['load_instances']:,.2f}",
                f"{r['utilisation']:.0%}",
                f"{r['unmet_tokens_per_s']:,.0f}",
                r["binding"],
            )
            for r in busiest.to_dict("records")
        ),
        title=f"busiest {len(busiest)} of {len(frame)} cells",
        title_justify="left",
    )
