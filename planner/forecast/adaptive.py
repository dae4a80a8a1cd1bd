"""A conformal band that adapts to day-level shocks (issue #18), strictly out of sample.

On the unseen ServeGen logs the 95 % band's misses cluster by day: a surprise shared by the
series of a log. The split-conformal band (:mod:`planner.forecast.calibration`) treats every
hour of its folds as exchangeable, so it cannot react to a shock. Two ways of letting the band
react, both a *spread factor* θ per origin applied to the log-residual quantiles around their
median (``q'_τ = q_0.5 + θ · (q_τ − q_0.5)``, :meth:`ResidualQuantiles.spread_by`), θ made
only from origins before the forecast's origin:

* ``recent`` (a recent-level-error state): the mean absolute log residual of the last
  ``window_h`` hours before the origin (the previous fold's last leads, all realised at the
  origin) over the mean at those leads of every earlier fold, raised to ``beta``, clipped to
  [``lo``, ``hi``]: a band that widens after a surprise and narrows after a calm spell.
* ``aci`` (adaptive conformal inference, Gibbs & Candès 2021, on the band's scale): after each
  origin, θ ← clip(θ · exp(γ · (miss − α))), with ``miss`` the share of the origin's conformal
  points outside the (adapted) 95 % band and α = 0.05.

``scope`` pools the state over the series itself (``own``), its peer group (``peer``: tier and
metric, the chunk a selection calibrates together) or every series of the hours given
(``log``: a shock shared by a log); the state is kept per forecaster.

Measured (README, Forecasting): neither beats the plain band on the tuning log (m-mid) nor on
the unseen logs (m-large): the shocks do not persist from one day to the next, so a band that
widens after one is wider on the calm day that follows. Off by default; ``bench/
forecast_accuracy.py --bands`` re-calibrates a selection's rows with each.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

KINDS = ("recent", "aci")
SCOPES = ("own", "peer", "log")


@dataclass(frozen=True)
class BandAdapt:
    """Which adaptive band, and its settings (defaults: the m-mid picks, README)."""

    kind: str
    scope: str = "log"
    window_h: int = 6
    beta: float = 0.5
    gamma: float = 1.0
    alpha: float = 0.05
    lo: float = 0.5
    hi: float = 3.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"band adaptation {self.kind!r}: expected one of {KINDS}")
        if self.scope not in SCOPES:
            raise ValueError(f"band adaptation scope {self.scope!r}: expected one of {SCOPES}")
        if not 0 < self.lo <= 1 <= self.hi:
            raise ValueError(f"band adaptation bounds [{self.lo}, {self.hi}] must contain 1")

    @classmethod
    def parse(cls, spec: str) -> BandAdapt:
        """``"recent"``, ``"aci"`` or with settings: ``"aci:scope=peer/gamma=3"`` (settings
        split on "/", so a list of bands can be split on ",")."""
        kind, _, rest = spec.partition(":")
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, object] = {}
        for item in filter(None, rest.split("/")):
            name, _, raw = item.partition("=")
            if name not in types or name == "kind":
                raise ValueError(f"band adaptation {spec!r}: unknown setting {name!r}")
            kind_of = types[name]
            values[name] = raw if kind_of == "str" else int(raw) if kind_of == "int" else float(raw)
        return cls(kind, **values)  # type: ignore[arg-type]


class SpreadState:
    """The spread factor per scope and forecaster, fed one origin at a time, in order.

    :meth:`factor` reads only what :meth:`close_origin` has committed; the rows of the
    current origin are held back (:meth:`observe`) until the caller closes it, after every
    band of that origin is made."""

    def __init__(self, adapt: BandAdapt, peer_of: dict[str, str] | None = None) -> None:
        self.adapt = adapt
        self.peer_of = peer_of or {}
        # recent: per key, per closed origin (mean |r| of its last window_h leads, count)
        self._recent: dict[tuple[str, str], list[tuple[float, int]]] = {}
        self._theta: dict[tuple[str, str], float] = {}  # aci
        self._pending: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray | None]]] = {}

    def key(self, series: str, forecaster: str) -> tuple[str, str]:
        scope = self.adapt.scope
        where = series if scope == "own" else "log" if scope == "log" else self.peer_of[series]
        return where, forecaster

    def factor(self, series: str, forecaster: str) -> float:
        a, k = self.adapt, self.key(series, forecaster)
        if a.kind == "aci":
            return self._theta.get(k, 1.0)
        past = self._recent.get(k, [])
        if len(past) < 2:
            return 1.0
        total = sum(m * n for m, n in past)
        count = sum(n for _, n in past)
        last = past[-1][0]
        if count == 0 or total <= 0 or not np.isfinite(last):
            return 1.0
        return float(np.clip((last / (total / count)) ** a.beta, a.lo, a.hi))

    def observe(
        self,
        series: str,
        forecaster: str,
        residuals: np.ndarray,
        leads: np.ndarray,
        hits: np.ndarray | None,
        horizon: int,
    ) -> None:
        """One (series, forecaster)'s rows at the current origin: log residuals and leads of
        its known hours, and (conformal rows only, else None) whether each was in the band."""
        k = self.key(series, forecaster)
        late = np.abs(residuals[leads > horizon - self.adapt.window_h])
        self._pending.setdefault(k, []).append((late, hits))

    def close_origin(self) -> None:
        a = self.adapt
        for k, parts in self._pending.items():
            late = np.concatenate([p for p, _ in parts])
            if len(late):  # an origin without a known late hour leaves the state as it was
                self._recent.setdefault(k, []).append((float(late.mean()), len(late)))
            hit_parts = [h for _, h in parts if h is not None and len(h)]
            if hit_parts:
                miss = 1.0 - float(np.concatenate(hit_parts).mean())
                theta = self._theta.get(k, 1.0) * np.exp(a.gamma * (miss - a.alpha))
                self._theta[k] = float(np.clip(theta, a.lo, a.hi))
        self._pending = {}


__all__ = ["BandAdapt", "SpreadState"]
