"""`sageserve plans ...`: stored plans for ops. `apply` delivers a stored plan's first hour to
the config's executor target (every region tried and reported; `--dry-run` shows the changes
against what each region last accepted and sends nothing)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flows.cli.common import STATE, console, emit_json, fail, open_warehouse
from flows.execute import apply_plan, target_settings
from flows.planning import load_plan, plan_exists
from planner.executors import AppliedState, WebhookError

app = typer.Typer(help="Stored plans: apply one to the executor target.", no_args_is_help=True)


@app.command("apply")
def apply(
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
    cfg = STATE.config()
    root = folder or Path(cfg.paths.outputs) / "executor"
    with open_warehouse() as con:
        if not plan_exists(con, plan_id):
            fail(f"no plan {plan_id!r} in the warehouse")
        verified = con.execute("SELECT verified FROM plans WHERE plan_id = ?", [plan_id]).fetchone()
        if not verified or not verified[0]:
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
    out = Console(file=sys.stdout, soft_wrap=True)
    where = report["target"] or "documents only (no executor.url)"
    console.print(f"plan {report['plan_id']} hour {report['hour']} → {where}")
    table = Table("region", "outcome", "changes", title="per region")
    for row in report["regions"]:
        detail = row["error"] or ("; ".join(row["changes"]) or "no change")
        table.add_row(row["region"], row["outcome"], detail)
    out.print(table)
