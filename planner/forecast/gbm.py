"""A global gradient-boosted model across series: one LightGBM model, every series, leads 1..24.

Why global: hundreds of series share the same daily and weekly shape, shifted by time zone and
scaled by size; a per-series model sees one of them. Here every series is scaled by its own
recent level (mean of the last week before the origin) and one model learns the shape and the
short-term dynamics from all of them.

Why direct (one model with the lead as a feature) rather than recursive: a recursive model
feeds its own forecasts back as lags, so errors compound over 24 steps and every step needs the
features rebuilt from predictions (24 sequential predict calls per origin). Direct models map
what is known at the origin straight to each lead; with the lead as a feature it is one model
(not 24), trained on (series, origin, lead) rows, and it can learn that the newest hours matter
for lead 1 (nowcasting) and the seasonal lags for lead 24.

Features for series ``i``, origin ``t`` (first hour not known) and lead ``h`` (target hour
``t + h − 1``), all divided by the level ``L`` (mean of the 168 h before ``t``):
the last three hours; the means of the last 6 and 24 hours; the same hour 1, 2 and 7 days
before the target and its 7-day mean (only hours before ``t``: ``h ≤ 24``); the last hour's
deviation from the same hour a day and a week before (the latest complete hour's residual of
seasonal naive: the nowcast signal); the day-on-day ratio; the lead; the target's UTC hour and
weekday; ``log L``; region, model, tier and metric as categories. The target is the observed
value / ``L`` (imputed hours are never targets).

Strictly out of sample: features use ``Y[:, :t]`` only and a model fitted at cutoff ``T`` is
trained on targets before ``T`` only. sktime's ``update(update_params=False)`` appends data and
keeps the booster, so under ``evaluate(strategy="no-update_params")`` every fold's forecast
comes from a model fitted on data before its origin, conditioned on data before its origin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sktime.forecasting.base import ForecastingHorizon

from planner.forecast.panel_forecaster import PanelForecaster
from planner.forecast.series import SEP

log = logging.getLogger(__name__)
NAME = "gbm"
MAX_LEAD = 24
LEVEL_H = 168
MIN_ANCHOR_H = 24  # an origin needs a day of history for the seasonal lags
FEATURES = (
    "lag1",
    "lag2",
    "lag3",
    "mean6",
    "mean24",
    "s24",
    "s48",
    "s168",
    "prof7",
    "resid_day",
    "resid_week",
    "day_ratio",
    "lead",
    "hour",
    "weekday",
    "log_level",
    "region",
    "model",
    "tier",
    "metric",
)
CATEGORICAL = ("region", "model", "tier", "metric")


@dataclass(frozen=True)
class GBMParams:
    """LightGBM settings and the training-set size. Tuned on m-mid ServeGen logs only."""

    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 50
    subsample: float = 0.8
    colsample: float = 0.9
    objective: str = "l1"  # MASE is an absolute error: fit the median
    # "mase": each row weighted by level / seasonal-naive scale, so the loss is the MASE the
    # selection scores (see training_set); "none": every row alike (errors in level units)
    weight: str = "mase"
    max_rows: int = 200_000
    train_h: int = 28 * 24  # origins at most this far back
    refit_every_h: int = 168
    # One thread: the global job runs next to a chunk worker on the other core (see
    # planner.forecast.pipeline). Two OpenMP threads on a busy 2-core machine spin-wait for
    # each other: 0.114 s per boosting round measured in a selection against 0.022 s alone
    # on one thread (bench/forecast.py profile, 48 series).
    threads: int = 1
    seed: int = 0


DEFAULT_PARAMS = GBMParams()


def _cat_codes(keys: list[str], cats: dict[str, list[str]]) -> dict[str, np.ndarray]:
    parts = [k.split(SEP) for k in keys]
    out = {}
    for j, name in enumerate(CATEGORICAL):
        values = [p[j] if len(p) > j else "" for p in parts]
        lookup = {v: i for i, v in enumerate(cats[name])}
        out[name] = np.array([lookup.get(v, np.nan) for v in values], dtype=float)
    return out


def categories(keys: list[str]) -> dict[str, list[str]]:
    parts = [k.split(SEP) for k in keys]
    return {
        name: sorted({p[j] if len(p) > j else "" for p in parts})
        for j, name in enumerate(CATEGORICAL)
    }


def _at(y: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """y[series, idx] with NaN where idx < 0 (``idx``: one index per row of ``y``)."""
    ok = idx >= 0
    out = np.full(y.shape[0], np.nan)
    rows = np.arange(y.shape[0])
    out[ok] = y[rows[ok], idx[ok]]
    return out


def features(
    y: np.ndarray,
    t: int,
    leads: np.ndarray,
    times: pd.DatetimeIndex,
    codes: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows for every series × lead at origin position ``t`` (uses ``y[:, :t]`` only).

    Returns (X with one row per (lead, series), level per row)."""
    hist = y[:, max(0, t - LEVEL_H) : t]
    level = np.maximum(hist.mean(axis=1), 1e-9) if hist.shape[1] else np.full(len(y), 1e-9)
    n = y.shape[0]
    ones = np.ones(n, dtype=int)
    recent = {
        "lag1": y[:, t - 1],
        "lag2": y[:, t - 2] if t >= 2 else np.full(n, np.nan),
        "lag3": y[:, t - 3] if t >= 3 else np.full(n, np.nan),
        "mean6": y[:, max(0, t - 6) : t].mean(axis=1),
        "mean24": y[:, max(0, t - 24) : t].mean(axis=1),
        "resid_day": y[:, t - 1] - _at(y, ones * (t - 25)),
        "resid_week": y[:, t - 1] - _at(y, ones * (t - 169)),
    }
    prev_day = y[:, t - 48 : t - 24].mean(axis=1) if t >= 48 else np.full(n, np.nan)
    day_ratio = recent["mean24"] / np.maximum(prev_day, 1e-9 * level)
    blocks = []
    for h in leads:
        target = t + int(h) - 1
        when = times[0] + pd.Timedelta(hours=target)
        s = {f"s{lag}": _at(y, ones * (target - lag)) for lag in (24, 48, 168)}
        week = np.column_stack([_at(y, ones * (target - 24 * k)) for k in range(1, 8)])
        with np.errstate(all="ignore"):
            prof = np.nanmean(week, axis=1) if np.isfinite(week).any() else np.full(n, np.nan)
        cols = {
            **{k: v / level for k, v in recent.items()},
            **{k: v / level for k, v in s.items()},
            "prof7": prof / level,
            "day_ratio": day_ratio,
            "lead": np.full(n, float(h)),
            "hour": np.full(n, float(when.hour)),
            "weekday": np.full(n, float(when.dayofweek)),
            "log_level": np.log10(level),
            **codes,
        }
        blocks.append(np.column_stack([cols[f] for f in FEATURES]))
    return np.vstack(blocks), np.tile(level, len(leads))


def training_set(
    filled: np.ndarray,
    observed: np.ndarray,
    times: pd.DatetimeIndex,
    codes: dict[str, np.ndarray],
    params: GBMParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, target/level, weight) over origins whose target hours are all before the end of
    ``filled``. Rows whose target is unknown (NaN in ``observed``) are dropped; a
    deterministic subsample keeps at most ``params.max_rows`` rows.

    The target is in units of the level, the score in units of the series' in-sample
    seasonal-naive MAE (MASE): with ``params.weight == "mase"`` a row weighs
    ``level / scale`` (the scale: mean |y_t − y_{t−24}| over the week before the origin, known
    there), clipped to [0.2, 5] × the origin's median, so the L1 loss is the MASE. Without it a
    smooth series (small scale) counted for as little as a bursty one though the selection
    scores its errors larger."""
    end = filled.shape[1]
    first = max(MIN_ANCHOR_H, end - params.train_h)
    origins = np.arange(first, end)
    n_series = filled.shape[0]
    per_origin = n_series * MAX_LEAD
    rng = np.random.default_rng(params.seed)
    if len(origins) * per_origin > params.max_rows:
        keep = max(1, params.max_rows // per_origin)
        origins = np.sort(rng.choice(origins, size=min(keep, len(origins)), replace=False))
    xs, ys, ws = [], [], []
    for t in origins:
        leads = np.arange(1, min(MAX_LEAD, end - t) + 1)
        if len(leads) == 0:
            continue
        x, level = features(filled, int(t), leads, times, codes)
        target = np.concatenate([observed[:, t + h - 1] for h in leads]) / level
        ok = np.isfinite(target)
        weight = _mase_weight(filled, int(t), level[:n_series]) if params.weight == "mase" else 1
        xs.append(x[ok])
        ys.append(target[ok])
        ws.append(np.tile(np.broadcast_to(weight, n_series), len(leads))[ok])
    if not xs:
        return np.empty((0, len(FEATURES))), np.empty(0), np.empty(0)
    return np.vstack(xs), np.concatenate(ys), np.concatenate(ws)


def _mase_weight(filled: np.ndarray, t: int, level: np.ndarray) -> np.ndarray:
    """Per series: level / seasonal-naive MAE over the week before origin ``t`` (hours before
    ``t`` only), clipped to [0.2, 5] × the median; the median where undefined, 1 if none."""
    lo = max(24, t - LEVEL_H)
    if t - lo < 24:
        return np.ones(len(level))
    scale = np.abs(filled[:, lo:t] - filled[:, lo - 24 : t - 24]).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = level / np.maximum(scale, 1e-9)
    good = np.isfinite(weight)
    if not good.any():
        return np.ones(len(level))
    med = float(np.median(weight[good]))
    out: np.ndarray = np.clip(np.where(good, weight, med), 0.2 * med, 5 * med)
    return out


class GlobalGBM:
    """The fitted global model: booster, categories, and in-sample residual quantiles (the
    native intervals used before enough conformal residuals exist)."""

    def __init__(self, params: GBMParams) -> None:
        self.params = params
        self.booster: Any = None
        self.cats: dict[str, list[str]] = {}
        self.resid_q: dict[float, float] = {}
        self.rows = 0

    def fit(
        self,
        keys: list[str],
        filled: np.ndarray,
        observed: np.ndarray,
        times: pd.DatetimeIndex,
    ) -> GlobalGBM:
        import lightgbm as lgb

        self.cats = categories(keys)
        codes = _cat_codes(keys, self.cats)
        x, target, weight = training_set(filled, observed, times, codes, self.params)
        self.rows = len(target)
        if len(target) < 100:
            raise ValueError(f"{len(target)} training rows: too little history for {NAME}")
        p = self.params
        cat_idx = [FEATURES.index(c) for c in CATEGORICAL]
        self.booster = lgb.train(
            {
                "objective": p.objective,
                "learning_rate": p.learning_rate,
                "num_leaves": p.num_leaves,
                "min_child_samples": p.min_child_samples,
                "bagging_fraction": p.subsample,
                "bagging_freq": 1,
                "feature_fraction": p.colsample,
                "num_threads": p.threads,
                "seed": p.seed,
                "deterministic": True,
                "force_col_wise": True,
                "verbosity": -1,
            },
            lgb.Dataset(
                x,
                target,
                weight=weight if p.weight == "mase" else None,
                categorical_feature=cat_idx,
                free_raw_data=True,
            ),
            num_boost_round=p.n_estimators,
        )
        resid = target - self.booster.predict(x, num_threads=p.threads)
        self.resid_q = {
            q: float(np.quantile(resid, q))
            for q in (0.01, 0.025, 0.05, 0.1, 0.9, 0.95, 0.975, 0.99)
        }
        return self

    def predict(
        self,
        keys: list[str],
        filled: np.ndarray,
        times: pd.DatetimeIndex,
        horizon: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Point forecasts (series × horizon) for the hours after ``filled`` ends, and the
        levels; non-finite or negative values are clipped to 0."""
        if horizon > MAX_LEAD:
            raise ValueError(f"{NAME} forecasts at most {MAX_LEAD} h ahead, asked {horizon}")
        codes = _cat_codes(keys, self.cats)
        t = filled.shape[1]
        leads = np.arange(1, horizon + 1)
        x, level = features(filled, t, leads, times, codes)
        pred = self.booster.predict(x, num_threads=self.params.threads) * level
        out = pred.reshape(horizon, len(keys)).T
        return np.maximum(out, 0.0), level[: len(keys)]


class GlobalGBMForecaster(PanelForecaster):
    """sktime forecaster over :class:`GlobalGBM`, panel-native like
    :class:`planner.forecast.models.PanelStatsForecaster`.

    ``refit_every_h="spec"`` re-fits once the booster is ``GBMParams.refit_every_h`` old (or a
    quarter of the history, at least daily), as the statistical candidates do in backtests;
    ``"never"`` keeps the booster on ``update(update_params=False)`` (sktime's contract).
    """

    _tags = {"capability:missing_values": True}  # noqa: RUF012 - sktime's tag idiom
    single_column = "series"
    _times: pd.DatetimeIndex
    _cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]

    def __init__(self, refit_every_h: str = "never", n_estimators: int | None = None) -> None:
        self.refit_every_h = refit_every_h
        self.n_estimators = n_estimators
        super().__init__()

    def _keys_of(self, columns: pd.Index) -> list[Any]:
        return [str(k) for k in columns]

    def _times_of(self, index: pd.Index) -> pd.Index:
        return pd.DatetimeIndex(index)

    def _refit(self) -> None:
        from dataclasses import replace

        params = DEFAULT_PARAMS
        if self.n_estimators is not None:
            params = replace(params, n_estimators=self.n_estimators)
        filled = _ffill(self._values)
        self.model_ = GlobalGBM(params).fit(self._keys, filled, self._values, self._times)
        self.fitted_len_ = self._values.shape[1]
        self._cache = {}

    def _refit_every(self) -> int | None:
        return DEFAULT_PARAMS.refit_every_h

    def _forward(self, fh: ForecastingHorizon) -> tuple[np.ndarray, np.ndarray]:
        steps = fh.to_relative(self.cutoff)._values.to_numpy(dtype=int)
        key = (str(self.cutoff), tuple(steps))
        if key not in self._cache:
            point, level = self.model_.predict(
                self._keys, _ffill(self._values), self._times, int(steps.max())
            )
            self._cache[key] = (point[:, steps - 1], level)
        return self._cache[key]

    def _points(self, fh: ForecastingHorizon) -> np.ndarray:
        return self._forward(fh)[0].ravel()

    def _quantile(self, fh: ForecastingHorizon, alpha: float) -> np.ndarray:
        point, level = self._forward(fh)
        known = sorted(self.model_.resid_q)
        shift = (
            0.0
            if abs(alpha - 0.5) < 1e-9
            else float(np.interp(alpha, known, [self.model_.resid_q[k] for k in known]))
        )
        return np.maximum(point + shift * level[:, None], 0.0).ravel()

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        return [{"n_estimators": 10}, {"refit_every_h": "spec", "n_estimators": 5}]


def _ffill(values: np.ndarray) -> np.ndarray:
    """NaN (unknown) hours carried forward from the last known hour of the same series (then
    back-filled, then 0): features must not be NaN where the panel has gaps."""
    frame = pd.DataFrame(values.T)
    out: np.ndarray = frame.ffill().bfill().fillna(0.0).to_numpy().T
    return out
