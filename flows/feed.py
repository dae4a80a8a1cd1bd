"""The demo's log feed: every demo hour, the hour of the built-in log that just ended is
dropped into the inbox as one Parquet file (`feed-YYYYMMDDTHH.parquet`), where the next
`hourly-plan` run ingests it. The built-in log is `sageserve synth` with the settings in
``clock.log``; days past its end are synthesised the same way (a day's rows depend only on
its index and the seed), cached as day files beside the demo's, then cut into hours.

Re-running is safe: an hour already in the inbox is not written again, and ingest skips
content it has seen.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger

from flows.clock import log_end, run_time
from planner.config import FleetConfig
from planner.files import write_parquet_atomic
from planner.utc import naive_utc
from planner.workload.synth import SynthSpec, synthesize

log = logging.getLogger(__name__)
MAX_CATCH_UP_H = 48


def day_file(cfg: FleetConfig, day: pd.Timestamp, shared: Path) -> Path:
    """The built-in log's day file for ``day`` (synthesised and cached when missing)."""
    spec_cfg = cfg.clock.log
    path = Path(spec_cfg.logs_dir) / f"requests-{day:%Y-%m-%d}.parquet"
    if path.exists():
        return path
    from planner.workload.tokens import TokenSampler

    start = naive_utc(spec_cfg.start)
    index = (day - start).days
    if index < 0:
        raise ValueError(f"{day:%Y-%m-%d} is before the built-in log starts ({start:%Y-%m-%d})")
    spec = SynthSpec(
        days=index + 1,
        seed=spec_cfg.seed,
        start=start.tz_localize("UTC").to_pydatetime(),
        requests_per_day=spec_cfg.requests_per_day,
    )
    tokens = TokenSampler.from_azure(shared / "data" / "azure2023")
    for _, frame in synthesize(cfg, spec, tokens, first_day=index):
        write_parquet_atomic(frame, path)
    log.info("synthesised the built-in log's day %s into %s", f"{day:%Y-%m-%d}", path)
    return path


def hour_rows(path: Path, hour: pd.Timestamp) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    times = pd.to_datetime(frame["arrival_time"], utc=True).dt.tz_localize(None)
    return frame[(times >= hour) & (times < hour + timedelta(hours=1))].reset_index(drop=True)


def feed_until(cfg: FleetConfig, now: pd.Timestamp, shared: Path) -> list[Path]:
    """Drop every complete demo hour after the built-in log's end and before ``now`` that is
    not in the inbox yet (at most the last 48); returns the files written."""
    last = naive_utc(now).floor("h")
    first = max(log_end(cfg), last - pd.Timedelta(hours=MAX_CATCH_UP_H))
    written = []
    # not pd.date_range(first, last, inclusive="left"): with first == last it still yields
    # first, an hour that has not ended (data from the demo's future)
    n = max(int((last - first) / pd.Timedelta(hours=1)), 0)
    for hour in (first + pd.Timedelta(hours=k) for k in range(n)):
        target = feed_file(cfg, hour)
        if target.exists():
            continue
        rows = hour_rows(day_file(cfg, hour.floor("D"), shared), hour)
        write_parquet_atomic(rows, target)
        written.append(target)
        log.info("fed %s rows of %s into %s", f"{len(rows):,}", hour, target)
    return written


def feed_file(cfg: FleetConfig, hour: pd.Timestamp) -> Path:
    return Path(cfg.clock.inbox) / f"feed-{hour:%Y%m%dT%H}.parquet"


def wait_for_feed(cfg: FleetConfig, now: pd.Timestamp, timeout_s: float) -> bool:
    """Replay clock: wait (up to ``timeout_s``) until the feed has dropped the hour before
    ``now`` into the inbox, as a real pipeline waits for its input to land. The feed and the
    plan are separate deployments: a busy worker may start the plan first. True when the
    hour is there (or is part of the built-in log)."""
    hour = naive_utc(now).floor("h") - pd.Timedelta(hours=1)
    if hour < log_end(cfg):
        return True
    target = feed_file(cfg, hour)
    deadline = time.monotonic() + timeout_s
    while not target.exists():
        if time.monotonic() > deadline:
            log.warning(
                "the feed has not dropped %s after %.0f s; planning without it", hour, timeout_s
            )
            return False
        time.sleep(1)
    return True


def prepare(cfg: FleetConfig, now: pd.Timestamp, shared: Path) -> Path:
    """Synthesise the day file the next demo hours come from (before the schedule starts,
    so the first feed runs are quick)."""
    return day_file(cfg, naive_utc(now).floor("D"), shared)


@flow(name="demo-feed", timeout_seconds=600)
def demo_feed(
    config_path: str | None = None, as_of: str | None = None, shared: str | None = None
) -> dict[str, Any]:
    """Drop the hours of the built-in log that the replay clock has passed into the inbox."""
    from flows.run_context import run_config

    cfg = run_config(config_path)
    if cfg.clock.kind != "replay":
        raise ValueError("demo-feed needs clock.kind: replay (the wall clock has real logs)")
    now = run_time(cfg, as_of)
    folder = shared or os.environ.get("SAGESERVE_SHARED") or "../shared"
    written = feed_until(cfg, now, Path(folder))
    get_run_logger().info("demo time %s: %d hour file(s) dropped", now, len(written))
    return {"now": str(now), "files": [str(p) for p in written]}
