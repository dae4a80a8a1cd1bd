"""The `sageserve` command line: JSON outputs, exit codes, argument errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
HEADER = "request_id,arrival_time,region,model,tier,input_tokens,output_tokens\n"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def wh(tmp_path: Path) -> list[str]:
    return ["--warehouse", str(tmp_path / "wh.duckdb")]


def test_ingest_json_reports_the_four_numbers(tmp_path: Path, wh: list[str]) -> None:
    good = tmp_path / "good.csv"
    good.write_text(
        HEADER
        + "x1,2024-06-03T10:00:00Z,us-east,llama2-70b,IW-F,10,2\n"
        + "x2,2024-06-03T10:01:00Z,us-east,llama2-70b,IW-F,-1,2\n"
    )
    code, out, _ = _run(*wh, "ingest", str(good), "--json")
    assert code == 0
    payload = json.loads(out)
    (file,) = payload["files"]
    assert {k: file[k] for k in ("rows_read", "rows_loaded", "rows_quarantined")} == {
        "rows_read": 2,
        "rows_loaded": 1,
        "rows_quarantined": 1,
    }
    assert payload["totals"]["duplicates_skipped"] == 0
    assert payload["marts"]["rows"] > 0

    code, out, _ = _run(*wh, "ingest", str(good), str(tmp_path / "nope.csv"), "--json")
    assert code == 1  # something was rejected whole
    statuses = {f["path"]: f["status"] for f in json.loads(out)["files"]}
    assert statuses == {str(tmp_path / "nope.csv"): "rejected", str(good): "skipped"}

    code, out, _ = _run(*wh, "status", "--json")
    status = json.loads(out)
    assert status["overview"]["requests"] == 1 and status["overview"]["quarantined"] == 1
    assert status["series"][0]["region"] == "us-east"
    code, out, _ = _run(*wh, "summary", "--json")
    assert json.loads(out)[0]["requests"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "x.csv", "--format", "bogus"], "--format: expected native, azure2023"),
        (["ingest", "x.csv", "--format", "azure2023"], "--region is required"),
        (
            ["ingest", "x.csv", "--format", "azure2023", "--region", "mars", "--model", "m"],
            "--region: unknown id 'mars'",
        ),
        (
            [
                "ingest",
                "x.csv",
                "--format",
                "mooncake",
                "--region",
                "us-east",
                "--model",
                "llama2-70b",
                "--tier",
                "IW-F",
            ],
            "--start is required",
        ),
        (["ingest", "x.csv", "--region", "us-east"], "apply to --format azure2023|mooncake"),
        (["synth-servegen", "--source", "/nonexistent", "--out", "o"], "no chunk-*-trace.csv"),
    ],
)
def test_argument_errors_exit_2_with_a_message(
    wh: list[str], args: list[str], message: str
) -> None:
    code, _, err = _run(*wh, *args)
    assert code == 2
    assert message in err


def test_bad_config_file_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text(
        (Path(__file__).parents[2] / "configs" / "default.yaml")
        .read_text()
        .replace("gpus_per_vm: 8", "gpus_per_vm: 0", 1)
    )
    code, _, err = _run("--config", str(bad), "config", "validate")
    assert code == 2
    assert "vm_types[0].gpus_per_vm: must be ≥ 1, got 0" in err
    code, _, err = _run("--config", str(tmp_path / "none.yaml"), "config", "validate")
    assert code == 2 and "file not found" in err


def test_synth_json(tmp_path: Path) -> None:
    code, out, _ = _run(
        "synth", "--days", "1", "--requests-per-day", "3000", "--out", str(tmp_path), "--json"
    )
    assert code == 0
    payload = json.loads(out)
    assert len(payload["files"]) == 1 and 2500 < payload["rows"] < 3500
    assert Path(payload["files"][0]).name == "requests-2024-06-03.parquet"


def test_synth_servegen_json(tmp_path: Path, shared_data: Path) -> None:
    source = shared_data / "servegen" / "language" / "m-large"
    code, out, _ = _run(
        "synth-servegen",
        "--source",
        str(source),
        "--scale",
        "0.0005",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, out
    payload = json.loads(out)
    assert payload["rows"] > 50_000 and 10 <= len(payload["files"]) <= 12


def test_config_commands_json() -> None:
    code, out, _ = _run("config", "validate", "--json")
    assert code == 0 and json.loads(out)["models"][0] == "llama2-70b"
    code, out, _ = _run("config", "throughput", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 4 * 2 * 3
    assert all(r["input"] == r["config_input"] for r in rows)
