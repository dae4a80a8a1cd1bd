"""Coherent totals: region × model × tier forecasts that add up to region × model and model totals.

Only the additive metrics are reconciled (``token_rate``, ``request_rate``: a total's mean rate
is the sum of its parts'). The busiest minute of a total is not the sum of its parts' busiest
minutes, so ``peak_token_rate`` has no summing constraint and is left alone.

Per model and metric, the nodes are the model total (region and tier ``*``), the region × model
totals (tier ``*``) and the m bottom series (region × model × tier). With ``S`` the n × m
summing matrix (a row per node, 1 where the bottom series belongs to the node) and ``ŷ`` the
base forecasts of all n nodes at one origin and lead, the reconciled forecasts are

    ỹ = S G ŷ,

coherent by construction (every total is the sum of its reconciled bottoms), with

* ``bu`` (bottom-up): G = [0 | I], the bottoms kept, the totals replaced by their sums;
* ``ols``: G = (SᵀS)⁻¹Sᵀ, the orthogonal projection onto the coherent subspace;
* ``wls``: G = (SᵀW⁻¹S)⁻¹SᵀW⁻¹ with W = diag(s²), ``s`` the node's MASE scale (in-sample MAE
  of seasonal naive before the origin, known at the origin): MinT with a diagonal error
  variance proportional to each node's scale (Wickramasuriya, Athanasopoulos & Hyndman 2019).

The product plans on the bottom series, whose sum is already a coherent (bottom-up) total;
``bench/forecast_accuracy.py --reconcile`` measures whether ``ols``/``wls`` improve any level.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from planner.forecast.series import SEP, SeriesKey

TOTAL = "*"
ADDITIVE = ("token_rate", "request_rate")
METHODS = ("bu", "ols", "wls")
LEVELS = ("model", "region_model", "bottom")
_SUMMED = ("requests", "input_tokens", "output_tokens", "token_rate", "peak_minute_token_rate")


def level_of(series_id: str) -> str:
    """``model`` (model total), ``region_model`` (a region's total) or ``bottom``."""
    key = SeriesKey.parse(series_id)
    if key.region == TOTAL:
        return "model"
    return "region_model" if key.tier == TOTAL else "bottom"


def with_totals(demand: pd.DataFrame) -> pd.DataFrame:
    """The demand mart (``demand_history.sql`` rows) plus rows of region × model totals (tier
    ``*``) and model totals (region and tier ``*``): sums of the counts and rates; coverage is
    the mean over the parts. ``peak_minute_token_rate`` of a total is the sum of its parts'
    (an upper bound, not its busiest minute): reconcile only :data:`ADDITIVE` metrics."""
    d = demand.copy()
    agg = {c: "sum" for c in _SUMMED} | {"coverage": "mean"}
    region = d.groupby(["hour", "region", "model"], as_index=False).agg(agg)
    region["tier"] = TOTAL
    model = d.groupby(["hour", "model"], as_index=False).agg(agg)
    model["region"], model["tier"] = TOTAL, TOTAL
    return pd.concat([d, region[d.columns], model[d.columns]], ignore_index=True)


def summing_matrix(bottoms: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Node ids (model total, region totals, then ``bottoms``) and S (nodes × bottoms) for
    bottom series of one model and metric."""
    keys = [SeriesKey.parse(b) for b in bottoms]
    if len({(k.model, k.metric) for k in keys}) != 1:
        raise ValueError("summing_matrix: bottoms of one model and metric only")
    model, metric = keys[0].model, keys[0].metric
    regions = sorted({k.region for k in keys})
    nodes = [SEP.join((TOTAL, model, TOTAL, metric))]
    rows = [np.ones(len(keys))]
    for r in regions:
        nodes.append(SEP.join((r, model, TOTAL, metric)))
        rows.append(np.array([k.region == r for k in keys], dtype=float))
    nodes += list(bottoms)
    rows += list(np.eye(len(keys)))
    return nodes, np.vstack(rows)


def projection(s: np.ndarray, method: str, scale: np.ndarray | None = None) -> np.ndarray:
    """S G (nodes × nodes) of ``method`` (see the module docstring); ``scale``: the nodes'
    MASE scales, for ``wls``."""
    n, m = s.shape
    if method == "bu":
        g = np.hstack([np.zeros((m, n - m)), np.eye(m)])
    elif method == "ols":
        g = np.linalg.solve(s.T @ s, s.T)
    elif method == "wls":
        if scale is None or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError("wls needs a positive finite scale for every node")
        w_inv = np.diag(1.0 / scale**2)
        g = np.linalg.solve(s.T @ w_inv @ s, s.T @ w_inv)
    else:
        raise ValueError(f"unknown reconciliation method {method!r}; one of {METHODS}")
    out: np.ndarray = s @ g
    return out


def reconcile_rows(rows: pd.DataFrame, method: str) -> pd.Series:
    """Reconciled points of backtest rows (columns series, origin, h, point, scale), aligned
    with ``rows``. A hierarchy (origin, model, metric) lacking a node, or (``wls``) a node's
    scale, keeps its base points, as do leads where a node has no point and non-additive
    metrics."""
    out = rows["point"].astype(float).copy()
    keys = rows["series"].str.split(SEP, expand=True)
    keys.columns = ["region", "model", "tier", "metric"]
    additive = keys["metric"].isin(ADDITIVE)
    groups = rows[additive].groupby([rows["origin"], keys["model"], keys["metric"]]).groups
    for _, idx in groups.items():
        part = rows.loc[idx]
        bottoms = sorted(s for s in part["series"].unique() if level_of(s) == "bottom")
        if not bottoms:
            continue
        nodes, s = summing_matrix(bottoms)
        point = part.pivot_table(index="series", columns="h", values="point", aggfunc="first")
        if not set(nodes) <= set(point.index):
            continue
        p = point.loc[nodes].to_numpy(dtype=float)
        full = np.all(np.isfinite(p), axis=0)  # leads where every node has a point
        scale = part.groupby("series")["scale"].first().reindex(nodes).to_numpy(dtype=float)
        try:
            reconciled = np.where(full, projection(s, method, scale) @ np.nan_to_num(p), p)
        except ValueError:
            continue
        wide = pd.DataFrame(reconciled, index=nodes, columns=point.columns)
        stacked = wide.stack()
        out.loc[idx] = stacked.reindex(pd.MultiIndex.from_frame(part[["series", "h"]])).to_numpy()
    return out
