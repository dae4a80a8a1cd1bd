"""The panel-native sktime forecaster both model families extend (statsforecast's models,
:class:`planner.forecast.models.PanelStatsForecaster`, and the global LightGBM model,
:class:`planner.forecast.gbm.GlobalGBMForecaster`).

It takes a whole panel (``pd-multiindex``: series id × hourly index) in one call and keeps the
history as one array per series: ``update`` appends to it, re-estimating the parameters only
when ``update_params`` asks (sktime's contract) or, with ``refit_every_h="spec"``, when they are
stale (:func:`refit_due`). A subclass says how to fit (``_refit``), the refit age
(``_refit_every``), the point forecasts and each quantile, flattened series by series.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sktime.forecasting.base import BaseForecaster, ForecastingHorizon


def refit_due(every: int | None, hours_since_fit: int, fitted_len: int) -> bool:
    """Parameters ``every`` hours old are stale, sooner while the history is short (once it
    has grown by a quarter since the last fit, but at most daily); None: never."""
    if every is None:
        return False
    return hours_since_fit >= max(24, min(every, fitted_len // 4))


class PanelForecaster(BaseForecaster):  # type: ignore[misc]
    _tags = {  # noqa: RUF012 - sktime's tag declaration idiom
        "authors": ["sageserve"],
        "y_inner_mtype": ["pd.Series", "pd-multiindex"],
        "X_inner_mtype": "None",
        "capability:exogenous": False,
        "capability:multivariate": False,
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:insample": False,
        "capability:missing_values": False,
        "capability:update": True,
        "requires-fh-in-fit": False,
        "capability:unequal_length": False,
    }
    # The data lives in the forecaster's own arrays (`_update` appends to them), so sktime's
    # copies are not needed; saying so at the class silences sktime 1.2's FutureWarning on the
    # coming default (once per instance: 72 lines in one demo backtest).
    _config = {"remember_data": False}  # noqa: RUF012 - sktime's config declaration idiom
    # sktime's base sets these only when remember_data is on at construction; its estimator
    # checks switch it on later and expect them to start empty
    _y = None
    _X = None
    refit_every_h: str
    _cache: dict[tuple[Any, ...], Any]
    single_column: Any = None  # the column name of a single series

    # -- history as one array per series ------------------------------------------------------
    def _wide(self, y: pd.Series | pd.DataFrame) -> pd.DataFrame:
        """time × series frame of the input (one column for a single series)."""
        s = y.iloc[:, 0] if isinstance(y, pd.DataFrame) else y
        if isinstance(s.index, pd.MultiIndex):
            return s.unstack(level=0)
        return s.to_frame(self.single_column)

    def _keys_of(self, columns: pd.Index) -> list[Any]:
        return list(columns)

    def _times_of(self, index: pd.Index) -> pd.Index:
        return index

    def _fit(self, y: pd.Series | pd.DataFrame, X: None = None, fh: Any = None) -> Any:
        wide = self._wide(y)
        self._panel = isinstance(y.index, pd.MultiIndex)
        self._name = y.name if isinstance(y, pd.Series) else y.columns[0]
        self._keys = self._keys_of(wide.columns)
        self._times = self._times_of(wide.index)
        self._values = wide.to_numpy(dtype=float).T.copy()
        self._refit()
        return self

    def _refit(self) -> None:
        raise NotImplementedError

    def _refit_every(self) -> int | None:
        raise NotImplementedError

    def _update(self, y: Any, X: None = None, update_params: bool = True) -> Any:
        wide = self._wide(y).reindex(columns=self._keys)
        wide = wide[wide.index > self._times[-1]]  # callers may pass the whole history
        if len(wide):
            self._values = np.concatenate([self._values, wide.to_numpy(dtype=float).T], axis=1)
            self._times = self._times_of(self._times.append(self._times_of(wide.index)))
        self._cache = {}
        since = self._values.shape[1] - self.fitted_len_
        stale = self.refit_every_h == "spec" and refit_due(
            self._refit_every(), since, self.fitted_len_
        )
        if update_params or stale:
            self._refit()
        return self

    # -- predictions --------------------------------------------------------------------------
    def _points(self, fh: ForecastingHorizon) -> np.ndarray:
        """The point forecasts at ``fh``, series after series."""
        raise NotImplementedError

    def _quantile(self, fh: ForecastingHorizon, alpha: float) -> np.ndarray:
        """The ``alpha`` quantile at ``fh``, series after series."""
        raise NotImplementedError

    def _index(self, fh: ForecastingHorizon) -> pd.Index:
        """Output index: series × absolute horizon (built once per call, not per series)."""
        absolute: pd.Index = fh.to_absolute_index(self.cutoff)
        if not self._panel:
            return absolute
        return pd.MultiIndex.from_product([self._keys, absolute])

    def _predict(self, fh: ForecastingHorizon, X: None = None) -> pd.Series | pd.DataFrame:
        out = pd.Series(self._points(fh), index=self._index(fh), name=self._name)
        return out.to_frame() if self._panel else out

    def _predict_quantiles(
        self, fh: ForecastingHorizon, X: None, alpha: list[float]
    ) -> pd.DataFrame:
        out = pd.DataFrame({a: self._quantile(fh, a) for a in alpha}, index=self._index(fh))
        out.columns = pd.MultiIndex.from_product([list(self._get_varnames()), alpha])
        return out
