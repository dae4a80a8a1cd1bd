"""Request rows from ServeGen's per-client arrival-rate series (alibaba/ServeGen, Apache-2.0).

A ServeGen source folder holds, per client, ``chunk-<c>-trace.csv`` (600-s windows over 10 days,
t = 0 at local midnight: ``window_start_s, rate_req_per_s, cv, dist, shape, scale``) and usually
``chunk-<c>-dataset.json.gz`` (per 6-hour window: token-count distributions as Python-literal
``{tokens: probability}`` strings). Turning them into request rows:

* arrivals: a renewal process per window with the window's inter-arrival distribution (Gamma or
  Weibull, shape kept so the burstiness is kept, scale stretched by 1/F for a volume scale F);
  windows without a distribution but with a rate use exponential gaps;
* tokens: input and output drawn from the client's distribution for the 6-hour window; where the
  client has none (no file, or an empty window), from a donor client of the same source chosen
  deterministically from the seed;
* each client is assigned one region and one tier from the seed (a client is one customer
  integration, so it keeps its tier); its local midnight is the region's midnight on the start
  date, which shifts the regions' daily cycles by their time zones.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from planner.config.models import FleetConfig
from planner.workload.synth import REGION_SHARES, TIER_SHARES

WINDOW_S = 600
TOKEN_WINDOW_S = 21_600


@dataclass(frozen=True)
class ServeGenClient:
    client: str
    trace: pd.DataFrame  # window_start_s, rate, cv, dist, shape, scale
    tokens: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    # window start -> (input values, input probs, output values, output probs)


def load_source(directory: Path | str) -> list[ServeGenClient]:
    """Every client of one ServeGen folder (e.g. ``servegen/language/m-mid``)."""
    directory = Path(directory)
    traces = sorted(directory.glob("chunk-*-trace.csv"), key=_client_key)
    if not traces:
        raise FileNotFoundError(f"{directory}: no chunk-*-trace.csv files (not a ServeGen folder)")
    clients = []
    for trace_path in traces:
        client = trace_path.name.split("-")[1]
        trace = pd.read_csv(
            trace_path,
            header=None,
            names=["window_start_s", "rate", "cv", "dist", "shape", "scale"],
            keep_default_na=False,
            na_values={"rate": [""], "shape": [""], "scale": [""], "cv": [""]},
        )
        dataset = directory / f"chunk-{client}-dataset.json.gz"
        tokens = _load_tokens(dataset) if dataset.exists() else {}
        clients.append(ServeGenClient(client, trace, tokens))
    return clients


def _client_key(path: Path) -> int:
    return int(path.name.split("-")[1])


def _load_tokens(
    path: Path,
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        raw = json.load(fh)
    out = {}
    for key, entry in raw.items():
        inp, outp = (_distribution(entry.get(k, "{}")) for k in ("input_tokens", "output_tokens"))
        if len(inp[0]) and len(outp[0]):
            out[int(key)] = (*inp, *outp)
    return out


_PAIR = re.compile(r"(-?\d+)\s*:\s*([-+0-9.eE]+)")


def _distribution(text: str | dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``"{tokens: probability, ...}"``. A regex over the pairs is ~20× faster than
    ``ast.literal_eval`` on these files and reads the same numbers (tested)."""
    if isinstance(text, dict):
        pairs = [(int(k), float(v)) for k, v in text.items()]
    else:
        pairs = [(int(k), float(v)) for k, v in _PAIR.findall(text)]
    if not pairs:
        return np.empty(0, np.int64), np.empty(0)
    values = np.array([k for k, _ in pairs], dtype=np.int64)
    probs = np.array([v for _, v in pairs], dtype=float)
    return values, probs / probs.sum()


@dataclass(frozen=True)
class ServeGenSpec:
    model: str
    scale: float = 0.001
    seed: int = 7
    start: date = date(2024, 6, 3)


def assign(client: str, seed: int, regions: list[str], tiers: list[str]) -> tuple[str, str]:
    """Deterministic (region, tier) of a client from the seed, weighted like the synthetic log."""
    rng = np.random.default_rng([seed, zlib.crc32(client.encode())])
    rw = np.array([REGION_SHARES.get(r, 1.0) for r in regions])
    tw = np.array([TIER_SHARES.get(t, 1.0) for t in tiers])
    return (
        regions[int(rng.choice(len(regions), p=rw / rw.sum()))],
        tiers[int(rng.choice(len(tiers), p=tw / tw.sum()))],
    )


def synthesize_servegen(
    cfg: FleetConfig, clients: list[ServeGenClient], spec: ServeGenSpec
) -> Iterator[pd.DataFrame]:
    """Request rows per client (unsorted across clients); the caller splits them into files."""
    donors = sorted((c for c in clients if c.tokens), key=lambda c: int(c.client))
    if not donors:
        raise ValueError("no client in the source has token distributions to borrow from")
    for client in clients:
        region, tier = assign(client.client, spec.seed, cfg.region_ids, cfg.tier_ids)
        rng = np.random.default_rng([spec.seed, 2, zlib.crc32(client.client.encode())])
        offsets = _arrivals(client.trace, spec.scale, rng)
        if len(offsets) == 0:
            continue
        inp, out = _tokens(client, donors, offsets, spec.seed, rng)
        midnight = datetime.combine(spec.start, time(0), ZoneInfo(cfg.region(region).timezone))
        base_ms = int(midnight.timestamp() * 1000)
        arrival = pd.to_datetime(base_ms + (offsets * 1000).astype(np.int64), unit="ms", utc=True)
        yield pd.DataFrame(
            {
                "arrival_time": arrival,
                "region": region,
                "model": spec.model,
                "tier": tier,
                "input_tokens": inp,
                "output_tokens": out,
                "tenant": f"client-{client.client}",
            }
        )


def local_window(
    cfg: FleetConfig,
    clients: list[ServeGenClient],
    spec: ServeGenSpec,
    start_s: float,
    hours: float,
) -> pd.DataFrame:
    """Request rows of the windows in [start_s, start_s + hours) of each client's local day,
    sorted by ``t``: seconds from ``start_s`` on the client's local clock (one pool: the
    regions' time zones dropped)."""
    end_s = start_s + hours * 3600.0
    sub = [
        ServeGenClient(
            c.client,
            c.trace[(c.trace["window_start_s"] >= start_s) & (c.trace["window_start_s"] < end_s)],
            c.tokens,
        )
        for c in clients
    ]
    df = pd.concat(synthesize_servegen(cfg, sub, spec))
    midnight = {
        r: pd.Timestamp(spec.start, tz=cfg.region(r).timezone).tz_convert("UTC")
        for r in cfg.region_ids
    }
    local = df["arrival_time"].dt.tz_convert("UTC") - df["region"].map(midnight)
    t = local.dt.total_seconds().to_numpy(float) - start_s
    return df.assign(t=t).sort_values("t", kind="stable").reset_index(drop=True)


def _arrivals(trace: pd.DataFrame, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Arrival offsets (s since local midnight) of all windows, vectorised over windows."""
    active = trace[(trace["rate"] > 0)].reset_index(drop=True)
    if active.empty:
        return np.empty(0)
    mean_gap = 1.0 / (active["rate"].to_numpy() * scale)
    dist = active["dist"].to_numpy()
    shape = active["shape"].to_numpy()
    dist_scale = active["scale"].to_numpy() / scale
    expected = WINDOW_S / mean_gap
    need = np.ceil(expected * 1.5 + 4 * np.sqrt(expected) + 3).astype(np.int64)
    window = np.repeat(np.arange(len(active)), need)
    gaps = _gaps(dist[window], shape[window], dist_scale[window], mean_gap[window], rng)
    # Stationary start: the first gap is a uniform fraction of a full gap.
    first = np.r_[0, np.cumsum(need)[:-1]]
    gaps[first] *= rng.random(len(first))
    csum = np.cumsum(gaps)
    base = np.repeat(np.r_[0.0, csum[first[1:] - 1]], need)
    within = csum - base
    keep = within < WINDOW_S
    starts = active["window_start_s"].to_numpy(dtype=float)
    return np.sort(starts[window[keep]] + within[keep])


def _gaps(
    dist: np.ndarray,
    shape: np.ndarray,
    scale: np.ndarray,
    mean_gap: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    gaps = rng.exponential(mean_gap)
    gamma = (dist == "Gamma") & (shape > 0) & (scale > 0)
    weibull = (dist == "Weibull") & (shape > 0) & (scale > 0)
    gaps[gamma] = rng.gamma(shape[gamma], scale[gamma])
    gaps[weibull] = scale[weibull] * rng.weibull(shape[weibull])
    return gaps


def _tokens(
    client: ServeGenClient,
    donors: list[ServeGenClient],
    offsets: np.ndarray,
    seed: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    windows = (offsets // TOKEN_WINDOW_S).astype(np.int64) * TOKEN_WINDOW_S
    inp = np.zeros(len(offsets), np.int64)
    out = np.zeros(len(offsets), np.int64)
    for w in np.unique(windows):
        sel = windows == w
        dist = client.tokens.get(int(w)) or _donor_tokens(client, donors, int(w), seed)
        inp[sel] = rng.choice(dist[0], size=int(sel.sum()), p=dist[1])
        out[sel] = rng.choice(dist[2], size=int(sel.sum()), p=dist[3])
    return inp, out


def _donor_tokens(
    client: ServeGenClient, donors: list[ServeGenClient], window: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A deterministic donor with data for the window (falling back to any window it has)."""
    start = zlib.crc32(f"{seed}:{client.client}".encode()) % len(donors)
    ordered = donors[start:] + donors[:start]
    for donor in ordered:
        if window in donor.tokens:
            return donor.tokens[window]
    donor = ordered[0]
    return donor.tokens[min(donor.tokens, key=lambda k: abs(k - window))]
