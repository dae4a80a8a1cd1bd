"""A request log as minute buckets: requests and input/output tokens per minute, source
region, model and tier. The fluid simulator replays these buckets; the warehouse computes
them in SQL (``sql/sim/minute_buckets.sql``), so a 10 M-request week is ~400 k rows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from planner.fleet_index import input_shares
from planner.sim.fleet import FleetParams

Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class MinuteDemand:
    start: pd.Timestamp  # minute 0 (UTC, naive)
    requests: Array  # [T, r, m, k]
    input_tokens: Array  # [T, r, m, k]
    output_tokens: Array  # [T, r, m, k]
    # [T, r, m, k] inter-arrival CV within the minute (nan: unknown; the replay takes 1,
    # Poisson); None: unknown everywhere
    cv: Array | None = None

    @property
    def minutes(self) -> int:
        return int(self.requests.shape[0])

    @property
    def tokens(self) -> Array:
        return self.input_tokens + self.output_tokens

    @property
    def total_requests(self) -> float:
        return float(self.requests.sum())

    def input_share(self, p: FleetParams) -> dict[tuple[str, str], float]:
        """Share of input tokens per (model, tier) over the whole log
        (``planner.fleet_index.input_shares`` of its sums)."""
        inp, out = self.input_tokens.sum(axis=(0, 1)), self.output_tokens.sum(axis=(0, 1))
        m, k = np.meshgrid(p.models, p.tiers, indexing="ij")
        sums = {"model": m, "tier": k, "input_tokens": inp, "output_tokens": out}
        return input_shares(pd.DataFrame({c: a.ravel() for c, a in sums.items()}))

    def hourly_tokens_per_s(self, metric: str = "mean") -> Array:
        """[H, r, m, k]: the hour's mean token rate, or (``peak``) its busiest minute's."""
        hours = self.minutes // 60
        per_min = self.tokens[: hours * 60].reshape(hours, 60, *self.tokens.shape[1:]) / 60.0
        out = per_min.max(axis=1) if metric == "peak" else per_min.mean(axis=1)
        return np.asarray(out, dtype=float)


def from_buckets(
    frame: pd.DataFrame, p: FleetParams, start: pd.Timestamp, end: pd.Timestamp
) -> MinuteDemand:
    """Arrays from rows ``minute, region, model, tier, requests, input_tokens,
    output_tokens`` (and ``cv``, the minute's inter-arrival CV, where known); rows outside
    [start, end) or of unknown ids raise ValueError naming them."""
    minutes = int((end - start) / pd.Timedelta(minutes=1))
    if minutes <= 0:
        raise ValueError(f"empty replay window {start} .. {end}")
    shape = (minutes, len(p.regions), len(p.models), len(p.tiers))
    out = [np.zeros(shape) for _ in range(3)]
    cv = np.full(shape, np.nan)
    if not frame.empty:
        idx = []
        for col, ids in (("region", p.regions), ("model", p.models), ("tier", p.tiers)):
            codes = pd.Categorical(frame[col], categories=ids).codes
            if (codes < 0).any():
                unknown = sorted(set(frame.loc[codes < 0, col]))
                raise ValueError(f"bucket rows name unknown {col}s {unknown}; not in the config")
            idx.append(codes)
        t = ((pd.to_datetime(frame["minute"]) - start) / pd.Timedelta(minutes=1)).to_numpy()
        if (t < 0).any() or (t >= minutes).any():
            raise ValueError(f"bucket rows outside the replay window {start} .. {end}")
        key = (t.astype(np.int64), *idx)
        for arr, col in zip(out, ("requests", "input_tokens", "output_tokens"), strict=True):
            np.add.at(arr, key, frame[col].to_numpy(dtype=float))
        if "cv" in frame.columns:  # one row per bucket (the SQL groups them)
            cv[key] = pd.to_numeric(frame["cv"], errors="coerce").to_numpy(dtype=float)
    return MinuteDemand(start, out[0], out[1], out[2], cv)
