"""The day-shift band (issue #18): a conformal band that knows errors are shared by a day.

A fold's log residual at lead h is read as ``bias + day level + within-day part``. The day
level at h is the fold's mean residual over the leads within ``width`` of h (a window mean);
the within-day part is the residual less it; the bias is the mean of the series' fold means
(own and its peer group's, half each). The misses of the band in use come from days whose level
moved (README, "Where the 95 % band misses"): a peer group of 3 series with 2-5 earlier folds
has seen 3-12 such moves, too few to size them. Here the moves are pooled wider: a **day
shift** is the change of a fold's window mean from one fold of a series to its next, ÷ √2
(the change of two independent day levels has twice their variance), and the shifts of every
series of the selection (``pool``: or of the series' metric, tier, tier × metric) with that
forecaster are one sample per lead, gathered across every selection chunk (a chunk is one peer
group: :func:`planner.forecast.pipeline.select_models` bands a second time once every chunk
is backtested, with the :class:`DayShifts` of them all).

The band at lead h: the quantiles of ``within + shift + bias``, the within-day deviations'
quantiles (own and peers mixed per lead as in use, :class:`.ResidualQuantiles`, on a grid of
``grid`` levels) convolved with the day shifts' (on the same grid). Only folds wholly over
before an origin give day shifts there (:meth:`DayShifts.before`); the within-day part counts
a residual once its target hour is over, as every band does.

**The predictive band** (``DayShift.predictive``; ``"off"``: as above). A new fold's residual
at lead h is ``b + D + W`` (bias, day level, within-day part); the band adds back
``b̂ = b + ē`` with ``ē`` the error of the bias, a mean over the k folds (days) the series
has seen (own and peers, half each: the peers' folds are the same days, and a tier-wide day
moves them alike, so they add no day to it). What the band must cover is
``r − b̂ = (D − ē) + W``. With day levels of variance σ² shared by a day,
``Var(ē) = σ²/k`` and ``D`` is independent of the earlier days, so
``Var(D − ē) = σ² (1 + 1/k)``: the day-shift quantiles (which stand for ``D``: a shift
is a difference of two day levels ÷ √2, variance σ²) are widened by ``√(1 + 1/k)``
(``"bias"``; exact for Gaussian day levels, k = the series' own folds wholly over). That takes σ
as known; it is estimated from the day shifts over, and with few of them that estimate is
itself uncertain. For Gaussian levels with σ estimated on ν degrees of freedom
(``σ² | s² ~ ν s²/χ²_ν``) a new level is ``s · Z · √(ν/χ²_ν)`` = ``s · t_ν``: the shift
quantiles (which stand for ``s · Z``) are mixed with an independent scale
``R = √(ν/χ²_ν)`` (the product's quantiles on the grid: exactly Student's t when the shifts
are Gaussian, the shifts' own shape otherwise). ``"shifts"``: ν = the day shifts over
(every series' own move: independent days per series); ``"days"``: ν = the distinct days
those shifts end on (a tier-wide move counted once). Both also carry the bias term. The
mixture needs ν ≥ 3 (``MIN_DOF``): at the 49-level grid's first level the scale R is 78
for ν = 1 and 9.9 for ν = 2 (5.1 for ν = 3), tails that multiply the shifts many times over,
so with fewer the band carries the bias's widening alone (as ``"bias"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

import numpy as np
import pandas as pd
from scipy.stats import chi2

from planner.forecast.calibration import (
    GROUPS,
    ResidualQuantiles,
    Sample,
    peer_group,
    spec_settings,
)
from planner.quantiles import QUANTILES

Residuals = list[tuple[np.ndarray, np.ndarray]]  # (log residuals, their leads) per fold
PREDICTIVE = ("off", "bias", "shifts", "days")  # DayShift.predictive (module docstring)
MIN_DOF = 3  # the scale mixture's fewest degrees of freedom (module docstring)
_HOUR = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class DayShift:
    """The day-shift band's settings (module docstring): ``width`` (the day level at h is the
    mean over leads h ± width), ``pool`` (whose day shifts a series takes: ``all``, ``metric``,
    ``tier``, ``tier_metric``), ``min_shifts`` and ``min_days`` (fewer shifts, or fewer
    distinct days they end on, before an origin: the band in use; every series of a pool
    gives a shift from one pair of days), ``grid`` (levels each side of the convolution is
    taken at), ``predictive`` (the bias's error and the shifts' own scale uncertainty in the
    band: module docstring)."""

    width: int = 6
    pool: str = "all"
    min_shifts: int = 5
    min_days: int = 1
    grid: int = 49
    predictive: str = "off"

    def __post_init__(self) -> None:
        if self.width < 0:
            raise ValueError(f"day shift width {self.width} must be >= 0")
        if self.pool not in GROUPS:
            raise ValueError(f"day shift pool {self.pool!r}: expected one of {GROUPS}")
        if min(self.min_shifts, self.min_days) < 1 or self.grid < 3:
            raise ValueError("day shift: min_shifts, min_days >= 1 and grid >= 3 expected")
        if self.predictive not in PREDICTIVE:
            raise ValueError(f"day shift predictive {self.predictive!r}: one of {PREDICTIVE}")

    @classmethod
    def parse(cls, spec: str) -> DayShift:
        """``"dayshift:width=6/pool=metric"`` (settings split on "/")."""
        names = ("width", "pool", "min_shifts", "min_days", "grid", "predictive")
        values: dict[str, object] = {}
        for name, raw in spec_settings(spec, "dayshift", names).items():
            try:
                values[name] = raw if name in ("pool", "predictive") else int(raw)
            except ValueError:
                raise ValueError(f"day shift {spec!r}: {name} must be an integer") from None
        return cls(**values)  # type: ignore[arg-type]

    @property
    def levels(self) -> np.ndarray:
        """The grid: midpoints of ``grid`` equal slices of (0, 1)."""
        return (np.arange(self.grid) + 0.5) / self.grid


def window_means(res: np.ndarray, lead: np.ndarray, width: int) -> np.ndarray:
    """A fold's day level at each lead 0..its last (index = lead; NaN where no residual is
    within ``width``): the mean of its residuals at leads h ± width."""
    total = np.bincount(lead, weights=res)
    count = np.bincount(lead).astype(float)
    out: np.ndarray = _windowed(total[None, :], count[None, :], width)[0]
    return out


def _windowed(total: np.ndarray, count: np.ndarray, width: int) -> np.ndarray:
    """Row-wise window means over columns c ± width (NaN where the window is empty)."""
    pad = ((0, 0), (1, 0))
    csum, ccount = np.pad(np.cumsum(total, axis=1), pad), np.pad(np.cumsum(count, axis=1), pad)
    cols = np.arange(total.shape[1])
    hi, lo = np.minimum(cols + width + 1, total.shape[1]), np.maximum(cols - width, 0)
    n = ccount[:, hi] - ccount[:, lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = np.where(n > 0, (csum[:, hi] - csum[:, lo]) / n, np.nan)
    return out


@dataclass
class DayShifts:
    """Every day shift of a selection (all its chunks), per forecaster and pool key: when it
    is known (the later fold's last target hour is over) and its value at leads 1..``leads``
    (the backtest's horizon: the longest lead of its rows)."""

    setting: DayShift
    leads: int = 0
    known: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (name, key)
    shifts: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # [n, leads]
    _cache: dict[tuple[object, str, str], tuple[np.ndarray, np.ndarray] | None] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def of(cls, hours: pd.DataFrame, setting: DayShift) -> DayShifts:
        """From backtest rows (``series``, ``forecaster``, ``origin``, ``h``, ``log_residual``:
        each row's residual at its own origin's offset, as
        :func:`planner.forecast.bands.calibrate` leaves them)."""
        rows = hours[hours["log_residual"].notna() & (hours["h"] >= 1)]
        out = cls(setting, int(rows["h"].max()) if len(rows) else 0)
        if rows.empty:
            return out
        keys = ["series", "forecaster", "origin"]
        folds = rows.groupby(keys, sort=True)
        code = folds.ngroup().to_numpy()
        lead = rows["h"].to_numpy(dtype=int)
        shape = (folds.ngroups, out.leads + 1)
        total, count = np.zeros(shape), np.zeros(shape)
        np.add.at(total, (code, lead), rows["log_residual"].to_numpy(dtype=float))
        np.add.at(count, (code, lead), 1.0)
        level = _windowed(total, count, setting.width)[:, 1:]
        fold = folds.size().reset_index()[keys]
        last = hours.groupby(keys, sort=True)["h"].max().reindex(pd.MultiIndex.from_frame(fold))
        over = pd.DatetimeIndex(fold["origin"]) + last.to_numpy() * _HOUR  # first hour after
        same = (fold["series"].to_numpy()[1:] == fold["series"].to_numpy()[:-1]) & (
            fold["forecaster"].to_numpy()[1:] == fold["forecaster"].to_numpy()[:-1]
        )
        shift = (level[1:] - level[:-1])[same] / np.sqrt(2.0)
        later = fold.iloc[1:][same]
        pool = [peer_group(s, setting.pool) for s in later["series"]]
        known = over[1:][same].to_numpy()
        by = pd.DataFrame({"name": later["forecaster"].to_numpy(), "key": pool})
        for pair, idx in by.groupby(["name", "key"]).indices.items():
            name, key = (str(v) for v in cast(tuple[str, str], pair))
            out.known[(name, key)] = known[idx]
            out.shifts[(name, key)] = shift[idx]
        return out

    def before(
        self, origin: object, name: str, series: str
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The day shifts known at ``origin`` for ``series``' pool and forecaster ``name``, on
        the grid: per lead [leads, grid] and over every lead [grid]; None with fewer than
        ``min_shifts`` shifts or ``min_days`` days (the caller keeps the band in use)."""
        key = (name, peer_group(series, self.setting.pool))
        at = (pd.Timestamp(origin), *key)  # type: ignore[arg-type]
        if at not in self._cache:
            known = self.known.get(key)
            keep = known <= np.datetime64(at[0]) if known is not None else np.zeros(0, bool)
            sample = self.shifts[key][keep] if known is not None else np.empty((0, self.leads))
            ends = known[keep] if known is not None else np.empty(0, "datetime64[ns]")
            days = len(np.unique(ends.astype("datetime64[D]")))  # calendar days, not hours
            enough = len(sample) >= self.setting.min_shifts and days >= self.setting.min_days
            self._cache[at] = self._grid(sample, days) if enough else None
        return self._cache[at]

    def _grid(self, sample: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
        levels = self.setting.levels
        every = sample[np.isfinite(sample)]
        pooled = np.quantile(every, levels)
        per = np.empty((self.leads, len(levels)))
        for h in range(self.leads):
            col = sample[:, h][np.isfinite(sample[:, h])]
            per[h] = np.quantile(col, levels) if len(col) else pooled
        dof = {"shifts": len(sample), "days": days}.get(self.setting.predictive)
        if dof is None or dof < MIN_DOF:  # ν < 3: the bias's widening alone (docstring)
            return per, pooled
        return scale_mixed(per, dof, levels), scale_mixed(pooled[None, :], dof, levels)[0]


def scale_mixed(grid: np.ndarray, dof: int, levels: np.ndarray) -> np.ndarray:
    """Row-wise quantiles (at ``levels``) of ``S · R``: S the row's values (each weighs alike),
    R = √(ν/χ²_ν) independent of it, ν = ``dof`` (σ's uncertainty from ν degrees of freedom:
    module docstring; Gaussian S gives Student's t_ν)."""
    scale = np.sqrt(dof / chi2.ppf(levels, dof))
    products = (grid[:, :, None] * scale[None, None, :]).reshape(len(grid), -1)
    out: np.ndarray = np.quantile(products, levels, axis=1).T
    return out


@dataclass
class WithinDay:
    """The within-day parts of the residuals already over (per (series, model) and per
    (peer group, model)), the sum and count of each fold's residuals over (for the bias: a
    mean over folds, whether a fold arrived whole or in parts) and the origins of the series'
    folds wholly over (k, for the bias's error); filled as ``_Past`` resolves (a fold can be
    over in parts: a horizon past the origins' step)."""

    width: int
    bias_error: bool = False  # the band carries the bias's error (DayShift.predictive)
    own: dict[tuple[str, str], Residuals] = field(default_factory=dict)
    group: dict[tuple[str, str], Residuals] = field(default_factory=dict)
    # per fold over (own: its origin; group: its series and origin): [sum, count]
    own_sums: dict[tuple[str, str], dict[object, list[float]]] = field(default_factory=dict)
    group_sums: dict[tuple[str, str], dict[object, list[float]]] = field(default_factory=dict)
    peers: dict[tuple[str, str], Sample] = field(default_factory=dict)
    folds: dict[tuple[str, str], set[object]] = field(default_factory=dict)  # wholly over

    def add(
        self, series: str, name: str, gkey: str, res: np.ndarray, lead: np.ndarray, origin: object
    ) -> None:
        """A part of the fold of ``series`` at ``origin`` now over: its own and its peer
        group's within-day deviations, and its sum and count."""
        if not len(res):
            return
        dev = res - window_means(res, lead, self.width)[lead]
        total = float(np.sum(res))
        for parts, sums, key, fold in (
            (self.own, self.own_sums, (series, name), origin),
            (self.group, self.group_sums, (gkey, name), (series, origin)),
        ):
            parts.setdefault(key, []).append((dev, lead))
            kept = sums.setdefault(key, {}).setdefault(fold, [0.0, 0])
            kept[0] += total
            kept[1] += len(res)
        self.peers.pop((gkey, name), None)

    def fold_over(self, series: str, name: str, origin: object) -> None:
        """The fold of ``series`` at ``origin`` is wholly over (its last part added)."""
        self.folds.setdefault((series, name), set()).add(origin)

    def bias(self, series: str, name: str, gkey: str) -> float:
        """The mean of the series' fold means and its peer group's, half each (a fold's mean:
        over every residual of it over, one fold weighing one whatever its parts)."""
        means = [
            np.mean([total / count for total, count in sums.values()])
            for sums in (self.own_sums.get((series, name)), self.group_sums.get((gkey, name)))
            if sums
        ]
        return float(np.mean(means)) if means else 0.0

    def quantiles(
        self,
        series: str,
        name: str,
        gkey: str,
        offset: float,
        taus: tuple[float, ...],
        shifts: tuple[np.ndarray, np.ndarray],
        grid: np.ndarray,
        by_horizon: bool = True,
    ) -> ResidualQuantiles:
        """The band of ``series``' forecasts by ``name``: within-day quantiles (own and peers
        mixed per lead, thin leads pooled) on ``grid``, convolved with ``shifts``, plus bias."""
        if (gkey, name) not in self.peers:
            self.peers[(gkey, name)] = _sample(self.group.get((gkey, name), []))
        mine = _sample(self.own.get((series, name), []))
        within = ResidualQuantiles.fit_samples(
            mine, self.peers[(gkey, name)], offset, tuple(grid), True
        )
        bias = self.bias(series, name, gkey)
        days = len(self.folds.get((series, name), ()))  # k: the folds wholly over
        widen = np.sqrt(1.0 + 1.0 / days) if self.bias_error and days else 1.0
        per_lead, pooled = (s * widen for s in shifts)  # D − ē (module docstring)
        values = _convolved(np.asarray([within.values]), pooled[None, :], taus)[0] + bias
        by_h = None
        if within.by_horizon and by_horizon:
            rows = np.asarray(within.by_horizon, dtype=float)
            table = _convolved(rows, _per_lead(per_lead, pooled, len(rows)), taus) + bias
            by_h = tuple(tuple(map(float, r)) for r in table)
        return ResidualQuantiles(offset, taus, tuple(map(float, values)), within.n, by_h)


def _per_lead(per_lead: np.ndarray, pooled: np.ndarray, leads: int) -> np.ndarray:
    """The day shifts' grid at leads 1..``leads``: a lead past the shifts' (a fold longer than
    any day shift's) takes the shifts pooled over every lead."""
    extra = max(leads - len(per_lead), 0)
    out: np.ndarray = np.vstack([per_lead[:leads], np.repeat(pooled[None, :], extra, axis=0)])
    return out


def within_day(setting: DayShift) -> WithinDay:
    """An empty :class:`WithinDay` for ``setting``."""
    return WithinDay(setting.width, bias_error=setting.predictive != "off")


def _sample(parts: Residuals) -> Sample:
    values = np.concatenate([r for r, _ in parts]) if parts else np.empty(0)
    leads = np.concatenate([h for _, h in parts]) if parts else np.empty(0, dtype=int)
    return Sample.of(values, leads)


def _convolved(within: np.ndarray, shift: np.ndarray, taus: tuple[float, ...]) -> np.ndarray:
    """Row-wise τ-quantiles of every sum within[r, i] + shift[r, j] (each grid point of either
    side weighs alike): [rows, len(taus)]."""
    sums = (within[:, :, None] + shift[:, None, :]).reshape(len(within), -1)
    out: np.ndarray = np.quantile(sums, taus, axis=1).T
    return out


def live_within(hours: pd.DataFrame, setting: DayShift) -> WithinDay:
    """The within-day parts of every fold in ``hours`` (one forecaster's backtest rows of a
    chunk, with ``log_residual``): what the stored day-shift bands of the chunk's series are
    made of (:func:`live_quantiles`), built once per chunk and forecaster."""
    within = within_day(setting)
    rows = hours[hours["log_residual"].notna()].sort_values(["series", "origin", "h"])
    if rows.empty:
        return within
    name = str(rows["forecaster"].iloc[0])
    series = rows["series"].to_numpy()
    origin = rows["origin"].to_numpy()
    cuts = np.flatnonzero((series[1:] != series[:-1]) | (origin[1:] != origin[:-1])) + 1
    res = np.split(rows["log_residual"].to_numpy(dtype=float), cuts)
    lead = np.split(rows["h"].to_numpy(dtype=int), cuts)
    starts = np.r_[0, cuts]
    for part_series, fold, r, h in zip(series[starts], origin[starts], res, lead, strict=True):
        at = pd.Timestamp(fold)
        within.add(str(part_series), name, peer_group(str(part_series)), r, h, at)
        within.fold_over(str(part_series), name, at)  # each fold whole here
    return within


def live_quantiles(
    within: WithinDay,
    series: str,
    name: str,
    offset: float,
    shifts: DayShifts,
    as_of: object,
    by_horizon: bool = True,
) -> ResidualQuantiles | None:
    """The day-shift band a selection stores for ``series``' forecaster ``name``: its folds
    and its peer group's in ``within`` (:func:`live_within`), the day shifts known at
    ``as_of``, applied at ``offset`` (:func:`planner.forecast.calibration.residuals_for` for
    the band in use). None when the day shifts are too few or the series has no residual
    (the caller keeps the band in use)."""
    known = shifts.before(as_of, name, series)
    if known is None or (series, name) not in within.own:
        return None
    group, levels = peer_group(series), shifts.setting.levels
    return within.quantiles(series, name, group, offset, QUANTILES, known, levels, by_horizon)
