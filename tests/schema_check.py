"""Every desired-state document the executor writes, checked against the published schema
(schemas/desired_state.schema.json) and for its file mode (readable by ops tooling: 0644)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "desired_state.schema.json"


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def problems(doc: dict[str, Any]) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator().iter_errors(doc)
    ]


def check_executor_folder(folder: Path) -> int:
    """Validate every ``desired/*.json`` and ``applied/*.json`` under ``folder``; returns how
    many documents were checked. Fails naming the file and every problem."""
    checked = 0
    for path in sorted([*folder.rglob("desired/*.json"), *folder.rglob("applied/*.json")]):
        errors = problems(json.loads(path.read_text()))
        assert not errors, f"{path}: " + "; ".join(errors)
        mode = path.stat().st_mode & 0o777
        assert mode == 0o644, f"{path}: mode {mode:o}, expected 644"
        checked += 1
    return checked
