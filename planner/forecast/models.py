"""The forecaster registry: sktime forecasters over statsforecast's models, panel-native.

Why a wrapper: selection backtests hundreds of series at 14 origins each. Per-series sktime
calls cost ~20 ms of framework overhead each, and refitting ETS/ARIMA at every origin costs
0.1-0.5 s per series; together that is hours on two cores. ``PanelStatsForecaster`` is an sktime
forecaster (extension-template shape, passing ``check_estimator``) that:

* takes a whole panel (``pd-multiindex``: series id × hourly index) in one call;
* fits each series' model (``_fit``) on the registry's trailing window of the history, with
  upward spikes capped for the non-baseline models (:func:`cap_spikes`);
* on ``update(..., update_params=False)`` keeps the fitted parameters and appends the data, so
  ``predict`` re-conditions the model on the new history with statsforecast's ``forward``;
  with ``refit_every_h="spec"`` it re-estimates the parameters once the registry says they are
  stale. Under sktime's ``evaluate(strategy="no-update_params")`` this is a strictly
  out-of-sample backtest: parameters and states only ever come from data before each origin;
* answers ``predict_quantiles`` from the model's own prediction intervals.

A model that raises or returns non-finite values for a series does not fail the panel: that
series falls back to seasonal naive (sp = 24) and the reason is kept in ``fallbacks_``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sktime.forecasting.base import ForecastingHorizon
from statsforecast.models import (
    MSTL,
    AutoARIMA,
    AutoETS,
    DynamicOptimizedTheta,
    SeasonalNaive,
)

from planner.config.forecast_settings import DEFAULT_FORECAST_CANDIDATES
from planner.forecast.panel_forecaster import PanelForecaster

log = logging.getLogger(__name__)
ModelFactory = Callable[[], Any]
LEVELS = (80, 90, 95, 98)  # the intervals every forward computes (quantiles .01-.99)


@dataclass(frozen=True)
class ForecasterSpec:
    """One candidate of the registry.

    ``clean``: fit and condition on the history with upward spikes capped; baselines see the
    raw history. ``max_train_h``: the trailing window the model is fitted on (older hours cost
    time and rarely help a 24 h horizon). ``refit_every_h``: in backtests parameters are
    re-estimated once this old, or sooner while the history is short (once it has grown by a
    quarter since the last fit, but at most daily); None: estimated once at the first origin.
    On ServeGen-derived logs (10 days) daily refits scored 15.8 % better than seasonal naive,
    this rule 15.2 %, refitting at +50 % history 14.4 %; on 28-day histories it refits every
    3.5-7 days and halves the cost of daily refits. The state is always
    re-conditioned on the latest data. ``members``: an equal-weight combination of these.
    """

    name: str
    factory: ModelFactory
    min_history_h: int
    description: str
    baseline: bool = False
    clean: bool = True
    max_train_h: int | None = 336
    refit_every_h: int | None = 168
    members: tuple[str, ...] = ()


def _snaive24() -> Any:
    return SeasonalNaive(season_length=24)


def _snaive168() -> Any:
    return SeasonalNaive(season_length=168)


def _ets() -> Any:
    # Additive daily season, no trend, error type chosen by AICc. On ServeGen-derived series
    # the trend and multiplicative variants scored no better (MASE 0.924 vs 0.927) at 4-5x the
    # fit time; multiplicative seasons also fail on the zero hours of sparse series.
    return AutoETS(season_length=24, model="ZNA")


def _theta() -> Any:
    return DynamicOptimizedTheta(season_length=24)


def _mstl() -> Any:
    # Daily and weekly seasons (STL per period), trend+remainder forecast by AutoETS.
    return MSTL(season_length=[24, 168], trend_forecaster=AutoETS(model="ZZN"))


def _arima() -> Any:
    # Seasonal AutoARIMA with period 24; the search is bounded (stepwise, approximate
    # likelihood, at most 10 models) because a full search costs ~3 s per hourly series.
    return AutoARIMA(
        season_length=24,
        approximation=True,
        stepwise=True,
        nmodels=10,
        max_p=2,
        max_q=2,
        max_P=1,
        max_Q=1,
    )


class MeanEnsemble:
    """Equal-weight combination of statsforecast models with their interface (fit, forward).

    Means are averaged; interval bounds are averaged level by level (quantile averaging).
    On ServeGen-derived series ETS is better past 6 h ahead and Theta in the first hours;
    their mean beat both (MASE 0.919 vs 0.933 and 1.023).
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self.members = [REGISTRY[n].factory() for n in names]

    def fit(self, y: np.ndarray) -> MeanEnsemble:
        for m in self.members:
            m.fit(y)
        return self

    def forward(self, y: np.ndarray, h: int, level: list[int] | None = None) -> dict[str, Any]:
        outs = [
            m.forward(y=y, h=h, level=level) if level else m.forward(y=y, h=h) for m in self.members
        ]
        return {k: np.mean([np.asarray(o[k]) for o in outs], axis=0) for k in outs[0]}


def _ets_theta() -> Any:
    return MeanEnsemble("ets", "theta")


def _global_only() -> Any:
    raise TypeError("gbm is a global model: see planner.forecast.gbm (one fit over all series)")


REGISTRY: dict[str, ForecasterSpec] = {
    spec.name: spec
    for spec in (
        ForecasterSpec(
            "snaive24", _snaive24, 24, "seasonal naive, same hour yesterday", True, False, 48
        ),
        ForecasterSpec(
            "snaive168", _snaive168, 168, "seasonal naive, same hour last week", True, False, 336
        ),
        ForecasterSpec("ets", _ets, 72, "AutoETS, additive daily season"),
        ForecasterSpec("theta", _theta, 72, "dynamic optimised Theta, daily season"),
        ForecasterSpec(
            "ets_theta",
            _ets_theta,
            72,
            "mean of the ETS and Theta forecasts",
            members=("ets", "theta"),
        ),
        ForecasterSpec("mstl", _mstl, 336, "MSTL daily+weekly seasons, AutoETS trend"),
        # one LightGBM model over every series (planner.forecast.gbm), not a per-series fit
        ForecasterSpec(
            "gbm",
            _global_only,
            72,
            "global LightGBM over all series, direct leads 1-24",
            clean=False,
            max_train_h=None,
        ),
        ForecasterSpec(
            "ets_theta_gbm",
            _global_only,
            72,
            "mean of the ETS, Theta and global LightGBM forecasts",
            members=("ets", "theta", "gbm"),
        ),
        # ~0.2 s per fit on a week: estimated once per backtest, re-conditioned at each origin.
        ForecasterSpec(
            "arima",
            _arima,
            96,
            "seasonal AutoARIMA, period 24",
            max_train_h=168,
            refit_every_h=None,
        ),
    )
}
GLOBAL_MODELS = ("gbm",)  # fitted once over the whole panel, not per series
# combinations with a global member: name -> the registry model of their per-series members
HYBRIDS = {"ets_theta_gbm": "ets_theta"}


def uses_global(name: str) -> bool:
    """Whether a candidate is, or combines, a global model."""
    spec = REGISTRY[name]
    return name in GLOBAL_MODELS or any(m in GLOBAL_MODELS for m in spec.members)


BASELINES = tuple(name for name, spec in REGISTRY.items() if spec.baseline)
DEFAULT_CANDIDATES = DEFAULT_FORECAST_CANDIDATES  # the config's default list, written once


def cap_spikes(y: np.ndarray, k: float = 3.0) -> np.ndarray:
    """Cap upward spikes at median + k·MAD of the same hour of day over the given history.

    Client-dominated traffic has one-off bursts (a batch job, a retry storm) that a model would
    otherwise carry into the daily profile it learns. Downward values are kept: a drop is a
    level change the models must see. Uses only the values it is given (no look-ahead).
    """
    out = np.asarray(y, dtype=float).copy()
    n = len(out)
    if n < 72:
        return out
    days = n // 24
    tail = out[n - days * 24 :].reshape(days, 24)  # rows: days, columns: hour of day
    med = np.median(tail, axis=0)
    mad = 1.4826 * np.median(np.abs(tail - med), axis=0)
    # a perfectly regular hour (MAD 0) still gets a cap: 5 % of its level as the spread
    mad = np.maximum(mad, 0.05 * np.abs(med))
    cap = np.where(mad > 0, med + k * mad, np.inf)
    phase = (np.arange(n) - (n - days * 24)) % 24
    capped: np.ndarray = np.minimum(out, cap[phase])
    return capped


def prepare(name: str, y: np.ndarray) -> np.ndarray:
    """The history a model of the registry is fitted on / conditioned on."""
    spec = REGISTRY[name]
    y = np.asarray(y, dtype=float)
    if spec.max_train_h is not None:
        y = y[-spec.max_train_h :]
    return cap_spikes(y) if spec.clean else y


def _fit_one(name: str, y: np.ndarray) -> tuple[Any, str | None]:
    """Fit one series; on failure return the seasonal-naive fallback and the reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = REGISTRY[name].factory()
            model.fit(prepare(name, y))
            return model, None
        except Exception as exc:  # a bad series must not fail the panel
            fallback = _snaive24()
            fallback.fit(np.asarray(y, dtype=float))
            return fallback, f"{name} fit failed ({type(exc).__name__}: {exc}); seasonal naive"


def forward_one(
    name: str, model: Any, raw: np.ndarray, h: int, levels: list[int] | None = None
) -> tuple[dict[str, np.ndarray], Any, str | None]:
    """Forecast ``h`` steps after ``raw`` with fitted parameters, re-conditioned on ``raw``.

    Returns (result, the model used, fallback reason). A model that raises or gives
    non-finite values is replaced by seasonal naive on the raw history.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            y = prepare(name, raw)
            res = model.forward(y=y, h=h, level=levels) if levels else model.forward(y=y, h=h)
            if not np.all(np.isfinite(res["mean"])):
                raise FloatingPointError("non-finite forecast")
            return res, model, None
        except Exception as exc:
            fallback = _snaive24()
            fallback.fit(raw)
            res = (
                fallback.forward(y=raw, h=h, level=levels)
                if levels
                else fallback.forward(y=raw, h=h)
            )
            reason = f"{name} forecast failed ({type(exc).__name__}: {exc}); seasonal naive"
            return res, fallback, reason


class PanelStatsForecaster(PanelForecaster):
    """Panel-native sktime forecaster over one statsforecast model of the registry.

    Parameters
    ----------
    model : str
        registry name (``snaive24``, ``snaive168``, ``ets``, ``theta``, ``ets_theta``,
        ``mstl``, ``arima``)
    refit_every_h : str
        ``"never"``: ``update(update_params=False)`` keeps parameters (sktime's contract);
        ``"spec"``: re-estimate them when the registry's refresh rule says they are stale (the
        backtests use this to mirror regular re-fitting in production)

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from planner.forecast.models import PanelStatsForecaster
    >>> y = pd.Series(np.tile(np.arange(24.0), 5),
    ...               index=pd.date_range("2024-06-03", periods=120, freq="h"))
    >>> f = PanelStatsForecaster("snaive24").fit(y)
    >>> f.predict(fh=[1, 2]).tolist()
    [0.0, 1.0]
    """

    _cache: dict[tuple[Any, ...], dict[Any, dict[str, np.ndarray]]]

    def __init__(self, model: str = "snaive24", refit_every_h: str = "never") -> None:
        self.model = model
        self.refit_every_h = refit_every_h
        super().__init__()
        if model not in REGISTRY:
            raise ValueError(f"unknown forecaster {model!r}; registry: {sorted(REGISTRY)}")

    def _refit(self) -> None:
        results = [_fit_one(self.model, row) for row in self._values]
        self.models_ = dict(zip(self._keys, (r[0] for r in results), strict=True))
        self.fallbacks_ = {k: r[1] for k, r in zip(self._keys, results, strict=True) if r[1]}
        self.fitted_len_ = self._values.shape[1]
        self._cache = {}

    def _refit_every(self) -> int | None:
        return REGISTRY[self.model].refit_every_h

    # -- predictions --------------------------------------------------------------------------
    def _forward(self, fh: ForecastingHorizon) -> dict[Any, dict[str, np.ndarray]]:
        """Every series' forward pass with the standard levels, cached per cutoff and fh (sktime
        asks for the point forecast and the quantiles separately)."""
        steps = fh.to_relative(self.cutoff)._values.to_numpy(dtype=int)
        key = (str(self.cutoff), tuple(steps))
        if key in self._cache:
            return self._cache[key]
        h = int(steps.max())
        out: dict[Any, dict[str, np.ndarray]] = {}
        for i, series in enumerate(self._keys):
            name = "snaive24" if series in self.fallbacks_ else self.model
            res, model, reason = forward_one(
                name, self.models_[series], self._values[i], h, list(LEVELS)
            )
            if reason:
                self.models_[series] = model
                self.fallbacks_[series] = reason
            out[series] = {k: np.asarray(v)[steps - 1] for k, v in res.items()}
        self._cache[key] = out
        return out

    def _points(self, fh: ForecastingHorizon) -> np.ndarray:
        results = self._forward(fh)
        return np.concatenate([results[k]["mean"] for k in self._keys])

    def _quantile(self, fh: ForecastingHorizon, alpha: float) -> np.ndarray:
        results = self._forward(fh)
        return np.concatenate([_quantile(results[k], alpha) for k in self._keys])

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        return [{"model": "snaive24"}, {"model": "theta", "refit_every_h": "spec"}]


def _quantile(res: dict[str, np.ndarray], alpha: float) -> np.ndarray:
    """A quantile from the forward pass's symmetric intervals (interpolated between levels)."""
    if abs(alpha - 0.5) < 1e-9:
        return np.asarray(res["mean"])
    level = abs(1 - 2 * alpha) * 100
    side = "lo" if alpha < 0.5 else "hi"
    known = [0, *LEVELS]
    values = [np.asarray(res["mean"])] + [np.asarray(res[f"{side}-{lv}"]) for lv in LEVELS]
    if level >= known[-1]:
        return values[-1]
    j = int(np.searchsorted(known, level))
    w = (level - known[j - 1]) / (known[j] - known[j - 1])
    return (1 - w) * values[j - 1] + w * values[j]
