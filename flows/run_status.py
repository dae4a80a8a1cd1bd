"""The last hourly run's outcome, kept where dashboards can read it without Prefect's API.

The hourly flow writes ``<outputs>/status/<flow>.json`` (atomically: temp file then rename)
when it finishes, whatever the outcome: when it started and finished, the outcome
(``completed``, ``stopped`` by the data-quality gate, or ``failed``), the error if any, the
plan it published and the data-quality gate's result. ``sageserve metrics`` and the metrics
endpoint read it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from planner.files import write_text_atomic
from planner.utc import aware_utc

OUTCOMES = ("completed", "stopped", "failed")


def status_path(outputs: Path | str, flow: str = "hourly-plan") -> Path:
    return Path(outputs) / "status" / f"{flow}.json"


def record_run(
    outputs: Path | str,
    *,
    flow: str,
    started: datetime,
    outcome: str,
    quality: dict[str, Any] | None = None,
    plan_id: str | None = None,
    error: str | None = None,
    finished: datetime | None = None,
    run_id: str | None = None,
) -> Path:
    """Write the run's status file (mode 0644) and return its path."""
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
    doc = {
        "flow": flow,
        "run_id": run_id,
        "started": aware_utc(started).isoformat(),
        "finished": aware_utc(finished or datetime.now(UTC)).isoformat(),
        "outcome": outcome,
        "error": error,
        "plan_id": plan_id,
        "quality": quality,
    }
    return write_text_atomic(status_path(outputs, flow), json.dumps(doc, indent=1, default=str))


def read_run(outputs: Path | str, flow: str = "hourly-plan") -> dict[str, Any] | None:
    """The last recorded run of ``flow``, or None when it never ran here."""
    path = status_path(outputs, flow)
    if not path.exists():
        return None
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded
