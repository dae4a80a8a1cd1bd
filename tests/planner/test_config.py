"""The fleet configuration: the default loads, and every kind of bad file names its key path,
bad value and line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.config import DEFAULT_CONFIG, ConfigError, config_hash, load_config
from planner.config.loader import format_loc


def _default() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


def test_default_config_mirrors_the_sageserve_evaluation() -> None:
    cfg = load_config()
    assert cfg.region_ids == ["us-east", "us-central", "us-west"]
    assert [m.name for m in cfg.models] == [
        "Llama2-70B",
        "Bloom-176B",
        "Llama3.1-8B",
        "Llama3.2-3B",
    ]
    assert [v.gpu for v in cfg.vm_types] == ["A100-80GB", "H100-80GB"]
    assert cfg.tier_ids == ["IW-F", "IW-N", "NIW"]
    assert cfg.tier("NIW").spot_allowed and cfg.tier("NIW").deadline_h


def test_issue_example_message_for_zero_tensor_parallel(tmp_path: Path) -> None:
    data = _default()
    data["models"][2]["vm_types"]["h100x8"]["tensor_parallel"] = 0
    problems = _problems(_write(tmp_path, data))
    assert len(problems) == 1
    assert problems[0].startswith("models[2].vm_types.h100x8.tensor_parallel: must be ≥ 1, got 0")
    assert "(line " in problems[0]


def test_line_number_points_at_the_bad_key(tmp_path: Path) -> None:
    data = _default()
    data["vm_types"][1]["price_per_hour"] = -3
    path = _write(tmp_path, data)
    (problem,) = _problems(path)
    line = int(problem.rsplit("(line ", 1)[1].rstrip(")"))
    assert "price_per_hour" in path.read_text().splitlines()[line - 1]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["regions"][0].pop("timezone"), "regions[0].timezone: required key missing"),
        (
            lambda d: d["tiers"][0].update(headroom_pct=5),
            "tiers[0].headroom_pct: unknown key",
        ),
        (
            lambda d: d["vm_types"][0].update(gpus_per_vm="eight"),
            "vm_types[0].gpus_per_vm: must be an integer, got 'eight'",
        ),
        (
            lambda d: d["fleet"][0].update(vm_type="tpu-v5"),
            "fleet[0].vm_type: unknown VM type, got 'tpu-v5'",
        ),
        (
            lambda d: d["regions"][1]["latency_ms"].pop("us-west"),
            "regions[1].latency_ms: latency to region 'us-west' missing",
        ),
        (
            lambda d: d["regions"][0].update(timezone="Mars/Olympus"),
            "regions[0].timezone: unknown IANA time zone, got 'Mars/Olympus'",
        ),
        (
            lambda d: d["fleet"][2].update(running=99),
            "fleet[2].running: must be ≤ quota (30), got 99",
        ),
        (
            lambda d: d["models"][0]["vm_types"]["a100x8"].update(tensor_parallel=1),
            "models[0].vm_types.a100x8.tensor_parallel: weights shard 140 GB exceeds 80 GB",
        ),
        (
            lambda d: d["models"][3]["vm_types"]["a100x8"].update(instances_per_vm=8),
            "models[3].vm_types.a100x8.instances_per_vm: tensor_parallel × instances_per_vm = 16",
        ),
        (
            lambda d: d["models"][1]["vm_types"]["a100x8"]["throughput"].pop("NIW"),
            "models[1].vm_types.a100x8.throughput: tier 'NIW' missing",
        ),
        (
            lambda d: d["tiers"][2].pop("deadline_h"),
            "tiers[2].deadline_h: required for a deferrable",
        ),
        (
            lambda d: d["fleet"][0]["instances"].update({"llama2-70b": 40}),
            "fleet[0].instances: instances need",
        ),
        (lambda d: d["models"].append(dict(d["models"][0])), "models[4].id: duplicate id"),
    ],
)
def test_bad_values_name_their_key_path(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = _default()
    mutate(data)
    problems = _problems(_write(tmp_path, data))
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    data = _default()
    data["vm_types"][0]["gpus_per_vm"] = 0
    data["tiers"][1]["headroom"] = 1.5
    problems = _problems(_write(tmp_path, data))
    assert {p.split(":")[0] for p in problems} == {"vm_types[0].gpus_per_vm", "tiers[1].headroom"}


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    assert _problems(tmp_path / "nope.yaml") == ["file not found"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - id: x\n    name: [unclosed\n")
    (problem,) = _problems(bad)
    assert problem.startswith("YAML syntax error (line ")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: caf\xe9\n")
    assert _problems(latin) == ["not UTF-8 (byte 9, line 1)"]
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert _problems(listing) == ["the file must hold a mapping at the top level"]


def test_config_hash_follows_content_not_formatting(tmp_path: Path) -> None:
    data = _default()
    same = load_config(_write(tmp_path, data))
    assert config_hash(same) == config_hash(load_config())
    data["vm_types"][0]["price_per_hour"] = 33.0
    changed = load_config(_write(tmp_path, data))
    assert config_hash(changed) != config_hash(load_config())


def test_an_lt_f_section_at_its_defaults_keeps_the_hash_of_configs_before_it(
    tmp_path: Path,
) -> None:
    """Configs written before ``lt_f`` existed keep their hash (and their cached plans): the
    section at its defaults, written out or left out, hashes as the content without it (and
    without ``planner.work_limit``, unset, which did not exist then either); a dial off its
    default changes the hash."""
    data = _default()
    written = load_config(_write(tmp_path, data))
    content = written.model_dump(mode="json")
    del content["lt_f"]
    del content["planner"]["work_limit"]
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    before = hashlib.sha256(canonical).hexdigest()[:16]
    left_out = load_config(_write(tmp_path, {k: v for k, v in data.items() if k != "lt_f"}))
    assert config_hash(written) == config_hash(left_out) == before
    for dial, value in (("release_min", 10), ("executor", True), ("niw_cap", 0.5)):
        changed = load_config(_write(tmp_path, {**data, "lt_f": {**data["lt_f"], dial: value}}))
        assert config_hash(changed) != before, dial


def test_format_loc() -> None:
    assert format_loc(("models", 2, "vm_types", "h100x8", "tensor_parallel")) == (
        "models[2].vm_types.h100x8.tensor_parallel"
    )
    assert format_loc(()) == "<top level>"


def test_the_hourly_schedule_runs_plan_lead_minutes_before_the_hour() -> None:
    """One plan lead: prefect.yaml's hourly cron is set at minute 60 - planner.plan_lead_min."""
    deployments = yaml.safe_load((DEFAULT_CONFIG.parents[1] / "prefect.yaml").read_text())
    hourly = next(d for d in deployments["deployments"] if d["name"] == "hourly-plan")
    minute = int(hourly["schedules"][0]["cron"].split()[0])
    assert minute == 60 - load_config().planner.plan_lead_min


def test_the_full_scale_servegen_config_differs_from_the_01_one_only_in_its_fleet() -> None:
    """configs/servegen-1.0.yaml (the headline) is configs/servegen.yaml with the fleet for ten
    times the volume: models, tiers, forecasting and planner settings cannot drift apart."""
    configs = DEFAULT_CONFIG.parent
    small = load_config(configs / "servegen.yaml").model_dump()
    full = load_config(configs / "servegen-1.0.yaml").model_dump()
    for data in (small, full):
        for key in ("name", "fleet", "paths"):
            data.pop(key)
    assert full == small
    fleet = {(f.region, f.vm_type): f for f in load_config(configs / "servegen-1.0.yaml").fleet}
    for f in load_config(configs / "servegen.yaml").fleet:
        assert fleet[(f.region, f.vm_type)].quota >= 10 * f.quota
