"""`sageserve evaluate-requests --scenario NAME`: request-level scenarios on the instance model.

``SCENARIOS`` maps a scenario name to a function of the fleet config returning the figures
(``{"scenario": name, "policies": [...], ...}``); other scenarios register there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from flows.cli.common import STATE, emit_json, fail
from flows.fairness import fairness_scenario
from planner.config.models import FleetConfig

SCENARIOS: dict[str, Callable[[FleetConfig], dict[str, Any]]] = {
    "fairness": fairness_scenario,
}


def evaluate_requests(
    scenario: Annotated[str, typer.Option(help=f"one of {', '.join(sorted(SCENARIOS))}")],
    as_json: Annotated[bool, typer.Option("--json", help="figures as JSON")] = False,
) -> None:
    """Replay a request-level scenario through the iteration-level instance model."""
    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    result = SCENARIOS[scenario](STATE.config())
    if as_json:
        emit_json(result)
        return
    head = {k: v for k, v in result.items() if k != "policies"}
    typer.echo("  ".join(f"{k}={v}" for k, v in head.items()))
    rows = result["policies"]
    cols = list(rows[0])
    typer.echo("  ".join(f"{c:>26}" for c in cols))
    for r in rows:
        typer.echo("  ".join(f"{r[c]!s:>26}" for c in cols))
