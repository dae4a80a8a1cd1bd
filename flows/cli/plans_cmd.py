"""`sageserve plans`: the stored plans. `ls` lists them, `show ID` shows one the way its
operator page does (the same view, reports/operator.py), `apply ID` delivers a stored plan's
first hour to the config's executor target (every region tried and reported; `--dry-run` shows
the changes against what each region last accepted and sends nothing)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from flows.cli.common import console, emit_json, fail, open_warehouse, settings
from flows.warehouse.sqlfiles import run
from planner.executors import AppliedState, WebhookError

log = logging.getLogger(__name__)

app = typer.Typer(
    name="plans",
    help="Stored plans: list them, show one (what to do next and why), apply one.",
    no_args_is_help=True,
)


def _table(frame: pd.DataFrame, title: str) -> Table:
    table = Table(*map(str, frame.columns), title=title, title_justify="left")
    for row in frame.astype(str).itertuples(index=False):
        table.add_row(*row)
    return table


@app.command("ls")
def ls(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="newest N plans")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The stored plans, newest first: id, hour, status, gap, cost, verified, files."""
    with open_warehouse(ctx, read_only=True) as con:
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
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="a plan id (see `sageserve plans ls`)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One plan: headline, fleet now → next hour with quota and binding reason, the actions to
    start before the next plan with their reasons, NIW schedule, routing."""
    from flows.operator_view import operator_view
    from flows.planning import load_plan

    cfg = settings(ctx).config()
    with open_warehouse(ctx, read_only=True) as con:
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


@app.command("apply")
def apply(
    ctx: typer.Context,
    plan_id: Annotated[str, typer.Argument(help="a stored, verified plan id")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the changes per region, send nothing")
    ] = False,
    folder: Annotated[
        Path | None,
        typer.Option(help="executor folder (default paths.outputs/executor)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Deliver PLAN_ID's first hour to `executor.url` (config) and record what was accepted;
    exit 1 when any region was not delivered (each is named)."""
    from flows.execute import apply_plan, target_settings
    from flows.planning import load_plan

    cfg = settings(ctx).config()
    root = folder or Path(cfg.paths.outputs) / "executor"
    with open_warehouse(ctx) as con:
        header = run(con, "plans/plan_header", plan_id=plan_id).df()
        if header.empty:
            fail(f"no plan {plan_id!r} in the warehouse")
        if not header["verified"].iloc[0]:
            fail(f"plan {plan_id} failed verification; it is not applied")
        plan = load_plan(con, plan_id)
        error: str | None = None
        try:
            state = apply_plan(con, cfg, plan, root, dry_run=dry_run)
        except WebhookError as exc:
            if exc.state is None:
                fail(str(exc))
            state, error = exc.state, str(exc)
    report = _report(state, plan, dry_run, target_settings(cfg).url)
    if as_json:
        emit_json(report)
    else:
        _print(report)
    if error:
        fail(error)


def _report(state: AppliedState, plan: Any, dry_run: bool, url: str | None) -> dict[str, Any]:
    regions = sorted(set(state.regions) | set(state.failed) | _plan_regions(plan))
    rows = []
    for r in regions:
        if r in state.failed:
            outcome = "failed"
        elif dry_run:
            outcome = "dry run"
        else:
            outcome = "accepted" if r in state.regions else "not sent"
        changes = [n for n in state.notes if n.startswith(f"{r}:")]
        rows.append(
            {"region": r, "outcome": outcome, "changes": changes, "error": state.failed.get(r)}
        )
    return {
        "plan_id": state.plan_id,
        "hour": state.hour,
        "target": url,
        "dry_run": dry_run,
        "regions": rows,
    }


def _plan_regions(plan: Any) -> set[str]:
    return set(plan.vms["region"]) | set(plan.routing["source_region"])


def _print(report: dict[str, Any]) -> None:
    where = report["target"] or "documents only (no executor.url)"
    console.print(f"plan {report['plan_id']} hour {report['hour']} → {where}")
    table = Table("region", "outcome", "changes", title="per region")
    for row in report["regions"]:
        detail = row["error"] or ("; ".join(row["changes"]) or "no change")
        table.add_row(row["region"], row["outcome"], detail)
    console.print(table)
