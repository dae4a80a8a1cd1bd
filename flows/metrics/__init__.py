"""Metrics for dashboards: what the warehouse and the published plans say, as a
prometheus_client registry (``sageserve metrics``, and the OpenMetrics endpoint of
``make serve``). Metric names are listed in ``flows/metrics/collector.py`` and the README."""

from flows.metrics.collector import METRIC_NAMES, SageServeCollector, build_registry
from flows.metrics.snapshot import Snapshot, WarehouseSource

__all__ = ["METRIC_NAMES", "SageServeCollector", "Snapshot", "WarehouseSource", "build_registry"]
