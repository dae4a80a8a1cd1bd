"""The prometheus_client collector: a :class:`Snapshot` per scrape, turned into gauges.

No global state: ``build_registry(source)`` makes a fresh ``CollectorRegistry`` holding one
:class:`SageServeCollector` over ``source`` (anything with ``load() -> Snapshot``). Names
are stable (dashboards and alerts depend on them); ``METRICS`` is the list, with help and
labels, and the README repeats it. Timestamps are Unix seconds (UTC); counts of VMs and
instances are for the plan's first hour; "running" is the fleet the newest plan started
from (what ran when it was made, as the executor last applied it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import pandas as pd
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from flows.metrics.snapshot import Snapshot
from flows.run_status import OUTCOMES


class Spec(NamedTuple):
    name: str
    help: str
    labels: tuple[str, ...] = ()


P = "sageserve_"
SERIES = ("region", "model", "tier")
METRICS: tuple[Spec, ...] = (
    Spec(
        P + "plan",
        "newest published plan (info: id, solver status, start hour)",
        ("plan_id", "status", "start", "bound_source"),
    ),
    Spec(
        P + "plan_gap",
        "relative optimality gap of the newest plan (NaN: no bound)",
        ("bound_source",),
    ),
    Spec(P + "plan_objective_dollars", "objective of the newest plan ($)"),
    Spec(P + "plan_dual_bound_dollars", "dual bound behind the gap ($; NaN: none)"),
    Spec(
        P + "plan_cost_dollars",
        "plan cost per component, over the horizon or its first hour",
        ("component", "window"),
    ),
    Spec(P + "plan_solve_seconds", "solver time of the newest plan"),
    Spec(P + "plan_fallback", "1 when the newest plan is the greedy fallback"),
    Spec(P + "plan_verified", "1 when the newest plan passed verification"),
    Spec(P + "plan_start_timestamp_seconds", "start of the newest plan's first hour"),
    Spec(P + "plan_created_timestamp_seconds", "when the newest plan was made"),
    Spec(
        P + "plan_unmet_tokens_per_second",
        "demand the plan leaves unmet in its first hour",
        ("tier",),
    ),
    Spec(
        P + "planned_vms",
        "VMs the newest plan wants in its first hour",
        ("region", "vm_type", "kind"),
    ),
    Spec(
        P + "running_vms",
        "VMs running when the newest plan was made",
        ("region", "vm_type", "kind"),
    ),
    Spec(
        P + "planned_instances",
        "model instances the newest plan wants in its first hour",
        ("region", "model", "vm_type", "kind"),
    ),
    Spec(
        P + "running_instances",
        "model instances running when the newest plan was made",
        ("region", "model", "vm_type", "kind"),
    ),
    Spec(
        P + "demand_actual_tokens_per_second",
        "measured mean token rate per series in the newest complete hour",
        SERIES,
    ),
    Spec(
        P + "demand_forecast_tokens_per_second",
        "newest forecast per series: for the newest measured hour, or the plan's first hour",
        (*SERIES, "estimate", "for_hour"),
    ),
    Spec(P + "demand_hour_timestamp_seconds", "the newest complete hour of measured demand"),
    Spec(
        P + "data_newest_timestamp_seconds",
        "newest data per stage (requests, demand_mart, forecasts, plans)",
        ("stage",),
    ),
    Spec(P + "data_age_seconds", "age of the newest data per stage at scrape time", ("stage",)),
    Spec(P + "quality_gate_success", "1 when the last run's data-quality gate passed"),
    Spec(P + "quality_expectations", "expectations of the last gate by result", ("result",)),
    Spec(P + "quality_hour_timestamp_seconds", "the hour the last gate validated"),
    Spec(P + "last_run_timestamp_seconds", "when the last run finished", ("flow",)),
    Spec(P + "last_run_age_seconds", "seconds since the last run finished", ("flow",)),
    Spec(P + "last_run_success", "1 when the last run completed", ("flow",)),
    Spec(
        P + "last_run_outcome",
        "1 for the last run's outcome (completed, stopped, failed)",
        ("flow", "outcome"),
    ),
    Spec(P + "metrics_source_up", "1 when the source was read at this scrape", ("source",)),
)
# Names as exposed (the info family gains the `_info` suffix).
METRIC_NAMES: tuple[str, ...] = tuple(
    s.name + "_info" if s.name == P + "plan" else s.name for s in METRICS
)
_SPEC = {s.name: s for s in METRICS}


class Source(Protocol):
    def load(self, now: datetime | None = None) -> Snapshot: ...


def seconds(t: Any) -> float:
    """Unix seconds of a timestamp (naive means UTC); NaN for none."""
    if t is None or (isinstance(t, float) and math.isnan(t)):
        return math.nan
    ts = pd.Timestamp(t)
    if pd.isna(ts):
        return math.nan
    return float((ts.tz_localize("UTC") if ts.tzinfo is None else ts).timestamp())


def _num(v: Any) -> float:
    return math.nan if v is None or pd.isna(v) else float(v)


def bound_source(plan: dict[str, Any]) -> str:
    """Where the gap's bound comes from, as the plan's header says ("root relaxation",
    "search tree", "none"); without it "none" when there is no dual bound, else "unknown"."""
    given = plan.get("bound_source")
    if isinstance(given, str) and given:
        return given
    return "unknown" if not pd.isna(plan.get("dual_bound")) else "none"


class SageServeCollector(Collector):
    """Collects every family of ``METRICS`` from one snapshot per scrape."""

    def __init__(self, source: Source) -> None:
        self.source = source

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the data: no registration-time collect

    def collect(self) -> Iterator[Metric]:
        snap = self.source.load()
        fams: dict[str, GaugeMetricFamily] = {
            s.name: GaugeMetricFamily(s.name, s.help, labels=list(s.labels))
            for s in METRICS
            if s.name != P + "plan"
        }
        info = InfoMetricFamily(P + "plan", _SPEC[P + "plan"].help, labels=[])
        now = seconds(snap.taken_at)
        self._plan(snap, fams, info)
        self._demand(snap, fams)
        self._freshness(snap, fams, now)
        self._run(snap, fams, now)
        for source, up in sorted(snap.up.items()):
            fams[P + "metrics_source_up"].add_metric([source], 1.0 if up else 0.0)
        yield info
        yield from fams.values()

    @staticmethod
    def _plan(snap: Snapshot, f: dict[str, GaugeMetricFamily], info: InfoMetricFamily) -> None:
        w = snap.warehouse
        plan = w.plan
        if plan is None:
            return
        source = bound_source(plan)
        info.add_metric(
            [],
            {
                "plan_id": str(plan["plan_id"]),
                "status": str(plan["status"]),
                "start": pd.Timestamp(plan["start"]).isoformat(),
                "bound_source": source,
            },
        )
        f[P + "plan_gap"].add_metric([source], _num(plan.get("gap")))
        f[P + "plan_objective_dollars"].add_metric([], _num(plan.get("objective")))
        f[P + "plan_dual_bound_dollars"].add_metric([], _num(plan.get("dual_bound")))
        f[P + "plan_solve_seconds"].add_metric([], _num(plan.get("solve_seconds")))
        f[P + "plan_fallback"].add_metric([], 1.0 if plan.get("fallback") else 0.0)
        f[P + "plan_verified"].add_metric([], 1.0 if plan.get("verified") else 0.0)
        f[P + "plan_start_timestamp_seconds"].add_metric([], seconds(plan["start"]))
        f[P + "plan_created_timestamp_seconds"].add_metric([], seconds(plan.get("created_at")))
        for c in w.costs.to_dict(orient="records"):
            for window in ("horizon", "first_hour"):
                f[P + "plan_cost_dollars"].add_metric(
                    [str(c["component"]), window], float(c[window])
                )
        for u in w.unmet.to_dict(orient="records"):
            f[P + "plan_unmet_tokens_per_second"].add_metric(
                [str(u["tier"])], float(u["tokens_per_s"])
            )
        for name, frame, keys in (
            ("planned_vms", w.planned_vms, ("region", "vm_type")),
            ("running_vms", w.running_vms, ("region", "vm_type")),
            ("planned_instances", w.planned_instances, ("region", "model", "vm_type")),
            ("running_instances", w.running_instances, ("region", "model", "vm_type")),
        ):
            for row in frame.to_dict(orient="records"):
                for kind in ("on_demand", "spot"):
                    labels = [str(row[k]) for k in keys] + [kind]
                    f[P + name].add_metric(labels, float(row[kind]))

    @staticmethod
    def _demand(snap: Snapshot, f: dict[str, GaugeMetricFamily]) -> None:
        w = snap.warehouse
        if w.demand_hour is not None:
            f[P + "demand_hour_timestamp_seconds"].add_metric([], seconds(w.demand_hour))
        estimates = (("forecast_point", "point"), ("forecast_p50", "p50"), ("forecast_p95", "p95"))
        for row in w.demand.to_dict(orient="records"):
            key = [str(row[k]) for k in SERIES]
            if not pd.isna(row["actual"]):
                f[P + "demand_actual_tokens_per_second"].add_metric(key, float(row["actual"]))
            for column, estimate in estimates:
                if not pd.isna(row[column]):
                    f[P + "demand_forecast_tokens_per_second"].add_metric(
                        [*key, estimate, "last_measured"], float(row[column])
                    )
        for row in w.next_forecast.to_dict(orient="records"):
            key = [str(row[k]) for k in SERIES]
            for column, estimate in estimates:
                f[P + "demand_forecast_tokens_per_second"].add_metric(
                    [*key, estimate, "plan_first"], float(row[column])
                )

    @staticmethod
    def _freshness(snap: Snapshot, f: dict[str, GaugeMetricFamily], now: float) -> None:
        for stage, newest in sorted(snap.warehouse.newest.items()):
            if newest is None:
                continue
            t = seconds(newest)
            f[P + "data_newest_timestamp_seconds"].add_metric([stage], t)
            f[P + "data_age_seconds"].add_metric([stage], now - t)

    @staticmethod
    def _run(snap: Snapshot, f: dict[str, GaugeMetricFamily], now: float) -> None:
        r = snap.run
        if r is None:
            return
        flow = str(r.get("flow", "hourly-plan"))
        finished = seconds(r.get("finished"))
        f[P + "last_run_timestamp_seconds"].add_metric([flow], finished)
        f[P + "last_run_age_seconds"].add_metric([flow], now - finished)
        f[P + "last_run_success"].add_metric([flow], 1.0 if r["outcome"] == "completed" else 0.0)
        for outcome in OUTCOMES:
            f[P + "last_run_outcome"].add_metric(
                [flow, outcome], 1.0 if r["outcome"] == outcome else 0.0
            )
        q = r.get("quality")
        if q:
            failed = len(q.get("failed") or [])
            f[P + "quality_gate_success"].add_metric([], 1.0 if q.get("success") else 0.0)
            f[P + "quality_expectations"].add_metric(["failed"], float(failed))
            f[P + "quality_expectations"].add_metric(
                ["passed"], float(int(q.get("checked", 0)) - failed)
            )
            if q.get("hour"):
                f[P + "quality_hour_timestamp_seconds"].add_metric([], seconds(q["hour"]))


def build_registry(source: Source) -> CollectorRegistry:
    """A fresh registry holding only the SageServe collector over ``source``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SageServeCollector(source))
    return registry
