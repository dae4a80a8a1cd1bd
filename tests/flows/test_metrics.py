"""Metrics: the collector over a hand-made snapshot (fast), the Grafana dashboard against the
exported names, and the run-status file the hourly flow writes."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from flows.metrics import METRIC_NAMES, Snapshot, build_registry
from flows.metrics.snapshot import WarehouseView
from flows.run_status import read_run, record_run

DASHBOARD = Path(__file__).resolve().parents[2] / "flows" / "metrics" / "grafana-dashboard.json"
NOW = datetime(2024, 6, 11, 1, 30, tzinfo=UTC)


def view() -> WarehouseView:
    plan = {
        "plan_id": "p1",
        "status": "gaplimit",
        "start": pd.Timestamp("2024-06-11 01:00"),
        "as_of": pd.Timestamp("2024-06-11 00:05"),
        "created_at": pd.Timestamp("2024-06-11 00:06"),
        "gap": 0.0042,
        "objective": 1234.5,
        "dual_bound": 1229.3,
        "solve_seconds": 8.5,
        "fallback": False,
        "verified": True,
        "bound_source": "root relaxation",
    }
    return WarehouseView(
        plan=plan,
        planned_vms=pd.DataFrame(
            {"region": ["a", "b"], "vm_type": ["g1", "g1"], "on_demand": [3, 2], "spot": [1, 0]}
        ),
        running_vms=pd.DataFrame(
            {"region": ["a"], "vm_type": ["g1"], "on_demand": [2], "spot": [0]}
        ),
        planned_instances=pd.DataFrame(
            {"region": ["a"], "model": ["m"], "vm_type": ["g1"], "on_demand": [4.0], "spot": [1.0]}
        ),
        costs=pd.DataFrame(
            {"component": ["on_demand", "spot"], "horizon": [1000.0, 50.0], "first_hour": [40, 2]}
        ),
        unmet=pd.DataFrame({"tier": ["iw-f"], "tokens_per_s": [12.5]}),
        demand_hour=pd.Timestamp("2024-06-11 00:00"),
        demand=pd.DataFrame(
            {
                "region": ["a"],
                "model": ["m"],
                "tier": ["iw-f"],
                "actual": [100.0],
                "forecast_point": [90.0],
                "forecast_p50": [91.0],
                "forecast_p95": [130.0],
            }
        ),
        newest={"requests": pd.Timestamp("2024-06-11 00:59:30"), "forecasts": None},
    )


class Fixed:
    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def load(self, now: datetime | None = None) -> Snapshot:
        return self.snap


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_exposition_parses_and_carries_the_snapshot() -> None:
    run = {
        "flow": "hourly-plan",
        "finished": (NOW - timedelta(minutes=20)).isoformat(),
        "outcome": "completed",
        "quality": {"success": False, "checked": 10, "failed": ["x: y"], "hour": "2024-06-11"},
    }
    snap = Snapshot(NOW, view(), run, {"warehouse": True, "run_status": True})
    before = set(REGISTRY._names_to_collectors)
    text = generate_latest(build_registry(Fixed(snap))).decode()
    assert set(REGISTRY._names_to_collectors) == before  # the global registry is untouched
    families = {f.name: f for f in text_string_to_metric_families(text)}
    gaps = [n for n, f in families.items() if f.type == "gauge" and n.endswith("gap")]
    assert gaps == ["sageserve_plan_gap"]
    got = samples(text)
    assert got[("sageserve_plan_gap", (("bound_source", "root relaxation"),))] == pytest.approx(
        0.0042
    )
    key = (("kind", "on_demand"), ("region", "a"), ("vm_type", "g1"))
    assert got[("sageserve_planned_vms", key)] == 3
    assert got[("sageserve_running_vms", key)] == 2
    assert (
        got[("sageserve_plan_cost_dollars", (("component", "spot"), ("window", "horizon")))] == 50
    )
    fc = (("estimate", "p95"), ("for_hour", "last_measured"), ("model", "m"), ("region", "a"))
    assert got[("sageserve_demand_forecast_tokens_per_second", (*fc, ("tier", "iw-f")))] == 130
    assert got[("sageserve_last_run_age_seconds", (("flow", "hourly-plan"),))] == 1200
    assert got[("sageserve_quality_gate_success", ())] == 0
    assert got[("sageserve_quality_expectations", (("result", "passed"),))] == 9
    assert got[("sageserve_data_age_seconds", (("stage", "requests"),))] == 30 * 60 + 30
    outcome = {k[1][1][1]: v for k, v in got.items() if k[0] == "sageserve_last_run_outcome"}
    assert outcome == {"completed": 1, "stopped": 0, "failed": 0}
    names = {n for n, _ in got}
    assert names <= {*METRIC_NAMES}
    # the OpenMetrics rendering of the same registry parses too
    om = generate_openmetrics(build_registry(Fixed(snap))).decode()
    assert {f.name for f in parse_om(om)} >= {"sageserve_plan_gap", "sageserve_plan"}


def test_no_plan_and_no_run_still_exposes_what_there_is() -> None:
    snap = Snapshot(NOW, WarehouseView(), None, {"warehouse": False, "run_status": False})
    got = samples(generate_latest(build_registry(Fixed(snap))).decode())
    assert got == {
        ("sageserve_metrics_source_up", (("source", "run_status"),)): 0,
        ("sageserve_metrics_source_up", (("source", "warehouse"),)): 0,
    }


def test_greedy_fallback_has_a_nan_gap_and_no_bound() -> None:
    v = view()
    assert v.plan is not None
    v.plan.update(gap=None, dual_bound=None, fallback=True, bound_source=None)
    snap = Snapshot(NOW, v, None, {"warehouse": True})
    got = samples(generate_latest(build_registry(Fixed(snap))).decode())
    assert math.isnan(got[("sageserve_plan_gap", (("bound_source", "none"),))])
    assert got[("sageserve_plan_fallback", ())] == 1
    v.plan.update(gap=0.01, dual_bound=99.0, fallback=False)  # no manifest to say where from
    got = samples(generate_latest(build_registry(Fixed(snap))).decode())
    assert got[("sageserve_plan_gap", (("bound_source", "unknown"),))] == 0.01


def test_grafana_dashboard_parses_and_uses_only_exported_metrics() -> None:
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\bsageserve_[a-z_]+", e)}
    assert used and used <= set(METRIC_NAMES), used - set(METRIC_NAMES)
    # the headline figures of the issue each have a panel
    for name in (
        "sageserve_planned_vms",
        "sageserve_running_vms",
        "sageserve_plan_gap",
        "sageserve_demand_actual_tokens_per_second",
        "sageserve_demand_forecast_tokens_per_second",
        "sageserve_data_age_seconds",
        "sageserve_quality_gate_success",
        "sageserve_last_run_age_seconds",
    ):
        assert name in used, name


def test_run_status_is_written_atomically_and_readable(tmp_path: Path) -> None:
    path = record_run(
        tmp_path, flow="hourly-plan", started=NOW, outcome="stopped", run_id="r1", error="gate"
    )
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert read_run(tmp_path) == {**json.loads(path.read_text()), "outcome": "stopped"}
    assert [p.name for p in path.parent.iterdir()] == ["hourly-plan.json"]
    with pytest.raises(ValueError, match="outcome must be one of"):
        record_run(tmp_path, flow="hourly-plan", started=NOW, outcome="weird")
    assert read_run(tmp_path / "nowhere") is None


def test_every_metric_is_documented_in_the_readme() -> None:
    readme = (DASHBOARD.parents[2] / "README.md").read_text()
    missing = [n for n in METRIC_NAMES if f"`{n}`" not in readme]
    assert missing == []
