"""A conformal band that adapts to day-level shocks (issue #18), strictly out of sample.

On the unseen ServeGen logs the 95 % band's misses cluster by day: a surprise shared by the
series of a log. The split-conformal band (:mod:`planner.forecast.calibration`) treats every
hour of its folds as exchangeable, so it cannot react to a shock. Three ways of letting the
band react. The first two are a *spread factor* θ per origin applied to the log-residual
quantiles around their median (``q'_τ = q_0.5 + θ · (q_τ − q_0.5)``,
:meth:`ResidualQuantiles.spread_by`), θ made only from origins before the forecast's origin:

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

* ``level`` (session 29: ACI as Gibbs & Candès state it, on the miscoverage level, per
  scope key × forecaster × lead h): α_h ← α_h + γ · (α − err_h) once a forecast's hour at
  lead h is over, ``err_h`` the share of that origin's points at lead h (one per series of the
  key) outside the 95 % band, α_h kept in [``lo`` · α, ``hi`` · α]; the band at lead h takes
  its tail levels scaled by α_h / α (:func:`~planner.forecast.calibration.tail_levels`: the
  2.5 % and 97.5 % quantiles become α_h/2 and 1 − α_h/2). A row counts only once its target
  hour is before the origin being banded (:meth:`LevelState.advance`), whatever the step
  between origins.

* ``stud`` (session 30: a studentized conformal band): each residual is divided by the local
  scale σ its key had at the residual's own origin, the band's quantiles are taken of these
  scores and multiplied back by σ at the forecast's origin. σ = (mean |log residual| of the
  key's hours in the ``window_h`` hours before the origin) / (mean |log residual| of all its
  hours before the origin), clipped to [``lo``, ``hi``] (1 until the key has a realised
  hour); only hours already over count (:class:`ScaleState`). Scope ``tier``: every series
  of the tier (any metric, any region), as the misses of m-large seed 11 were tier-wide.

Measured (README, Forecasting): neither ``recent`` nor ``aci`` beats the plain band on the
tuning log (m-mid) nor on the unseen logs (m-large): the shocks do not persist from one day
to the next, so a band that widens after one is wider on the calm day that follows. ``level``
moves coverage by ≤ 0.4 points; ``stud`` misses the coverage floor on m-mid at most settings
and costs 9-335 % pinball on m-large (σ multiplies log quantiles: the upper edge grows
exponentially). Off by default; ``bench/forecast_accuracy.py --bands`` re-calibrates a
selection's rows with each.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TypeVar

import numpy as np

KINDS = ("recent", "aci", "level", "stud")
SCOPES = ("own", "peer", "tier", "log")


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

    def scope_key(self, series: str, peer_of: dict[str, str]) -> str:
        if self.scope == "tier":
            return peer_of[series].split("|")[0]
        return series if self.scope == "own" else "log" if self.scope == "log" else peer_of[series]


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
        return self.adapt.scope_key(series, self.peer_of), forecaster

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


_HOUR = np.timedelta64(1, "h")


def target_hours(origin: object, leads: np.ndarray) -> np.ndarray:
    """The hour each lead forecasts from ``origin`` (lead 1: the origin's own hour)."""
    at = np.datetime64(origin, "ns")  # type: ignore[call-overload]
    out: np.ndarray = at + (leads.astype(np.int64) - 1) * _HOUR
    return out


K = TypeVar("K")
Queued = list[tuple[K, tuple[np.ndarray, ...]]]  # (owner, (target hours, aligned arrays ...))


def realised(queue: Queued[K], origin: object) -> tuple[Queued[K], Queued[K]]:
    """Queued rows split by target hour (each entry's first array): those before ``origin``
    and those still to come, every array of an entry cut alike (an entry with no row on a
    side is left out of it). Every band state holds its rows back this way."""
    now = np.datetime64(origin, "ns")  # type: ignore[call-overload]
    over: Queued[K] = []
    waiting: Queued[K] = []
    for owner, arrays in queue:
        done = arrays[0] < now
        if done.any():
            over.append((owner, tuple(a[done] for a in arrays)))
        if not done.all():
            waiting.append((owner, tuple(a[~done] for a in arrays)))
    return over, waiting


class LevelState:
    """ACI's miscoverage level α_h per scope key × forecaster × lead (module docstring, kind
    ``level``). :meth:`tails` reads only updates from rows whose target hour was before the
    last :meth:`advance`; :meth:`observe` queues an origin's rows until then."""

    def __init__(
        self, adapt: BandAdapt, horizon: int, peer_of: dict[str, str] | None = None
    ) -> None:
        self.adapt, self.horizon = adapt, horizon
        self.peer_of = peer_of or {}
        self._alpha: dict[tuple[str, str], np.ndarray] = {}  # per key: α_h for h = 1..horizon
        # queued rows: ((forecast origin, key), (target hours, leads, in band))
        self._queue: Queued[tuple[np.datetime64, tuple[str, str]]] = []

    def tails(self, series: str, forecaster: str) -> np.ndarray | None:
        """α_h / α per lead (None: no update yet, the plain levels)."""
        alpha = self._alpha.get((self.adapt.scope_key(series, self.peer_of), forecaster))
        return None if alpha is None else alpha / self.adapt.alpha

    def observe(
        self, series: str, forecaster: str, origin: object, leads: np.ndarray, hits: np.ndarray
    ) -> None:
        """One (series, forecaster)'s conformal rows at ``origin``: leads and whether each
        actual was inside the 95 % band."""
        at = np.datetime64(origin, "ns")  # type: ignore[call-overload]
        key = (self.adapt.scope_key(series, self.peer_of), forecaster)
        target = target_hours(origin, leads)
        self._queue.append(((at, key), (target, leads.astype(int), hits.astype(bool))))

    def advance(self, origin: object) -> None:
        """Update α with every queued row whose target hour is before ``origin``, one forecast
        origin after another (rows still in the future stay queued)."""
        over, self._queue = realised(self._queue, origin)
        misses: dict[tuple[np.datetime64, tuple[str, str]], list[tuple[np.ndarray, np.ndarray]]]
        misses = {}
        for at_key, (_, leads, hits) in over:
            misses.setdefault(at_key, []).append((leads, ~hits))
        a, h = self.adapt, self.horizon
        for (_, key), parts in sorted(misses.items(), key=lambda kv: kv[0][0]):
            lead = np.concatenate([p[0] for p in parts]) - 1
            miss = np.concatenate([p[1] for p in parts]).astype(float)
            n = np.bincount(lead, minlength=h)
            err = np.bincount(lead, miss, minlength=h)[n > 0] / n[n > 0]
            alpha = self._alpha.setdefault(key, np.full(h, a.alpha))
            alpha[n > 0] += a.gamma * (a.alpha - err)
            np.clip(alpha, a.lo * a.alpha, a.hi * a.alpha, out=alpha)


class ScaleState:
    """The studentized band's local scale σ per scope key × forecaster (module docstring,
    kind ``stud``). :meth:`sigma` reads only rows whose target hour was before the last
    :meth:`advance`; :meth:`observe` queues an origin's rows until then."""

    def __init__(self, adapt: BandAdapt, peer_of: dict[str, str] | None = None) -> None:
        self.adapt, self.peer_of = adapt, peer_of or {}
        self._queue: Queued[tuple[str, str]] = []
        self._over: dict[tuple[str, str], list[tuple[np.ndarray, np.ndarray]]] = {}
        self._now: np.datetime64 | None = None
        self._sigma: dict[tuple[str, str], float] = {}

    def observe(
        self, series: str, forecaster: str, origin: object, residuals: np.ndarray, leads: np.ndarray
    ) -> None:
        key = (self.adapt.scope_key(series, self.peer_of), forecaster)
        self._queue.append((key, (target_hours(origin, leads), np.abs(residuals))))

    def advance(self, origin: object) -> None:
        """Rows whose target hour is before ``origin`` join the realised hours."""
        self._now = np.datetime64(origin, "ns")  # type: ignore[call-overload]
        over, self._queue = realised(self._queue, origin)
        for key, (target, size) in over:
            self._over.setdefault(key, []).append((target, size))
        self._sigma = {}

    def sigma(self, series: str, forecaster: str) -> float:
        """σ of the series' key at the last :meth:`advance`'s origin."""
        key = (self.adapt.scope_key(series, self.peer_of), forecaster)
        if key not in self._sigma:
            self._sigma[key] = self._local(self._over.get(key, []))
        return self._sigma[key]

    def _local(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> float:
        if not parts or self._now is None:
            return 1.0
        target = np.concatenate([t for t, _ in parts])
        size = np.concatenate([s for _, s in parts])
        recent = target >= self._now - self.adapt.window_h * _HOUR
        overall = float(size.mean())
        if not recent.any() or not overall > 0:
            return 1.0
        ratio = float(size[recent].mean()) / overall
        return float(np.clip(ratio, self.adapt.lo, self.adapt.hi))


__all__ = ["BandAdapt", "LevelState", "ScaleState", "SpreadState", "realised", "target_hours"]
