"""`sageserve plan` and `sageserve explain`: the hourly plan, and why it looks as it does."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from flows.cli.common import STATE, console, emit_json, fail, open_warehouse, parse_time
from flows.planning import load_plan, run_plan

log = logging.getLogger(__name__)


def plan(
    as_of: Annotated[
        str, typer.Option(help="when the plan is made (UTC); it covers the next hours")
    ],
    out: Annotated[
        Path | None, typer.Option(help="publish root (default paths.outputs/plans)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Make, verify, store and publish the plan for the hours after --as-of."""
    cfg = STATE.config()
    when = parse_time(as_of, "--as-of")
    root = out or Path(cfg.paths.outputs) / "plans"
    if root.exists() and not root.is_dir():
        fail(f"--out {root}: exists and is not a folder", code=2)
    with open_warehouse() as con:
        try:
            result = run_plan(con, cfg, when, root)
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
    plan_id: Annotated[str, typer.Argument(help="a stored plan id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Per region, model and hour: load, headroom and the binding constraint of a plan."""
    from flows.planning import rebuild_data

    cfg = STATE.config()
    with open_warehouse(read_only=True) as con:
        try:
            stored = load_plan(con, plan_id)
        except IndexError:
            fail(f"no plan {plan_id!r} in the warehouse")
        data = rebuild_data(con, cfg, stored)
    from planner.ilp.explain import explain as explain_plan

    frame = explain_plan(stored, data)
    if as_json:
        emit_json(frame.to_dict(orient="records"))
        return
    counts = frame.groupby(["binding"]).size().to_dict()
    console.print(f"binding constraints over {len(frame)} region×model×hour cells: {counts}")
    busiest = frame.sort_values("utilisation", ascending=False).head(10)
    table = Table("hour", "region", "model", "instances", "utilisation", "binding")
    for r in busiest.itertuples():
        table.add_row(
            str(r.hour), r.region, r.model, f"{r.instances:g}", f"{r.utilisation:.0%}", r.binding
        )
    console.print(table)
