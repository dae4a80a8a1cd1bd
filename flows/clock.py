"""Where "now" comes from: the clock the config names (``clock.kind``).

* ``wall``: the wall clock (production). Demo time = real time.
* ``replay``: the demo's clock. It stands at its anchor (the end of the built-in log) until
  `make serve` starts it; from then demo time = anchor + speed × (real time since the start),
  and when `make serve` stops, the clock stops where it was. The running clock is a small JSON
  file (``clock.state``) so that the server, the worker's flow runs and the CLI all read the
  same time.

Every time here is naive UTC (the warehouse's convention); real times are aware UTC.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from planner.config import FleetConfig
from planner.files import write_text_atomic
from planner.utc import naive_utc

log = logging.getLogger(__name__)


def log_end(cfg: FleetConfig) -> pd.Timestamp:
    """The end (exclusive) of the built-in log the replay clock continues."""
    return naive_utc(cfg.clock.log.start) + pd.Timedelta(days=cfg.clock.log.days)


@dataclass(frozen=True)
class Clock:
    """Demo time from real time: ``anchor + speed × (min(real, stopped_at) − started_at)``.

    The wall clock is the same formula with speed 1 and anchor = start, so every caller
    treats both alike. ``started_at`` is None while a replay clock has not been started:
    it then stands at its anchor."""

    kind: str
    anchor: pd.Timestamp
    speed: float = 1.0
    started_at: datetime | None = None
    stopped_at: datetime | None = None

    def at(self, real: datetime) -> pd.Timestamp:
        """Demo time at the real (aware) instant ``real``."""
        if self.kind == "wall":
            return naive_utc(real)
        if self.started_at is None:
            return self.anchor
        end = min(real, self.stopped_at) if self.stopped_at else real
        elapsed = max((end - self.started_at).total_seconds(), 0.0)
        # whole demo seconds: a scheduled time stored a millisecond off (× speed) must not
        # turn 01:15 into 01:14:59.9
        return (self.anchor + pd.Timedelta(seconds=elapsed * self.speed)).round("s")

    def now(self) -> pd.Timestamp:
        return self.at(datetime.now(UTC))

    def real_seconds(self, demo_seconds: float) -> float:
        """How long ``demo_seconds`` of demo time take in real time."""
        return demo_seconds / (self.speed if self.kind == "replay" else 1.0)

    def describe(self) -> str:
        if self.kind == "wall":
            return "wall clock"
        state = (
            "not started (stands at its anchor)"
            if self.started_at is None
            else "stopped"
            if self.stopped_at
            else "running"
        )
        return f"replay clock ×{self.speed:g} from {self.anchor:%Y-%m-%d %H:%M} UTC, {state}"


def clock_for(cfg: FleetConfig) -> Clock:
    """The clock the config names, with the replay clock's running state if it was started."""
    if cfg.clock.kind == "wall":
        return Clock("wall", naive_utc(datetime.now(UTC)))
    path = Path(cfg.clock.state)
    if not path.exists():
        return Clock("replay", log_end(cfg), cfg.clock.speed)
    try:
        d = json.loads(path.read_text())
        return Clock(
            "replay",
            naive_utc(d["anchor"]),
            float(d["speed"]),
            datetime.fromisoformat(d["started_at"]),
            datetime.fromisoformat(d["stopped_at"]) if d.get("stopped_at") else None,
        )
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"{path}: unreadable replay clock state ({exc}); delete it") from exc


def _write_state(cfg: FleetConfig, clock: Clock) -> None:
    path = Path(cfg.clock.state)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "anchor": clock.anchor.isoformat(),
        "speed": clock.speed,
        "started_at": clock.started_at.isoformat() if clock.started_at else None,
        "stopped_at": clock.stopped_at.isoformat() if clock.stopped_at else None,
    }
    write_text_atomic(path, json.dumps(body, indent=2))


def start_replay(cfg: FleetConfig, data_end: pd.Timestamp | None, real: datetime) -> Clock:
    """Start the replay clock at ``real``, anchored at the hour of the warehouse's newest
    request (a log's last jobs may spill a little past its end: that hour is fed again, and
    ingest skips the rows it holds) or, with no later data, at the end of the built-in log."""
    anchor = log_end(cfg)
    if data_end is not None and naive_utc(data_end).floor("h") > anchor:
        anchor = naive_utc(data_end).floor("h")
    clock = Clock("replay", anchor, cfg.clock.speed, real)
    _write_state(cfg, clock)
    log.info("%s", clock.describe())
    return clock


def stop_replay(cfg: FleetConfig, real: datetime) -> None:
    """Freeze a running replay clock where it is (`make serve` stopping)."""
    clock = clock_for(cfg)
    if clock.kind == "replay" and clock.started_at is not None and clock.stopped_at is None:
        _write_state(cfg, Clock("replay", clock.anchor, clock.speed, clock.started_at, real))


def run_time(cfg: FleetConfig, as_of: str | None) -> pd.Timestamp:
    """A flow's "now": ``as_of`` when given, else the clock at the run's scheduled start, else
    at now. The scheduled start wins both ways: a run that waited in the queue still plans the
    hour it was scheduled for, and one a worker picked up early (Prefect workers prefetch
    runs due within a few seconds, which the fast replay clock turns into demo minutes) does
    not plan a minute before its time."""
    if as_of:
        return naive_utc(as_of)
    real = datetime.now(UTC)
    try:
        from prefect.runtime import flow_run

        scheduled = flow_run.scheduled_start_time
        if flow_run.id and scheduled is not None:
            real = datetime.fromisoformat(str(scheduled)).astimezone(UTC)
    except Exception:
        pass
    return clock_for(cfg).at(real)
