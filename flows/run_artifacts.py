"""What an hourly run shows in the Prefect UI: its artifacts (the Data Docs link, the gate's
stop, the operator summary, the first hour's instances, per-tenant traffic, links to the
operator page and the plan files). Called by ``flows.hourly_plan`` inside a flow run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)

from planner.sim.fairness import FairServe
from reports.pages import page_url


def link_data_docs(quality: dict[str, Any], root: Path) -> None:
    if quality["docs_index"]:
        create_link_artifact(
            page_url(Path(quality["docs_index"]), root),
            "Data Docs (Great Expectations)",
            key="data-docs",
            description=f"data quality {'passed' if quality['success'] else 'FAILED'}: "
            f"{quality['checked']} expectations on {quality['rows']:,} requests",
        )


def gate_stopped(quality: dict[str, Any]) -> None:
    create_markdown_artifact(
        "# Planning stopped by the data-quality gate\n\n"
        + "\n".join(f"- {f}" for f in quality["failed"]),
        key="hourly-plan",
    )


def publish_run(
    planned: dict[str, Any],
    report: dict[str, Any],
    quality: dict[str, Any],
    on_quality_failure: str,
    applied: dict[str, Any],
    root: Path,
) -> str:
    """The artifacts of a completed run; returns the operator page's URL."""
    from reports.operator import run_markdown

    plan, view = planned["plan"], report["view"]
    page = page_url(Path(report["path"]), root)
    headline = view.headline_text()
    create_markdown_artifact(
        run_markdown(view, page, quality, on_quality_failure, applied),
        key="hourly-plan",
        description=headline,
    )
    first = plan.instances[plan.instances["hour"] == plan.start]
    create_table_artifact(
        first[["region", "model", "vm_type", "on_demand", "spot"]].to_dict(orient="records"),
        key="plan-instances",
        description=f"instances in {plan.start:%Y-%m-%d %H:%M} UTC of plan {plan.plan_id}: "
        + headline,
    )
    _tenant_traffic(report["tenants"], plan.start)
    create_link_artifact(page, "operator page", key="plan-report", description=headline)
    if planned["export_path"]:
        create_link_artifact(
            page_url(Path(planned["export_path"]), root) + "/",
            "plan files",
            key="plan-files",
            description=f"Parquet, CSV (with COLUMNS.md) and JSON of plan {plan.plan_id}",
        )
    return page


def _tenant_traffic(tenants: Any, start: Any) -> None:
    if len(tenants):
        create_table_artifact(
            tenants.astype({"exceeded": bool}).to_dict(orient="records"),
            key="tenant-traffic",
            description=f"per-tenant traffic of the hour before {start:%Y-%m-%d %H:%M} UTC; "
            f"{int(tenants['exceeded'].sum())} tenants above {FairServe.headroom:g}× their usual "
            "share: " + ", ".join(tenants.loc[tenants["exceeded"], "tenant"].astype(str)),
        )
    else:
        create_markdown_artifact(
            f"No tenant-labelled requests in the hour before {start:%Y-%m-%d %H:%M} UTC.",
            key="tenant-traffic",
            description="per-tenant traffic of the last hour: none labelled",
        )
