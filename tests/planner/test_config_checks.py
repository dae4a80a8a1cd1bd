"""Values that used to validate and break later (plan, status, ingest) are refused at load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.config import DEFAULT_CONFIG, ConfigError, load_config


def _default() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert isinstance(data, dict)
    return data


def _problems(tmp_path: Path, data: dict[str, Any]) -> list[str]:
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value.problems


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["warehouse"].update(memory_limit="lots"),
            "warehouse.memory_limit: must be a size such as 512MB",
        ),
        (
            lambda d: d["warehouse"].update(min_arrival="yesterday"),
            "warehouse.min_arrival: must be an ISO-8601 time",
        ),
        (
            lambda d: d["models"][0]["vm_types"]["a100x8"]["throughput"]["IW-F"].update(
                input=float("inf")
            ),
            "models[0].vm_types.a100x8.throughput.IW-F.input: must be a finite number",
        ),
        (
            lambda d: d["planner"].update(time_limit_s=float("nan")),
            "planner.time_limit_s: must be a finite number",
        ),
        (
            lambda d: d["planner"]["unmet_penalty"].update({"IW-F": -5}),
            "planner.unmet_penalty.IW-F: must be > 0",
        ),
        (lambda d: d["models"][0].update(regions=[]), "models[0].regions: must have at least 1"),
        (
            lambda d: d.setdefault("forecast", {}).update(candidates=[]),
            "forecast.candidates: must have at least 1",
        ),
    ],
)
def test_values_that_broke_later_are_refused_at_load(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    data = _default()
    mutate(data)
    problems = _problems(tmp_path, data)
    assert any(p.startswith(expected) for p in problems), problems


def test_a_duplicated_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    text = DEFAULT_CONFIG.read_text().replace(
        "  mip_gap: 0.005\n", "  mip_gap: 0.005\n  mip_gap: 0.5\n", 1
    )
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    line = text.splitlines().index("  mip_gap: 0.005") + 1
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [
        f"planner.mip_gap: key given twice (lines {line} and {line + 1})"
    ]


def test_sizes_and_times_in_their_usual_spellings_load(tmp_path: Path) -> None:
    for size in ("512MB", "1gb", "2.5GiB"):
        data = _default()
        data["warehouse"].update(memory_limit=size, min_arrival="2001-02-03T04:05:06+00:00")
        path = tmp_path / "ok.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        assert load_config(path).warehouse.memory_limit == size


def test_known_forecasters_are_the_registry() -> None:
    """The config check's forecaster names are the registry's (config cannot import it)."""
    from planner.config.semantics import KNOWN_FORECASTERS
    from planner.forecast.models import REGISTRY

    assert set(KNOWN_FORECASTERS) == set(REGISTRY)
