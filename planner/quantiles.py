"""The forecast quantiles the product stores, and their one column spelling (``q_0_95``).

Every stage reads these: the forecasters produce them, the warehouse's ``forecasts`` table
(migration 0009) and its pandera model store them, the config checks a tier's
``planning_quantile`` against them and the planner reads its tier's column."""

from __future__ import annotations

QUANTILES: tuple[float, ...] = (0.025, 0.05, 0.5, 0.9, 0.95, 0.975, 0.99)


def quantile_column(q: float) -> str:
    """Column of quantile ``q``: ``q_0_95`` for 0.95 (SQL-safe, as stored)."""
    return "q_" + f"{q:g}".replace(".", "_")


def column_quantile(column: str) -> float:
    """Inverse of :func:`quantile_column`: 0.95 for ``q_0_95``."""
    return float(column.removeprefix("q_").replace("_", "."))


def is_quantile_column(column: str) -> bool:
    return column.startswith("q_") and column[2:3].isdigit()


QUANTILE_COLUMNS: tuple[str, ...] = tuple(quantile_column(q) for q in QUANTILES)
LOW, HIGH = quantile_column(0.025), quantile_column(0.975)  # the central 95 % band's edges
