"""`sageserve plans apply`: the executor target comes from the config (URL, timeout, retries,
auth header from an environment variable), every region is delivered and reported, what was
accepted is recorded for the next plan, `--dry-run` sends nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.planning import store_plan
from flows.warehouse.connection import connect
from planner.config import ConfigError, load_config
from planner.ilp.data import state_from_config
from planner.ilp.planner import make_plan
from planner.ilp.solve import SolverSettings
from planner.ilp.verify import Verification
from tests.planner.ilp_fixtures import tiny_config, tiny_data
from tests.planner.test_executors import Target

runner = CliRunner()


def _setup(
    tmp_path: Path, executor: dict[str, Any], verified: bool = True
) -> tuple[list[str], str]:
    cfg = tiny_config()
    data = cfg.model_dump(mode="json")
    data["executor"] = executor
    data["paths"] = {"warehouse": str(tmp_path / "wh.duckdb"), "outputs": str(tmp_path / "out")}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    plan, check = make_plan(tiny_data(cfg, [(1, "a", "IW-F", 150.0)]), SolverSettings(20, 0.0))
    with connect(tmp_path / "wh.duckdb") as con:
        failed = Verification(violations=["a hand-made violation"], warnings=[])
        store_plan(con, plan, check if verified else failed, state_from_config(cfg))
    return ["--config", str(path)], plan.plan_id


def _applied(tmp_path: Path) -> list[tuple[str, str]]:
    with connect(tmp_path / "wh.duckdb", read_only=True) as con:
        return con.execute(
            "SELECT plan_id, region FROM plan_applications ORDER BY region"
        ).fetchall()


def test_every_region_is_delivered_and_reported_with_the_auth_header_from_the_env(
    tmp_path: Path,
) -> None:
    with Target([422, 200]) as target:
        executor = {"url": target.url, "retries": 1, "backoff_s": 0.01, "auth_env": "OPS_TOKEN"}
        cfg, plan_id = _setup(tmp_path, executor)
        result = runner.invoke(
            app, [*cfg, "plans", "apply", plan_id, "--json"], env={"OPS_TOKEN": "Bearer s3cret"}
        )
    assert result.exit_code == 1, result.stdout
    report = json.loads(result.stdout)
    outcomes = {r["region"]: r["outcome"] for r in report["regions"]}
    assert outcomes == {"a": "failed", "b": "accepted"}
    assert "HTTP 422" in report["regions"][0]["error"]
    assert "1 of 2 regions not delivered" in result.stderr
    assert target.seen == [f"{plan_id}:a", f"{plan_id}:b"]  # a refused (no retry), b tried
    assert {h["Authorization"] for h in target.headers} == {"Bearer s3cret"}
    assert _applied(tmp_path) == [(plan_id, "b")]  # only what the target accepted


def test_dry_run_sends_nothing_and_records_nothing(tmp_path: Path) -> None:
    with Target([]) as target:
        cfg, plan_id = _setup(tmp_path, {"url": target.url})
        result = runner.invoke(app, [*cfg, "plans", "apply", plan_id, "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    assert {r["outcome"] for r in json.loads(result.stdout)["regions"]} == {"dry run"}
    assert target.seen == []
    assert _applied(tmp_path) == []


def test_retries_come_from_the_config_and_happen_once(tmp_path: Path) -> None:
    with Target([503] * 10) as target:
        cfg, plan_id = _setup(tmp_path, {"url": target.url, "retries": 2, "backoff_s": 0.01})
        result = runner.invoke(app, [*cfg, "plans", "apply", plan_id])
    assert result.exit_code == 1
    assert len(target.seen) == 6  # 3 attempts per region, both regions, no outer retries


def test_a_missing_auth_variable_or_unknown_plan_is_a_clear_error(tmp_path: Path) -> None:
    cfg, plan_id = _setup(tmp_path, {"url": "http://127.0.0.1:9/x", "auth_env": "NOPE_TOKEN"})
    result = runner.invoke(app, [*cfg, "plans", "apply", plan_id], env={"NOPE_TOKEN": ""})
    assert result.exit_code == 1
    assert "executor.auth_env names NOPE_TOKEN, which is not set" in result.stderr
    result = runner.invoke(app, [*cfg, "plans", "apply", "plan-nope"])
    assert result.exit_code == 1 and "no plan 'plan-nope'" in result.stderr


def test_a_plan_that_failed_verification_is_not_applied(tmp_path: Path) -> None:
    cfg, plan_id = _setup(tmp_path, {"url": "http://127.0.0.1:9/x"}, verified=False)
    result = runner.invoke(app, [*cfg, "plans", "apply", plan_id])
    assert result.exit_code == 1 and "failed verification; it is not applied" in result.stderr
    assert _applied(tmp_path) == []


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ({"url": "ftp://x"}, "executor.url: must match"),
        ({"auth_token": "s3cret"}, "executor.auth_token: unknown key"),
        ({"timeout_s": 0}, "executor.timeout_s: must be > 0"),
    ],
)
def test_the_executor_section_is_checked_at_load(
    tmp_path: Path, executor: dict[str, Any], expected: str
) -> None:
    data = tiny_config().model_dump(mode="json")
    data["executor"] = executor
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
