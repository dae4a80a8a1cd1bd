"""`sageserve evaluate-requests`: the scenario registry and the fairness scenario's shape."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_unknown_scenario_is_named() -> None:
    result = runner.invoke(app, ["evaluate-requests", "--scenario", "nope"])
    assert result.exit_code != 0
    assert "nope" in result.output + str(result.stderr_bytes or b"")


@pytest.mark.slow
def test_fairness_scenario_json() -> None:
    result = runner.invoke(app, ["evaluate-requests", "--scenario", "fairness", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["scenario"] == "fairness"
    by = {p["name"]: p for p in out["policies"]}
    assert set(by) == {"no_flood", "fcfs", "vtc", "fairserve"}
    for p in by.values():
        assert {"jain_index", "well_behaved_iwf_sla", "flood_throttled_share"} <= set(p)
    # only the throttling policy turns flood requests away; the flood hurts FCFS's tenants
    assert by["fcfs"]["flood_throttled_share"] == 0 and by["vtc"]["flood_throttled_share"] == 0
    assert by["fairserve"]["flood_throttled_share"] > 0
    assert by["fcfs"]["well_behaved_iwf_sla"] < by["no_flood"]["well_behaved_iwf_sla"]
