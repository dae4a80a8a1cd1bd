"""Where LT-F's GPU-hours go against the SLO-aware scaler, and how good the plan's rises are
(issue #15, ServeGen track).

Replays, on one window, the cheapest point meeting the targets of the ``slo-reactive`` family
and of LT-F (``planner.sim.plan_ramp``; both read from a ``bench/levers.py --out`` JSON, or
given), LT-F recording each purchase, and two comparators of LT-F at the same dials (never
policies):

* ``buy is a step``: each purchase also restarts the layer's scale-in window (LT-F before
  issue #15's ServeGen fix);
* ``band ramps`` (with ``--lower``, the plans of a lower quantile of the same forecasts): a
  rise bought only as far as those plans rise too (``PlanRamp.lower``);
* ``no ramps``: nothing bought ahead (the scaler at LT-F's dials, from the plan's first hour);
* ``oracle ramps``: a rise bought only where the pool's realised interactive load rises into
  that hour (the comparator sees its future).

Prints, with instances priced at the GPUs an instance occupies on its pool's clairvoyant VM
type (as ``bench/plan_gap.py``):

* per pool: LT-F's GPU-hours minus the scaler's, split into the hours it bought a ramp that
  came (the pool's realised load rose), bought one that did not, the ``--tail`` hours after a
  purchase, and the rest (the scaler's own decisions at LT-F's dials);
* per hour: metered GPU-hours of both (whole VMs, provisioning included) and what LT-F bought;
* the plan's hour-ahead rise against the realised one per pool: the forecast load of the
  plan (``PlanTargets.expected``, instance equivalents) from one hour to the next against the
  log's interactive load (same units), with the hits and misses.

    .venv/bin/python bench/ramp_gap.py --config configs/servegen.yaml --warehouse W \\
        --end 2024-06-13T06:00 --plans DIR/...-floor+trough-q0.5-a0.99.pkl --levers sg.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from flows.plan_cache import read_plans
from flows.sweep import replay_setup
from planner.config import load_config
from planner.sim.fluid import simulate
from planner.sim.plan_ramp import PlanRamp, layered
from planner.sim.plan_reactive import Array
from planner.sim.policies import instance_equivalents
from planner.sim.sweep import PlanTargets, Point, build_policy, frontier

log = logging.getLogger("bench.ramp_gap")


@dataclass
class Recorded(PlanRamp):
    """LT-F recording what each purchase added per pool (``bought``: hour → [r, m]); where
    ``gate`` [H, r, m] is given, a rise is bought only where it is true (the comparators)."""

    gate: np.ndarray | None = None
    bought: dict[int, Array] = field(init=False, default_factory=dict)

    def rise(self, h: int) -> Array:
        up = super().rise(h)
        return up if self.gate is None else np.where(self.gate[h], up, 0.0)

    def _move_floor(self, t: int) -> bool:
        before = self._extra.copy()
        moved = super()._move_floor(t)
        h, into = divmod(t, 60)
        if into == 60 - self.p.plan_lead_min and h + 1 < len(self.hourly):
            self.bought[h + 1] = np.maximum(self._extra - before, 0.0)
        return moved


def recorded(
    point: Point, p: Any, seq: PlanTargets, gate: np.ndarray | None, **over: Any
) -> Recorded:
    base = layered(point.params, p, seq.hourly, point.label)
    kept = {f.name: getattr(base, f.name) for f in fields(base) if f.init}
    return Recorded(**{**kept, **over}, gate=gate)


def window_plans(path: Path, start: pd.Timestamp, hours: int) -> PlanTargets:
    """The plans of ``path`` (a ``bench/levers.py`` plan cache file) for the ``hours`` hours
    from ``start``, the replayed window: a plan for an hour outside it (a file of a longer
    window, or of a levers run's warm-up before it) is not bought, as in levers' replay of
    that window. Each plan's hour is read from the record beside the file (a plan id names its
    first hour); a file stored without one is taken to start at ``start``."""
    got = read_plans(path)
    if got is None:
        raise SystemExit(f"{path}: no such plan file")
    seq, record = got
    first = 0
    if record is None:
        log.warning("%s: no plan record beside it; its first plan taken to be for %s", path, start)
    else:
        at = [pd.to_datetime(i.split("-")[1], format="%Y%m%dT%H%M") for i in record["ids"]]
        if start not in at:
            raise SystemExit(
                f"{path}: no plan for the window's first hour {start} (plans {at[0]} .. {at[-1]})"
            )
        first = at.index(start)
    if len(seq.hourly) < first + hours:
        raise SystemExit(
            f"{path}: {len(seq.hourly) - first} plans from {start}, the window has {hours} h"
        )
    return PlanTargets(seq.hourly[first : first + hours], seq.expected[first : first + hours])


def bought_per_hour(lt_f: Recorded, like: Array) -> Array:
    """[H, r, m] (the shape of ``like``) what ``lt_f`` bought ahead of each hour of the
    window."""
    bought = np.zeros_like(like)
    for h, b in lt_f.bought.items():
        bought[h] = b
    return bought


def best_points(path: Path) -> tuple[Point, Point]:
    """The slo-reactive family's and LT-F's cheapest points meeting the targets in a levers
    JSON."""
    rows = json.loads(path.read_text())["results"]
    base = [r for r in rows if r["family"] != "plan"]
    slo = frontier(base)["slo-reactive"]
    ramp = frontier(base + [r for r in rows if r["params"].get("mode") == "lt-f"])["plan"]
    if slo is None or ramp is None:
        raise SystemExit(f"{path}: no slo-reactive or LT-F point meets the targets")
    pick = {r["policy"]: r for r in rows}
    return (
        Point("slo-reactive", pick[slo["policy"]]["params"]),
        Point("plan", pick[ramp["policy"]]["params"]),
    )


def interactive_load(p: Any, demand: Any) -> Array:
    """[H, r, m] the log's interactive load per hour in instance equivalents (the units of
    ``PlanTargets.expected``)."""
    tokens = demand.hourly_tokens_per_s("mean").copy()
    tokens[..., p.deferrable] = 0.0
    return np.stack([instance_equivalents(p, h) for h in tokens])


def summary(name: str, res: Any) -> str:
    att = " ".join(f"{k} {o.sla_attainment:.4f}" for k, o in res.tiers.items())
    return f"{name:14s} {res.gpu_hours:8,.0f} GPU-h (scaling {res.gpu_hours_scaling:6,.0f})  {att}"


def hourly_metered(res: Any, H: int) -> Array:
    gpus = res.timeline["gpus"].to_numpy()[: H * 60]
    return np.asarray(gpus.reshape(H, 60).sum(axis=1) / 60.0, dtype=float)


def split(delta: Array, bought: Array, came: np.ndarray, tail: int) -> dict[str, Array]:
    """[r, m] GPU-hours of ``delta`` [H, r, m] in the hours LT-F bought a ramp that came,
    one that did not, the ``tail`` hours after a purchase, and the rest."""
    b = bought > 1e-9
    after = np.zeros_like(b)
    for k in range(1, tail + 1):
        after[k:] |= b[:-k]
    after &= ~b
    rest = ~(b | after)
    return {
        "bought, came": (delta * (b & came)).sum(axis=0),
        "bought, none": (delta * (b & ~came)).sum(axis=0),
        f"{tail} h after": (delta * after).sum(axis=0),
        "rest": (delta * rest).sum(axis=0),
    }


def show_pools(p: Any, parts: dict[str, Array], total: Array, bought_gpu: Array) -> None:
    print("\nLT-F minus slo-reactive per pool (instance GPU-h), by where it falls")
    head = ["total", *parts, "bought GPU"]
    print(f"{'pool':28s}" + "".join(f"{c:>14s}" for c in head))
    for (r, m), v in np.ndenumerate(total):
        vals = [v, *(x[r, m] for x in parts.values()), bought_gpu[r, m]]
        print(f"{p.regions[r] + '/' + p.models[m]:28s}" + "".join(f"{x:14,.0f}" for x in vals))
    vals = [total.sum(), *(x.sum() for x in parts.values()), bought_gpu.sum()]
    print(f"{'total':28s}" + "".join(f"{x:14,.0f}" for x in vals))


def show_hours(start: pd.Timestamp, cols: dict[str, Array]) -> None:
    print("\nper hour: metered GPU-h (whole VMs) and the instance GPU-h LT-F bought ahead")
    print(f"{'hour':12s}" + "".join(f"{c:>14s}" for c in cols))
    H = len(next(iter(cols.values())))
    for h in range(H):
        label = str(start + pd.Timedelta(hours=h))[5:16]
        print(f"{label:12s}" + "".join(f"{v[h]:14,.0f}" for v in cols.values()))
    print(f"{'total':12s}" + "".join(f"{v.sum():14,.0f}" for v in cols.values()))


def show_rises(p: Any, fc: Array, real: Array, bought: Array, eps: float) -> None:
    """Per pool: the plan's forecast rise (expected load, hour to hour) against the realised
    rise of the interactive load, over the hours where either rises by more than ``eps``."""
    f_up, r_up = np.diff(fc, axis=0), np.diff(real, axis=0)
    print(f"\nhour-ahead rise per pool (instance equivalents; rises above {eps:g})")
    head = ["fc rises", "came", "sum fc", "sum real", "missed", "sum missed", "bought inst"]
    print(f"{'pool':28s}" + "".join(f"{c:>12s}" for c in head))
    for r, m in np.ndindex(fc.shape[1:]):
        f, x = f_up[:, r, m], r_up[:, r, m]
        fr = f > eps
        miss = (x > eps) & ~fr
        vals = [fr.sum(), (fr & (x > eps)).sum(), f[fr].sum(), np.maximum(x[fr], 0).sum()]
        vals += [miss.sum(), x[miss].sum(), bought[1:, r, m].sum()]
        print(f"{p.regions[r] + '/' + p.models[m]:28s}" + "".join(f"{v:12,.1f}" for v in vals))
    fr, xr = f_up > eps, r_up > eps
    corr = np.corrcoef(f_up[fr | xr], r_up[fr | xr])[0, 1] if (fr | xr).sum() > 2 else np.nan
    print(
        f"all pools: {fr.sum()} forecast rises, {(fr & xr).sum()} came ({(fr & ~xr).sum()} did "
        f"not); {(xr & ~fr).sum()} realised rises unforecast; correlation of the rises {corr:.2f}"
    )


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/servegen.yaml")
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--end", default=None)
    ap.add_argument("--plans", required=True, help="a plan-target pickle (bench/levers.py cache)")
    ap.add_argument("--levers", required=True, help="a bench/levers.py --out JSON")
    ap.add_argument("--lower", default=None, help="plans of a lower quantile (a pickle)")
    ap.add_argument("--ramp", default=None, help="JSON params overriding LT-F's point")
    ap.add_argument("--tail", type=int, default=3, help="hours after a purchase counted apart")
    ap.add_argument("--eps", type=float, default=0.5, help="smallest rise counted (instances)")
    return ap


def comparators(
    ramp: Point, p: Any, seq: PlanTargets, came: np.ndarray, band: list[Any] | None
) -> dict[str, Recorded]:
    """LT-F and its comparators at LT-F's dials (module docstring), in the order printed;
    ``band ramps`` only with ``band`` (the lower quantile's plans)."""
    lower = {} if band is None else {"band ramps": recorded(ramp, p, seq, None, lower=band)}
    return {
        "LT-F": recorded(ramp, p, seq, None),
        "buy is a step": recorded(ramp, p, seq, None, buy_is_step=True),
        "no ramps": recorded(ramp, p, seq, np.zeros_like(came)),
        **lower,
        "oracle ramps": recorded(ramp, p, seq, came),
    }


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    cfg = load_config(a.config)
    con = duckdb.connect(a.warehouse, read_only=True)
    end = pd.Timestamp(a.end).to_pydatetime() if a.end else None
    start, _, p, demand, serving, _, clair = replay_setup(con, cfg, a.hours, end)
    con.close()
    real = interactive_load(p, demand)
    H = real.shape[0]
    seq = window_plans(Path(a.plans), start, H)
    slo, ramp = best_points(Path(a.levers))
    if a.ramp:  # LT-F at other dials, e.g. the slo-reactive point's own
        ramp = Point("plan", {**ramp.params, **json.loads(a.ramp)})
    came = np.zeros((H, *real.shape[1:]), bool)
    came[1:] = np.diff(real, axis=0) > a.eps
    band = window_plans(Path(a.lower), start, H).hourly if a.lower else None
    pols = comparators(ramp, p, seq, came, band)
    runs: dict[str, Any] = {
        "slo-reactive": simulate(p, demand, build_policy(slo, p, demand, {}), serving=serving)
    }
    for name, pol in pols.items():
        runs[name] = simulate(p, demand, pol, serving=serving)
    print(f"window from {start}, {H} h; slo-reactive {slo.label}; LT-F {ramp.label}")
    for name, res in runs.items():
        print(summary(name, res))
    bought = bought_per_hour(pols["LT-F"], real)
    tables(a, p, start, runs, bought, came, _gpus_per_instance(p, clair))
    show_rises(p, seq.expected, real, bought, a.eps)
    return 0


def tables(
    a: argparse.Namespace,
    p: Any,
    start: pd.Timestamp,
    runs: dict[str, Any],
    bought: Array,
    came: np.ndarray,
    gpi: Array,
) -> None:
    """The per-pool and per-hour tables of the replays ``runs`` (module docstring), instances
    priced at ``gpi`` GPUs each."""
    H = len(bought)
    inst = {
        k: v.instances["instances"].to_numpy().reshape(-1, *gpi.shape)[:H] * gpi
        for k, v in runs.items()
    }
    delta = inst["LT-F"] - inst["slo-reactive"]
    show_pools(p, split(delta, bought, came, a.tail), delta.sum(axis=0), (bought * gpi).sum(axis=0))
    cols = {k: hourly_metered(v, H) for k, v in runs.items()}
    cols["LT-F bought"] = (bought * gpi).sum(axis=(1, 2))
    show_hours(start, cols)


def _gpus_per_instance(p: Any, clair: Any) -> Array:
    """[r, m] GPUs an instance occupies on its pool's clairvoyant VM type."""
    out = np.zeros(clair.vm_types.shape)
    for (r, m), g in np.ndenumerate(clair.vm_types):
        out[r, m] = p.gpus_per_vm[g] / p.ipv[m, g]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
