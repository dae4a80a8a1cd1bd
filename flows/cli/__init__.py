"""The `sageserve` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli import (
    config_cmd,
    data,
    demo,
    evaluate_cmd,
    forecast_cmd,
    metrics_cmd,
    plan_cmd,
    plans_cmd,
    requests_cmd,
    synth_cmd,
)
from flows.cli.common import CliSettings, setup_logging

app = typer.Typer(
    name="sageserve",
    help="SageServe capacity planner: ingest request logs, forecast, plan, publish.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(envvar="SAGESERVE_CONFIG", help="fleet YAML (default configs/default.yaml)"),
    ] = None,
    warehouse: Annotated[
        Path | None,
        typer.Option(envvar="SAGESERVE_WAREHOUSE", help="DuckDB file (default from config)"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    ctx.obj = CliSettings(config, warehouse, verbose)
    setup_logging(verbose)


app.command("synth")(synth_cmd.synth)
app.command("synth-servegen")(synth_cmd.synth_servegen)
app.command("ingest")(data.ingest)
app.command("status")(data.status)
app.command("refresh-marts")(data.refresh_marts)
app.command("summary")(data.summary)
app.command("backtest")(forecast_cmd.backtest)
app.command("forecast")(forecast_cmd.forecast)
app.command("characterize")(forecast_cmd.characterize)
app.command("plan")(plan_cmd.plan)
app.command("explain")(plan_cmd.explain)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("evaluate-requests")(requests_cmd.evaluate_requests)
app.command("demo")(demo.demo)
app.command("metrics")(metrics_cmd.metrics)
app.add_typer(config_cmd.app, name="config")
app.add_typer(plans_cmd.app, name="plans")
