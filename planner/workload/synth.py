"""A deterministic multi-region, multi-tier request-log generator shaped like the SageServe
characterisation of O365 traffic.

Shape, per series (region × model × tier), hour by hour:

* diurnal cycles in each region's local time (so the regions' peaks are shifted by time zone);
  interactive traffic follows working hours with a lunch dip, non-interactive is flatter with a
  night-time report bump;
* weekends carry less interactive traffic (×0.45) and slightly less NIW (×0.8);
* slow growth (0.5 %/day) and hour-to-hour AR(1) noise per series;
* within the hour, minute-level bursts (log-normal, σ = 0.3) over Poisson arrivals;
* NIW: most of it arrives in bulk jobs (hundreds of requests within a minute or two);
* token lengths drawn from the Azure 2023 traces: conversation for interactive tiers, code for NIW;
* tenants: interactive requests come from ``INTERACTIVE_TENANTS`` teams with Zipf-like shares
  (one heavy team, a long tail), NIW requests from ``NIW_TENANTS`` batch owners; a bulk job
  belongs to one owner, so its requests arrive together under one tenant.

Everything is drawn from one ``numpy`` generator per day spawned from the seed, so a day's rows
do not depend on how many days are generated. Tenants are drawn from a second generator per day
(``[seed, 2, day]``), so adding them changed no arrival time, series or token length.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from planner.config.models import FleetConfig
from planner.workload.tokens import TokenSampler

REGION_SHARES = {"us-east": 0.45, "us-central": 0.25, "us-west": 0.30}
MODEL_SHARES = {"llama3.1-8b": 0.30, "llama3.2-3b": 0.15, "llama2-70b": 0.40, "bloom-176b": 0.15}
TIER_SHARES = {"IW-F": 0.40, "IW-N": 0.30, "NIW": 0.30}
NIW_BULK_SHARE = 0.6
MEAN_JOB_SIZE = 400
INTERACTIVE_TENANTS = 12
NIW_TENANTS = 6


@dataclass(frozen=True)
class SynthSpec:
    days: int = 14
    seed: int = 7
    start: datetime = datetime(2024, 6, 3, tzinfo=UTC)  # a Monday
    requests_per_day: int = 2_000_000
    shares: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "region": REGION_SHARES,
            "model": MODEL_SHARES,
            "tier": TIER_SHARES,
        }
    )


def interactive_profile(local_hour: np.ndarray) -> np.ndarray:
    """Working-hours shape with a lunch dip; floor 0.15 at night (relative units)."""
    h = np.asarray(local_hour, dtype=float)
    morning = np.exp(-0.5 * ((h - 10.5) / 2.0) ** 2)
    afternoon = np.exp(-0.5 * ((h - 15.0) / 2.2) ** 2)
    return 0.15 + 0.85 * np.maximum(morning, 0.95 * afternoon)


def niw_profile(local_hour: np.ndarray) -> np.ndarray:
    """Flatter: a working-hours component plus a night-time batch-report bump at 02:00."""
    h = np.asarray(local_hour, dtype=float)
    night = np.exp(-0.5 * (((h - 2.0 + 12) % 24 - 12) / 1.5) ** 2)
    return 0.55 + 0.25 * interactive_profile(h) + 0.5 * night


def hourly_rates(cfg: FleetConfig, spec: SynthSpec) -> pd.DataFrame:
    """Expected requests per hour for every series over the whole span (long format)."""
    hours = pd.date_range(spec.start, periods=spec.days * 24, freq="h", tz="UTC")
    frames = []
    mean_int = interactive_profile(np.arange(24)).mean()
    mean_niw = niw_profile(np.arange(24)).mean()
    for region in cfg.regions:
        local = hours.tz_convert(region.timezone)
        weekend = local.dayofweek >= 5
        local_hour = local.hour.to_numpy() + local.minute.to_numpy() / 60.0
        for model in cfg.models:
            for tier in cfg.tiers:
                # One generator per series: the noise of an hour does not depend on how many
                # days or series are generated.
                key = f"{region.id}/{model.id}/{tier.id}".encode()
                rng = np.random.default_rng([spec.seed, 0, zlib.crc32(key)])
                share = (
                    _share(spec, "region", region.id)
                    * _share(spec, "model", model.id)
                    * _share(spec, "tier", tier.id)
                )
                if tier.kind == "interactive":
                    shape = interactive_profile(local_hour) / mean_int * np.where(weekend, 0.45, 1)
                else:
                    shape = niw_profile(local_hour) / mean_niw * np.where(weekend, 0.8, 1)
                days = np.arange(len(hours)) / 24.0
                growth = 1.005**days
                noise = np.exp(_ar1(rng, len(hours), phi=0.7, sigma=0.08))
                rate = spec.requests_per_day / 24.0 * share * shape * growth * noise
                frames.append(
                    pd.DataFrame(
                        {
                            "hour": hours,
                            "region": region.id,
                            "model": model.id,
                            "tier": tier.id,
                            "kind": tier.kind,
                            "rate": rate,
                        }
                    )
                )
    return pd.concat(frames, ignore_index=True)


def synthesize(
    cfg: FleetConfig, spec: SynthSpec, tokens: TokenSampler, first_day: int = 0
) -> Iterator[tuple[datetime, pd.DataFrame]]:
    """Yield (day start, request rows sorted by arrival) for each day of the span from
    ``first_day`` (days before it are skipped, not drawn: a day's rows depend only on its index)."""
    rates = hourly_rates(cfg, spec)
    day_seeds = np.random.SeedSequence([spec.seed, 1]).spawn(spec.days)
    for day_index in range(first_day, spec.days):
        day = spec.start + timedelta(days=day_index)
        mask = (rates["hour"] >= day) & (rates["hour"] < day + timedelta(days=1))
        rng = np.random.default_rng(day_seeds[day_index])
        tenant_rng = np.random.default_rng([spec.seed, 2, day_index])
        frame = _day_rows(rates[mask], rng, tokens, tenant_rng)
        frame.insert(0, "request_id", _request_ids(spec.seed, day_index, len(frame)))
        yield day, frame


def _day_rows(
    day_rates: pd.DataFrame,
    rng: np.random.Generator,
    tokens: TokenSampler,
    tenant_rng: np.random.Generator,
) -> pd.DataFrame:
    parts = []
    for (region, model, tier, kind), series in day_rates.groupby(
        ["region", "model", "tier", "kind"], sort=True
    ):
        hour_starts = (series["hour"].astype("int64") // 1_000_000).to_numpy()
        rate = series["rate"].to_numpy()
        if kind == "interactive":
            times = _poisson_minutes(hour_starts, rate, rng)
            tenant = _tenants("team", INTERACTIVE_TENANTS, len(times), tenant_rng)
        else:
            trickle = _poisson_minutes(hour_starts, rate * (1 - NIW_BULK_SHARE), rng)
            bulk, job = _bulk_jobs(hour_starts, rate * NIW_BULK_SHARE, rng)
            times = np.concatenate([trickle, bulk])
            owner = _tenants("batch", NIW_TENANTS, int(job.max(initial=-1)) + 1, tenant_rng)
            tenant = np.concatenate(
                [_tenants("batch", NIW_TENANTS, len(trickle), tenant_rng), owner[job]]
            )
        n = len(times)
        inp, out = tokens.sample("conversation" if kind == "interactive" else "code", n, rng)
        parts.append(
            pd.DataFrame(
                {
                    "arrival_ms": times,
                    "region": region,
                    "model": model,
                    "tier": tier,
                    "input_tokens": inp,
                    "output_tokens": out,
                    "tenant": tenant,
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True).sort_values("arrival_ms", kind="stable")
    frame["arrival_time"] = pd.to_datetime(frame.pop("arrival_ms"), unit="ms", utc=True)
    for col in ("region", "model", "tier", "tenant"):
        frame[col] = frame[col].astype("category")
    cols = ["arrival_time", "region", "model", "tier", "input_tokens", "output_tokens", "tenant"]
    return frame[cols].reset_index(drop=True)


def _poisson_minutes(
    hour_starts: np.ndarray, rate: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Arrival times (ms) for hourly expected counts, with log-normal minute-level bursts."""
    burst = rng.lognormal(-0.5 * 0.3**2, 0.3, size=(len(rate), 60))
    per_minute = rate[:, None] / 60.0 * burst
    counts = rng.poisson(per_minute).ravel()
    minute_starts = (hour_starts[:, None] + np.arange(60)[None, :] * 60_000).ravel()
    starts = np.repeat(minute_starts, counts)
    return starts + rng.integers(0, 60_000, size=len(starts))


def _bulk_jobs(
    hour_starts: np.ndarray, rate: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Bulk NIW submissions: jobs of ~MEAN_JOB_SIZE requests spread over 1-3 minutes.

    Returns each request's arrival time (ms) and the index of the job it belongs to."""
    jobs = rng.poisson(rate / MEAN_JOB_SIZE)
    job_hours = np.repeat(hour_starts, jobs)
    if len(job_hours) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    job_start = job_hours + rng.integers(0, 3_600_000, size=len(job_hours))
    sizes = np.maximum(1, rng.geometric(1.0 / MEAN_JOB_SIZE, size=len(job_hours)))
    spread = rng.integers(60_000, 180_000, size=len(job_hours))
    starts = np.repeat(job_start, sizes)
    width = np.repeat(spread, sizes)
    job = np.repeat(np.arange(len(job_hours)), sizes)
    return starts + (rng.random(len(starts)) * width).astype(np.int64), job


def _tenants(prefix: str, count: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` tenant labels ``<prefix>-01`` … drawn with Zipf-like shares ``1/k`` (k = 1..count)."""
    weights = 1.0 / np.arange(1, count + 1)
    labels = np.array([f"{prefix}-{k:02d}" for k in range(1, count + 1)])
    return labels[rng.choice(count, size=n, p=weights / weights.sum())]


def _ar1(rng: np.random.Generator, n: int, phi: float, sigma: float) -> np.ndarray:
    first = rng.normal(0.0, sigma)
    eps = rng.normal(0.0, sigma * np.sqrt(1 - phi**2), size=n)
    out = np.empty(n)
    out[0] = first
    for i in range(1, n):
        out[i] = phi * out[i - 1] + eps[i]
    return out - 0.5 * sigma**2


def _share(spec: SynthSpec, axis: str, key: str) -> float:
    shares = spec.shares[axis]
    if key in shares:
        return shares[key] / sum(shares.values())
    return 1.0 / max(len(shares), 1)


def _request_ids(seed: int, day_index: int, n: int) -> pd.Series:
    prefix = f"syn{seed}-d{day_index:03d}-"
    return prefix + pd.Series(np.arange(n)).astype(str).str.zfill(8)
