"""`sageserve plans`: the stored plans. `ls` lists them, `show ID` shows one the way its
operator page does (the same view, reports/operator.py)."""

from __future__ import annotations

import logging
from typing import Annotated

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import STATE, console, emit_json, fail, open_warehouse
from flows.warehouse.sqlfiles import run

log = logging.getLogger(__name__)

app = typer.Typer(
    name="plans",
    help="Stored plans: list them, show one (what to do next and why).",
    no_args_is_help=True,
)


def _table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(*map(str, frame.columns), title=title, title_justify="left")
    for row in frame.astype(str).itertuples(index=False):
        table.add_row(*row)
    return table


@app.command("ls")
def ls(
    limit: Annotated[int, typer.Option(min=1, help="newest N plans")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The stored plans, newest first: id, hour, status, gap, cost, verified, files."""
    with open_warehouse() as con:
        frame = run(con, "plans/list_plans", limit=limit).df()
    if as_json:
        emit_json(frame.to_dict(orient="records"))
        return
    if frame.empty:
        console.print("no plans stored yet (`sageserve plan` or the hourly-plan flow makes them)")
        return
    view = pd.DataFrame(
        {
            "plan": frame["plan_id"],
            "first hour (UTC)": frame["start"].dt.strftime("%Y-%m-%d %H:%M"),
            "made at (UTC)": frame["as_of"].dt.strftime("%Y-%m-%d %H:%M"),
            "status": frame["status"] + frame["fallback"].map({True: " (fallback)", False: ""}),
            "gap": frame["gap"].map(lambda g: "n/a" if pd.isna(g) else f"{g:.2%}"),
            "cost": frame["total_cost"].map(lambda c: f"${c:,.0f}"),
            "verified": frame["verified"].map({True: "yes", False: "NO"}),
            "files": frame["export_path"].fillna("(not published)"),
        }
    )
    console.print(_table(view, f"{len(view)} newest plans"))


@app.command("show")
def show(
    plan_id: Annotated[str, typer.Argument(help="a plan id (see `sageserve plans ls`)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One plan: headline, fleet now → next hour with quota and binding reason, the actions to
    start before the next plan with their reasons, NIW schedule, routing."""
    from flows.operator_view import operator_view
    from flows.planning import load_plan

    cfg = STATE.config()
    with open_warehouse() as con:
        header = run(con, "plans/plan_header", plan_id=plan_id).df()
        if header.empty:
            fail(f"no plan {plan_id!r} in the warehouse (see `sageserve plans ls`)")
        plan = load_plan(con, plan_id)
        view = operator_view(con, cfg, plan, verified=bool(header.iloc[0]["verified"]))
    if as_json:
        emit_json(
            {
                "plan_id": view.plan_id,
                "title": view.title,
                "headline": dict(view.headline),
                "fleet": view.fleet.to_dict(orient="records"),
                "actions": view.actions.to_dict(orient="records"),
                "niw": view.niw.to_dict(orient="records"),
                "routing": view.routing.to_dict(orient="records"),
                "versus": view.versus.to_dict(orient="records"),
                "notes": view.notes,
                "export_path": header.iloc[0]["export_path"],
            }
        )
        return
    console.print(f"[bold]{view.title}[/]")
    for label, value in view.headline:
        console.print(f"  [bold]{label}[/]: {value}", highlight=False)
    actions = view.actions
    if actions.empty:
        console.print("next hour's actions: none (keep the fleet)")
    else:
        console.print(_table(actions, "next hour's actions (start before the next plan)"))
    console.print(_table(view.fleet, "fleet: VMs now → next hour"))
    if not view.versus.empty:
        console.print(_table(view.versus, "demand in the last hour vs its forecast"))
    if not view.niw.empty:
        console.print(_table(view.niw.head(6), "NIW schedule (first 6 h)"))
    for note in view.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(f"files: {header.iloc[0]['export_path'] or '(not published)'}")
