"""`sageserve evaluate-requests --scenario routing` on a small ServeGen-derived warehouse."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from planner.config import load_config
from planner.workload.servegen import ServeGenSpec, load_source, synthesize_servegen

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def servegen_warehouse(
    warehouse: duckdb.DuckDBPyConnection, shared_data: Path, tmp_path: Path
) -> Path:
    cfg = load_config(ROOT / "configs/servegen.yaml")
    clients = load_source(shared_data / "servegen/language/m-mid")
    spec = ServeGenSpec("llama2-70b", 0.0003, 7, date(2024, 6, 3))
    rows = pd.concat(synthesize_servegen(cfg, clients, spec), ignore_index=True)
    rows = rows.sort_values("arrival_time", kind="stable").reset_index(drop=True)
    rows["request_id"] = [f"sg-{i}" for i in range(len(rows))]
    rows["arrival_time"] = rows["arrival_time"].dt.tz_convert("UTC").dt.tz_localize(None)
    warehouse.register("sg", rows)
    warehouse.execute(
        "INSERT INTO requests SELECT request_id, arrival_time, region, model, tier, "
        "input_tokens, output_tokens, tenant, NULL, NULL, 1 FROM sg"
    )
    warehouse.close()
    return tmp_path / "wh.duckdb"


@pytest.mark.slow
def test_routing_scenario_json(servegen_warehouse: Path, tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "configs/servegen.yaml").read_text())
    data["paths"]["outputs"] = str(tmp_path / "out")
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(data))
    args = [
        "--config",
        str(cfg_path),
        "--warehouse",
        str(servegen_warehouse),
        "evaluate-requests",
        "--scenario",
        "routing",
        "--requests",
        "400",
        "--windows",
        "2",
        "--train-requests",
        "300",
        "--predictor-rows",
        "20000",
        "--search-rounds",
        "2",
        "--search-population",
        "4",
        "--json",
    ]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["scenario"] == "routing"
    names = [p["name"] for p in out["policies"]]
    assert names == ["round-robin", "jsq", "least-tokens", "heuristic", "learned"]
    for p in out["policies"]:
        assert 0 < p["ttft_p95_s"] <= p["e2e_p95_s"]
        assert p["e2e_mean_s"] > 0
    assert out["instances"] == 8 and out["requests"] == 800
    assert len(out["windows"]) == 2
    assert out["windows"][0]["window"][1] < out["windows"][1]["window"][0]  # consecutive
    for p in out["policies"]:  # the headline figures are the windows' means
        per = [next(q for q in w["policies"] if q["name"] == p["name"]) for w in out["windows"]]
        assert p["e2e_mean_s"] == pytest.approx(sum(q["e2e_mean_s"] for q in per) / 2)
    assert out["learned_vs"]["heuristic"]["windows"] == 2
    # no router beats every request alone on an idle instance
    bounds = out["bounds"]
    assert 0 < bounds["no_contention_e2e_mean_s"] <= min(p["e2e_mean_s"] for p in out["policies"])
    assert bounds["no_contention_ttft_mean_s"] <= bounds["round_robin_ttft_mean_s"]
    assert out["predictor"]["test_rows"] == 800  # scored on the evaluated rows only
    artifact = Path(out["learned"]["artifact"])
    assert artifact.exists()
    # second run loads the saved policy by name (same training hash): same figures
    again = json.loads(runner.invoke(app, args).stdout)
    assert again["policies"] == out["policies"]


def test_unknown_scenario_is_a_clear_error() -> None:
    res = runner.invoke(app, ["evaluate-requests", "--scenario", "nope"])
    assert res.exit_code == 2
    assert "unknown 'nope'" in res.output


def test_learned_router_compared_per_window() -> None:
    from flows.routing import PolicyResult, compare

    def w(rr: float, h: float, learned: float) -> list[PolicyResult]:
        return [
            PolicyResult(n, e, 0, 0, 0, 0)
            for n, e in (("round-robin", rr), ("heuristic", h), ("learned", learned))
        ]

    c = compare([w(10, 8, 7.6), w(10, 8, 8.4), w(20, 10, 9.0)])
    assert c["heuristic"]["per_window"] == pytest.approx([-0.05, 0.05, -0.1])
    assert c["heuristic"]["mean_rel_diff"] == pytest.approx(-0.1 / 3)
    assert c["heuristic"]["std_rel_diff"] == pytest.approx(0.0763762616, rel=1e-6)
    assert c["heuristic"]["wins"] == 2 and c["round-robin"]["wins"] == 3
    assert c["best_heuristic"] == "heuristic"
