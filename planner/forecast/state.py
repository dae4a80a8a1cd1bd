"""A fitted series as plain data (JSON), what the warehouse stores instead of pickles.

A statsforecast model is rebuilt from the registry (its constructor arguments) and its fitted
state ``model_`` (dicts, arrays and numbers: what ``forward`` reads); a combination from its
members' states; the global LightGBM model from LightGBM's own text format; residual
quantiles from their fields. Arrays travel as base64 of their bytes with dtype and shape, so
the round trip is bit-exact and so are the forecasts made from it. Decoding runs no code:
JSON, numpy buffers and LightGBM's model text only.

Every JSON object of an encoded tree has one key naming what it holds (``dict``, ``nd``,
``tuple``, ``results``, ``float``), so nothing in the data can be mistaken for a tag.
"""

from __future__ import annotations

import base64
import math
from dataclasses import asdict, fields
from typing import Any

import numpy as np
import pandas as pd
from statsforecast import utils as sf_utils

from planner.forecast.calibration import ResidualQuantiles
from planner.forecast.forecast import FittedSeries, HybridModel
from planner.forecast.gbm import GBMParams, GlobalGBM
from planner.forecast.models import REGISTRY, MeanEnsemble


def encode(value: Any) -> Any:
    """A JSON-able tree of ``value`` (None, bool, int, str, float, numpy values, lists, tuples,
    str-keyed dicts and statsforecast's optimiser results)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, np.ndarray | np.generic):
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise TypeError("cannot store an array of Python objects as data")
        data = base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode()
        shape = None if isinstance(value, np.generic) else list(arr.shape)
        return {"nd": [arr.dtype.str, shape, data]}
    if isinstance(value, sf_utils.results):
        return {"results": [encode(v) for v in value]}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: encode(v) for k, v in value.items()}}
    raise TypeError(f"cannot store a {type(value).__name__} as data")


def decode(tree: Any) -> Any:
    """Undo :func:`encode`."""
    if isinstance(tree, list):
        return [decode(v) for v in tree]
    if not isinstance(tree, dict):
        return tree
    ((tag, body),) = tree.items()
    if tag == "dict":
        return {k: decode(v) for k, v in body.items()}
    if tag == "tuple":
        return tuple(decode(v) for v in body)
    if tag == "results":
        return sf_utils.results(*(decode(v) for v in body))
    if tag == "float":
        return float(body)
    if tag == "nd":
        dtype, shape, data = body
        arr = np.frombuffer(base64.b64decode(data), dtype=np.dtype(dtype))
        return arr[0] if shape is None else arr.reshape(shape).copy()
    raise ValueError(f"unknown tag {tag!r} in a stored forecast model")


def _parts(model: Any) -> list[Any]:
    """The statsforecast objects holding a registry model's fitted state."""
    if isinstance(model, MeanEnsemble):
        return list(model.members)
    if hasattr(model, "trend_forecaster"):  # MSTL: forward re-decomposes, the trend is fitted
        return [model.trend_forecaster]
    return [model]


def _local(name: str, model: Any) -> dict[str, Any]:
    return {"name": name, "states": [encode(p.model_) for p in _parts(model)]}


def _local_model(stored: dict[str, Any]) -> Any:
    model = REGISTRY[stored["name"]].factory()
    for part, state in zip(_parts(model), stored["states"], strict=True):
        part.model_ = decode(state)
    return model


def gbm_state(model: GlobalGBM) -> dict[str, Any]:
    return {
        "params": asdict(model.params),
        "booster": model.booster.model_to_string(),
        "cats": model.cats,
        "resid_q": [[q, v] for q, v in model.resid_q.items()],
        "rows": model.rows,
    }


def gbm_from_state(stored: dict[str, Any]) -> GlobalGBM:
    import lightgbm as lgb

    model = GlobalGBM(GBMParams(**stored["params"]))
    model.booster = lgb.Booster(model_str=stored["booster"])
    model.cats = stored["cats"]
    model.resid_q = {float(q): float(v) for q, v in stored["resid_q"]}
    model.rows = int(stored["rows"])
    return model


def _residuals(rq: ResidualQuantiles | None) -> Any:
    return None if rq is None else encode({f.name: getattr(rq, f.name) for f in fields(rq)})


def _residuals_from(stored: Any) -> ResidualQuantiles | None:
    return None if stored is None else ResidualQuantiles(**decode(stored))


def fitted_state(fs: FittedSeries) -> dict[str, Any]:
    """The fitted parts of a series (its model without a shared global model: see
    :func:`planner.forecast.forecast.detach_shared`); the selection's own fields (forecaster,
    fit window, fallback, reason) are the row's columns."""
    model: dict[str, Any] | None = None
    if isinstance(fs.model, HybridModel):
        model = {"hybrid": _local(fs.model.local_name, fs.model.local)}
    elif isinstance(fs.model, GlobalGBM):
        model = {"gbm": gbm_state(fs.model)}
    elif fs.model is not None:
        model = {"local": _local(fs.forecaster, fs.model)}
    return {
        "model": model,
        "residuals": _residuals(fs.residuals),
        "nowcast_residuals": _residuals(fs.nowcast_residuals),
        "scores": encode(fs.scores),
        "fallback_residuals": {k: _residuals(v) for k, v in fs.fallback_residuals.items()},
        "fallback_nowcast_residuals": {
            k: _residuals(v) for k, v in fs.fallback_nowcast_residuals.items()
        },
    }


def fitted_from_state(row: dict[str, Any], state: dict[str, Any]) -> FittedSeries:
    """The series of a stored row (``row``: its columns) and its :func:`fitted_state`."""
    stored = state["model"] or {}
    model: Any = None
    if "hybrid" in stored:
        model = HybridModel(stored["hybrid"]["name"], _local_model(stored["hybrid"]), None)
    elif "gbm" in stored:
        model = gbm_from_state(stored["gbm"])
    elif "local" in stored:
        model = _local_model(stored["local"])
    return FittedSeries(
        row["series"],
        row["forecaster"],
        model,
        _residuals_from(state["residuals"]),
        _timestamp(row["train_start"]),
        _timestamp(row["train_end"]),
        row["reason"] or "",
        row["fallback"],
        decode(state["scores"]),
        _residuals_from(state["nowcast_residuals"]),
        _bands_from(state.get("fallback_residuals")),
        _bands_from(state.get("fallback_nowcast_residuals")),
    )


def _bands_from(stored: dict[str, Any] | None) -> dict[str, ResidualQuantiles]:
    """Stored fallback bands by forecaster (none in a selection stored before they were kept:
    the hourly job then keeps the chosen forecaster's band and says so)."""
    out = {k: _residuals_from(v) for k, v in (stored or {}).items()}
    return {k: v for k, v in out.items() if v is not None}


def _timestamp(value: Any) -> pd.Timestamp | None:
    """A stored time as the selection made it (nanosecond unit, as the panel's index)."""
    return None if value is None or pd.isna(value) else pd.Timestamp(value).as_unit("ns")
