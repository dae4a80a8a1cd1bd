"""Quantiles from out-of-sample residuals (split-conformal), in log space.

For a forecaster and a series, the backtest leaves residuals ``r = log((y + c) / (ŷ + c))``
of every hour of every fold, where ``c`` (the offset) is 5 % of the series' mean level so zero
hours stay finite (in a backtest, the level over the hours before each fold's origin:
:func:`levels_before`; at selection time, before the selection's ``as_of``). A quantile τ
of a new point forecast ŷ is then

    q_τ = (ŷ + c) · exp(Q_τ(r)) − c,   clipped at 0,

with ``Q_τ`` the conformal (finite-sample corrected) empirical quantile of the pooled residuals.
Working in log space makes the band scale with the level, as demand noise does. The residuals
only ever come from folds whose origin precedes the forecast's origin.

Per hour ahead (issue #15): the error of a forecast grows with its lead, and only the first
hours of a plan are carried out, so a band pooled over leads 1..24 is too wide where it is
used and too narrow at the far end. ``ResidualQuantiles.fit`` given each residual's lead ``h``
fits ``Q_τ`` per lead from that lead's residuals (own and peers mixed as below) and a forecast
at lead h is widened by its own lead's quantiles; a lead with fewer than
``MIN_PER_HORIZON`` residuals (own + peers) uses the pooled band.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.forecast.mixture import mixture_quantiles
from planner.forecast.series import SeriesKey
from planner.quantiles import QUANTILES

OFFSET_SHARE = 0.05
MIN_PER_HORIZON = 20


def offset_for(level: float) -> float:
    return max(OFFSET_SHARE * float(level), 1e-6)


def levels_before(observed: pd.DataFrame, origins: pd.DatetimeIndex) -> pd.DataFrame:
    """Each series' mean observed level over the hours before each origin (index: origins,
    columns: series; 0 where nothing was observed): what an offset made at that origin may
    read. A backtest origin's offset must not see the hours after it."""
    values = observed.to_numpy(dtype=float)
    seen = np.isfinite(values)
    zero = np.zeros((1, values.shape[1]))
    total = np.vstack([zero, np.cumsum(np.where(seen, values, 0.0), axis=0)])
    count = np.vstack([zero, np.cumsum(seen, axis=0)])
    at = pd.DatetimeIndex(observed.index).searchsorted(origins)
    mean = np.where(count[at] > 0, total[at] / np.maximum(count[at], 1), 0.0)
    return pd.DataFrame(mean, index=origins, columns=observed.columns)


def offsets_at(observed: pd.DataFrame, origins: pd.DatetimeIndex) -> pd.DataFrame:
    """The calibration offset ``c`` of every series at every origin (index: origins, columns:
    series), the one definition the backtest (each fold's origin), the selection (its
    ``as_of``: the offset its stored bands are applied at) and the hourly forecast use:
    ``OFFSET_SHARE`` × the series' mean level over the hours before the origin
    (:func:`levels_before`). A series with nothing positive before the origin (quiet, or not
    started yet) takes the median level of its peer group (tier × metric) there, and if the
    whole group is quiet, the median level of its metric over every tier: a 1e-6 offset would
    turn its first demand into a log residual of ~+18 and carry it into every pooled band,
    and its live band would be applied at another offset than it was made. Only a metric
    with nothing positive anywhere keeps the 1e-6 floor."""
    wide = levels_before(observed, origins)
    keys = [SeriesKey.parse(str(s)) for s in wide.columns]
    positive = wide.where(wide > 0)
    level = positive
    for group in ([f"{k.tier}|{k.metric}" for k in keys], [k.metric for k in keys]):
        level = level.fillna(positive.T.groupby(pd.Index(group)).transform("median").T)
    return (OFFSET_SHARE * level.fillna(0.0)).clip(lower=offset_for(0.0))


def offsets_now(observed: pd.DataFrame) -> pd.Series:
    """:func:`offsets_at` an origin right after the panel's last hour (every hour read)."""
    index = pd.DatetimeIndex(observed.index)
    end = index[-1] + pd.Timedelta(hours=1) if len(index) else pd.Timestamp(0)
    return offsets_at(observed, pd.DatetimeIndex([end])).iloc[0]


def log_residuals(actual: np.ndarray, point: np.ndarray, offset: float) -> np.ndarray:
    ok = np.isfinite(actual) & np.isfinite(point)
    out: np.ndarray = np.log((actual[ok] + offset) / (np.maximum(point[ok], 0.0) + offset))
    return out


@dataclass(frozen=True)
class Sample:
    """Residuals sorted once for repeated mixing: pooled and per lead (``by_lead[h]``)."""

    pooled: np.ndarray
    by_lead: dict[int, np.ndarray]

    @classmethod
    def of(cls, residuals: np.ndarray, horizons: np.ndarray | None = None) -> Sample:
        values = np.asarray(residuals, dtype=float)
        by_lead: dict[int, np.ndarray] = {}
        if horizons is not None:
            lead = np.asarray(horizons, dtype=int)
            if len(lead) != len(values):
                raise ValueError("one lead per residual expected")
            order = np.lexsort((values, lead))  # by lead, then value
            lead_sorted, values_sorted = lead[order], values[order]
            cuts = np.flatnonzero(np.diff(lead_sorted)) + 1
            for part_lead, part in zip(
                np.split(lead_sorted, cuts), np.split(values_sorted, cuts), strict=True
            ):
                if len(part):
                    by_lead[int(part_lead[0])] = part
        return cls(np.sort(values, kind="stable"), by_lead)

    def __len__(self) -> int:
        return len(self.pooled)

    def at_lead(self, h: int) -> np.ndarray:
        return self.by_lead.get(h, _EMPTY)

    @property
    def top_lead(self) -> int:
        return max(self.by_lead, default=0)


_EMPTY = np.empty(0)


@dataclass(frozen=True)
class Pooling:
    """How a band pools residuals (measured in the README's #18 section; defaults: the
    band in use). ``own_weight``: the series' own residuals' share of the mixture (the rest:
    its peer group's); ``group``: the peer group, ``tier_metric`` (same tier and metric),
    ``metric`` (same metric, any tier), ``tier`` (same tier, any metric) or ``all``;
    ``tail``: each tail's level scaled by it (τ < 0.5 → τ·tail, τ > 0.5 → 1 − (1 − τ)·tail;
    < 1 widens the band)."""

    own_weight: float = 0.5
    group: str = "tier_metric"
    tail: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.own_weight <= 1.0:
            raise ValueError(f"pooling own_weight {self.own_weight} must be in [0, 1]")
        if self.group not in GROUPS:
            raise ValueError(f"pooling group {self.group!r}: expected one of {GROUPS}")
        if not 0.0 < self.tail <= 2.0:
            raise ValueError(f"pooling tail {self.tail} must be in (0, 2]")

    def levels(self, taus: Sequence[float]) -> tuple[float, ...]:
        """The levels actually taken for ``taus``."""
        return tail_levels(taus, self.tail)

    @classmethod
    def parse(cls, spec: str) -> Pooling:
        """``"pool:own=0.25/group=metric/tail=0.8"`` (settings split on "/")."""
        names = {"own": "own_weight", "group": "group", "tail": "tail"}
        values: dict[str, object] = {}
        for name, raw in spec_settings(spec, "pool", tuple(names)).items():
            values[names[name]] = raw if name == "group" else float(raw)
        return cls(**values)  # type: ignore[arg-type]


def spec_settings(spec: str, kind: str, names: tuple[str, ...]) -> dict[str, str]:
    """``"kind:a=1/b=x"`` as {a: "1", b: "x"} (a bench's band option): an error names the
    spec and the unknown kind or setting."""
    got, _, rest = spec.partition(":")
    if got != kind:
        raise ValueError(f"band {spec!r}: expected '{kind}:...'")
    values: dict[str, str] = {}
    for item in filter(None, rest.split("/")):
        name, _, raw = item.partition("=")
        if name not in names:
            raise ValueError(f"band {spec!r}: unknown setting {name!r} (one of {names})")
        values[name] = raw
    return values


GROUPS = ("tier_metric", "metric", "tier", "all")


def peer_group(series_id: str, group: str = "tier_metric") -> str:
    """Series that share tier and metric calibrate together (see calibration); ``group``
    (:class:`Pooling`) may pool wider."""
    key = SeriesKey.parse(series_id)
    if group in ("metric", "tier"):
        return key.metric if group == "metric" else key.tier
    if group == "all":
        return "all"
    return f"{key.tier}|{key.metric}"


def tail_levels(taus: Sequence[float], tail: float) -> tuple[float, ...]:
    """Each tail's probability scaled by ``tail``: τ < 0.5 → τ·tail, τ > 0.5 → 1 − (1 − τ)·tail
    (kept on its side of the median); ``tail`` 1 gives ``taus`` as they are."""
    if tail == 1.0:
        return tuple(taus)
    return tuple(
        min(t * tail, 0.5) if t < 0.5 else max(1 - (1 - t) * tail, 0.5) if t > 0.5 else t
        for t in taus
    )


@dataclass(frozen=True)
class ResidualQuantiles:
    """Log-residual quantiles of one series and forecaster, ready to widen point forecasts."""

    offset: float
    levels: tuple[float, ...]
    values: tuple[float, ...]
    n: int
    # per lead h = 1..len: that lead's quantiles (None: the pooled band at every lead)
    by_horizon: tuple[tuple[float, ...], ...] | None = None

    @classmethod
    def fit(
        cls,
        residuals: np.ndarray,
        offset: float,
        levels: Sequence[float] = QUANTILES,
        peers: np.ndarray | None = None,
        horizons: np.ndarray | None = None,
        peer_horizons: np.ndarray | None = None,
    ) -> ResidualQuantiles:
        """Pooled quantiles; with ``horizons`` (the lead of each residual, and of each peer
        residual in ``peer_horizons``) also per lead 1..max (module docstring)."""
        peers = np.empty(0) if peers is None else peers
        if horizons is not None:
            h_peer = np.empty(0, dtype=int) if peer_horizons is None else peer_horizons
            if len(horizons) != len(residuals) or len(h_peer) != len(peers):
                raise ValueError("one lead per residual expected")
            return cls.fit_samples(
                Sample.of(residuals, horizons), Sample.of(peers, h_peer), offset, levels, True
            )
        return cls.fit_samples(Sample.of(residuals), Sample.of(peers), offset, levels, False)

    @classmethod
    def fit_samples(
        cls,
        own: Sample,
        peers: Sample,
        offset: float,
        levels: Sequence[float] = QUANTILES,
        by_horizon: bool = True,
        pool: Pooling | None = None,
    ) -> ResidualQuantiles:
        """:meth:`fit` from residuals already sorted (a peer group's :class:`Sample` is made
        once per origin and shared by every series of the group). ``pool``: how own and peer
        residuals mix and which levels are taken (default: the equal mixture, levels as is)."""
        if len(own) + len(peers) == 0:
            raise ValueError("no residuals to calibrate on")
        pool = pool or Pooling()

        def mix(a: np.ndarray, b: np.ndarray) -> tuple[float, ...]:
            taken = tail_levels(levels, pool.tail)
            return tuple(mixture_quantiles(a, b, taken, True, pool.own_weight))

        pooled = mix(own.pooled, peers.pooled)
        rows = []
        if by_horizon:
            for h in range(1, max(own.top_lead, peers.top_lead) + 1):
                own_h, peer_h = own.at_lead(h), peers.at_lead(h)
                if len(own_h) + len(peer_h) >= MIN_PER_HORIZON:
                    rows.append(mix(own_h, peer_h))
                else:  # a thin lead: the band pooled over leads
                    rows.append(pooled)
        return cls(offset, tuple(levels), pooled, len(own) + len(peers), tuple(rows) or None)

    def at(self, h: np.ndarray) -> np.ndarray:
        """[len(h), levels]: the log-residual quantiles for forecasts at leads ``h`` (≥ 1)."""
        by_h = self.by_horizon
        lead = np.asarray(h, dtype=int)
        if not by_h:
            return np.broadcast_to(np.asarray(self.values), (len(lead), len(self.values)))
        table = np.asarray(by_h, dtype=float)
        out: np.ndarray = table[np.clip(lead, 1, len(table)) - 1]
        return out

    def apply(self, point: np.ndarray, h: np.ndarray | None = None) -> dict[float, np.ndarray]:
        """Quantiles of ``point``; ``h`` the lead of each value (default 1, 2, … in order)."""
        point = np.asarray(point, dtype=float)
        lead = np.arange(1, len(point) + 1) if h is None else np.asarray(h)
        base = np.maximum(point, 0.0) + self.offset
        table = self.at(lead) if point.ndim == 1 else None
        return {
            tau: np.maximum(base * np.exp(v if table is None else table[:, i]) - self.offset, 0.0)
            for i, (tau, v) in enumerate(zip(self.levels, self.values, strict=True))
        }

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "offset": self.offset,
            "n": self.n,
            "quantiles": dict(zip(map(str, self.levels), self.values, strict=True)),
        }
        by_h = self.by_horizon
        if by_h:
            out["by_horizon"] = [dict(zip(map(str, self.levels), v, strict=True)) for v in by_h]
        return out


def residuals_for(
    hours: pd.DataFrame,
    series: str,
    forecaster: str,
    group_series: list[str],
    offset: float,
    by_horizon: bool = True,
    column: str = "log_residual",
) -> ResidualQuantiles | None:
    """Residual quantiles of a series' chosen forecaster from every backtest fold, mixed with
    its peer group's (see :mod:`planner.forecast.calibration`), per hour ahead when
    ``by_horizon``. ``hours`` carries each row's log residual computed with its own series'
    offset, and its lead ``h``; ``offset``: the series' at the selection (:func:`offsets_at`),
    the one its band is applied at; ``column``: which residuals (``nowcast_log_residual``:
    those of the backtest's nowcasts)."""
    if hours.empty or column not in hours:
        return None
    sel = hours[(hours["forecaster"] == forecaster) & hours[column].notna()]
    mine = sel["series"] == series
    peers = sel["series"].isin(group_series)
    own = sel.loc[mine, column].to_numpy()
    peer = sel.loc[peers, column].to_numpy()
    if len(own) + len(peer) == 0:
        return None
    leads = [sel.loc[rows, "h"].to_numpy(dtype=int) for rows in (mine, peers)]
    return ResidualQuantiles.fit(
        own, offset, QUANTILES, peer, *(leads if by_horizon else (None, None))
    )
