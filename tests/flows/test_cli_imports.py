"""Every `sageserve` command pays for what `flows.cli` imports at start-up. Ingest regressed by
~3 s (bench/ingest.py, issue 12) when the forecasting and planning commands imported sktime and
SCIP at module level; those stay inside the commands that use them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("sktime", "statsforecast", "pyscipopt", "matplotlib", "prefect", "great_expectations")


def test_the_command_line_does_not_import_the_forecasting_or_planning_stack() -> None:
    code = (
        "import json, sys\n"
        "import flows.cli\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []
    # the probe sees an import when there is one
    seen = subprocess.run(
        [sys.executable, "-c", code.replace("import flows.cli", "import flows.forecasting")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "sktime" in json.loads(seen)
