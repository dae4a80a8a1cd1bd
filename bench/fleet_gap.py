"""Where the GPU-hours above the clairvoyant fleet go (issue #15): the best plan point, the
best reactive point (the cheaper of both families' cheapest points meeting the targets, read
from a ``bench/levers.py --out`` JSON) and the clairvoyant fleet (``planner.sim.bounds``)
replayed on one window with the levers bench's setup (warm-up, the plan cache: no plan is
solved again when ``--plans-cache`` holds them), each split per minute into:

* ``floor``: GPUs a pool holds only because of its availability floor (``min_instances``):
  the floor above what the capacity curves need for the minute's interactive load;
* ``curve need``: what the capacity curves need (``planner.sim.sizing.pool_instances``, every
  interactive tier at its 99 % target at the minute's true load and arrival CV) on the
  cheapest type that reaches the targets (the clairvoyant fleet's type for the pool);
* ``placement``: the same need on the types the fleet actually holds (its instance mix per
  pool) less the need on the clairvoyant type;
* ``headroom``: serving instances above the need on their own types (negative: minutes below
  it, the miss budget spent); ``NIW``: the clairvoyant fleet's instances added for NIW
  deadlines (a policy's NIW rides in its headroom);
* ``loading``: instances loading their model; ``provisioning``: VMs paid while they
  provision; ``idle slots``: usable VM GPUs no instance occupies (for the clairvoyant fleet:
  the packing relaxation's rounding to whole VMs).

The parts add up to each fleet's metered GPU-hours. Also per pool (region × model × VM type,
with the held capacity's utilisation) and per hour of day, and the clairvoyant fleet held at
the trailing maximum of ``--holds`` minutes. Arguments: the levers command's (the same window,
plans cache and families) plus ``--levers levers.json`` and ``--json``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from levers import Bench, bench_plans, parser, setup

from flows.sweep import process_pool
from planner.sim.bounds import Clairvoyant, home_pool_cv, packed_gpus
from planner.sim.demand import MinuteDemand
from planner.sim.fleet import FleetParams, Targets
from planner.sim.fluid import Observation, Policy, simulate
from planner.sim.serving import ServingModel
from planner.sim.sizing import pool_instances
from planner.sim.sweep import TARGETS, Point, build_policy, floors

log = logging.getLogger("bench.fleet_gap")
CLAIR = "clairvoyant"
Array = np.ndarray
PARTS = (
    "floor",
    "curve need",
    "placement",
    "headroom",
    "NIW",
    "loading",
    "provisioning",
    "idle slots",
)


@dataclass
class Tape:
    """Per metered minute: serving and loading instances [T, r, m, g], VM GPUs [T, r, g]
    (paid: usable and provisioning), busy GPUs [T, r, m] of the shared pools and the GPUs
    of VMs provisioning [T, r, g]."""

    inst: Array
    loading: Array
    vm_gpus: Array
    busy: Array
    pending: Array


@dataclass
class Recorder:
    """A policy replayed as is, the fleet read at each decision (the state the replay metered
    in the minute before, with that minute's utilisation) and once more at the end."""

    inner: Policy
    keep_from: int
    rows: list[tuple[Array, ...]] = field(default_factory=list)
    fleet: Any = None
    util: Any = None

    def __post_init__(self) -> None:
        self.name, self.share_idle = self.inner.name, self.inner.share_idle
        if hasattr(self.inner, "niw_cap"):
            self.niw_cap = self.inner.niw_cap

    def initial(self, p: Any) -> Targets:
        return self.inner.initial(p)

    def decide(self, obs: Observation) -> Targets | None:
        self.fleet, self.util = obs.fleet, obs.utilisation
        if obs.minute > self.keep_from:
            self._read()
        return self.inner.decide(obs)

    def _read(self) -> None:
        f = self.fleet
        p = f.p
        od, spot = f.serving()
        reserved = f.targets.niw_reserved
        shared = od - (0.0 if reserved is None else np.minimum(reserved, od))
        vm_od, vm_spot = f.allocated_vms()
        loading = f.od.loading_total() + f.spot.loading_total()
        busy = self.util * (shared * p.gpus_per_instance[None]).sum(axis=2)
        pending = (f.od.pending_total() + f.spot.pending_total()) * p.gpus_per_vm[None]
        vm = (vm_od + vm_spot) * p.gpus_per_vm[None]
        self.rows.append((od + spot, loading, vm, busy, pending))

    def tape(self) -> Tape:
        """The window's tape: the last minute read from the fleet as the replay left it (its
        utilisation is never observed: the minute before's is used)."""
        self._read()
        inst, loading, vm, busy, pending = (np.stack(x) for x in zip(*self.rows, strict=True))
        return Tape(inst, loading, vm, busy, pending)


def best_points(path: Path, variant: str) -> dict[str, Point]:
    """The cheapest plan point of ``variant`` and the cheaper reactive family's cheapest
    point meeting the targets, from a levers JSON."""
    fr = json.loads(path.read_text())["frontier"][variant]
    base = [(f, fr[f]) for f in ("reactive", "slo-reactive") if fr.get(f)]
    if not base or not fr.get("plan"):
        raise SystemExit(f"{path}: no reactive or plan point meets the targets")
    fam, best = min(base, key=lambda x: x[1]["gpu_hours"])
    return {"plan": Point("plan", fr["plan"]["params"]), fam: Point(fam, best["params"])}


def replay(b: Bench, point: Point, plans: Any) -> tuple[Tape, float]:
    """``point`` replayed over warm-up and window; its tape of the window and metered GPU-h."""
    keep = 60 * b.warm
    rec = Recorder(build_policy(point, b.p, b.replayed, plans), keep)
    res = simulate(b.p, b.replayed, rec, serving=b.serving, metered_from=keep)
    return rec.tape(), res.gpu_hours


@dataclass
class Need:
    """The capacity curves' instances per minute on each VM type [T, r, m, g] (inf where a
    type cannot run the model), NIW excluded, no floor; the floors [r, m]; the clairvoyant
    fleet's type per pool and its instances."""

    per_type: Array
    floor: Array
    types: Array
    clair: Array


def curve_need(
    p: FleetParams, d: MinuteDemand, serving: ServingModel, floor: Array, clair: Clairvoyant
) -> Need:
    """The :class:`Need` of demand ``d`` on the serving model: every interactive tier at
    its target (``planner.sim.sweep.TARGETS``) at home routing, each pool on each type."""
    tiers = list(p.interactive)
    goal = {k: TARGETS.get(p.tiers[k], 0.99) for k in tiers}
    cv = home_pool_cv(p, d)
    rate = d.tokens / 60.0
    T, nr, nm, ng = d.minutes, *p.shape_rmg
    need = np.full((T, nr, nm, ng), np.inf)
    for r in range(nr):
        for m in range(nm):
            for g in range(ng):
                if p.ipv[m, g] > 0 and all((m, g, k) in serving.curves for k in tiers):
                    x = rate[:, r, m][:, tiers]
                    need[:, r, m, g] = pool_instances(serving, m, g, x, cv[:, r, m], tiers, goal)
    return Need(need, floor, clair.vm_types, clair.instances)


def clair_tape(p: FleetParams, demand: MinuteDemand, need: Need) -> Tape:
    """The clairvoyant fleet as a tape: its instances on its type per pool, no loading, the
    relaxation's packed GPUs as its VMs (spread over the region's types by instance GPUs),
    and its busy GPUs: the minute's interactive work on its type (NIW left out: most of it is
    due after the window, which the clairvoyant fleet never buys for)."""
    T = need.clair.shape[0]
    inst = np.zeros((T, *p.shape_rmg))
    for (r, m), g in np.ndenumerate(need.types):
        inst[:, r, m, g] = need.clair[:, r, m]
    gpi = np.asarray(p.gpus_per_instance, dtype=float)
    gpus = inst * gpi[None, None]
    packed = packed_gpus_per_region(p, need.clair, need.types)  # [T, r]
    held = gpus.sum(axis=2)  # [T, r, g]
    share = held / np.maximum(held.sum(axis=2, keepdims=True), 1e-12)
    vm = share * packed[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(p.theta > 0, 1.0 / p.theta, 0.0)  # [m, g, k]
    inter = demand.tokens / 60.0
    inter[..., p.deferrable] = 0.0  # NIW due after the window is never served inside it
    work = np.einsum("trmk,mgk->trmg", inter, per)
    busy = (work * (inst > 0) * gpi[None, None]).sum(axis=3)
    return Tape(inst, np.zeros_like(inst), vm, busy, np.zeros_like(vm))


def packed_gpus_per_region(p: Any, inst: Array, types: Array) -> Array:
    """[T, r]: ``planner.sim.bounds.packed_gpus`` region by region."""
    cols = []
    for r in range(inst.shape[1]):
        mask = np.zeros_like(inst)
        mask[:, r] = inst[:, r]
        cols.append(packed_gpus(p, mask, types))
    return np.stack(cols, axis=1)


def parts(p: Any, tape: Tape, need: Need, clairvoyant: bool = False) -> dict[str, Array]:
    """[T, r, m] GPUs of each part of the module docstring (``idle slots``: [T, r, 1] on the
    first model); they add up to the tape's VM GPUs."""
    gpi = np.asarray(p.gpus_per_instance, dtype=float)
    g_star = need.types  # [r, m]
    nr, nm = g_star.shape
    on_c = np.stack(
        [np.stack([need.per_type[:, r, m, g_star[r, m]] for m in range(nm)], 1) for r in range(nr)],
        1,
    )
    gpi_c = np.array([[gpi[m, g_star[r, m]] for m in range(nm)] for r in range(nr)])
    need_c = on_c * gpi_c[None]
    floor = need.floor[None] * gpi_c[None]
    base = np.maximum(need_c, floor)
    held = (tape.inst * gpi[None, None]).sum(axis=3)
    n = tape.inst.sum(axis=3, keepdims=True)
    mix = np.where(n > 0, tape.inst / np.maximum(n, 1e-12), 0.0)
    mix = np.where(n > 0, mix, np.eye(gpi.shape[1])[g_star][None])
    finite = np.where(np.isfinite(need.per_type), need.per_type, 0.0)
    own = np.maximum((mix * finite * gpi[None, None]).sum(axis=3), floor)
    if clairvoyant:
        own = base
    loading = (tape.loading * gpi[None, None]).sum(axis=3)
    idle, pending = np.zeros_like(held), np.zeros_like(held)
    pending[:, :, 0] = tape.pending.sum(axis=2)
    idle[:, :, 0] = tape.vm_gpus.sum(axis=2) - pending[:, :, 0] - (held + loading).sum(axis=2)
    extra = held - own
    return {
        "floor": base - need_c,
        "curve need": need_c,
        "placement": own - base,
        "headroom": np.zeros_like(extra) if clairvoyant else extra,
        "NIW": extra if clairvoyant else np.zeros_like(extra),
        "loading": loading,
        "provisioning": pending,
        "idle slots": idle,
    }


def split(p: Any, tapes: dict[str, Tape], need: Need) -> dict[str, dict[str, Array]]:
    """:func:`parts` of each fleet of ``tapes``, the one named ``CLAIR`` as the clairvoyant."""
    return {name: parts(p, tp, need, name == CLAIR) for name, tp in tapes.items()}


def pool_table(p: Any, tapes: dict[str, Tape]) -> dict[str, dict[str, float]]:
    """Per region / model / VM type each fleet's instance GPU-h (serving and loading), per
    region / VM type its idle slots, and per region / model its utilisation."""
    gpi = np.asarray(p.gpus_per_instance, dtype=float)
    out: dict[str, dict[str, float]] = {}
    for name, tp in tapes.items():
        gh = ((tp.inst + tp.loading) * gpi[None, None]).sum(axis=0) / 60.0  # [r, m, g]
        idle = (tp.vm_gpus - tp.pending).sum(axis=0) / 60.0 - gh.sum(axis=1)  # [r, g]
        busy = tp.busy.sum(axis=0) / 60.0
        serving = (tp.inst * gpi[None, None]).sum(axis=(0, 3)) / 60.0
        for (r, m, g), v in np.ndenumerate(gh):
            if v > 0.05:
                out.setdefault(f"{p.regions[r]} {p.models[m]} {p.vm_types[g]}", {})[name] = v
        for (r, g), v in np.ndenumerate(idle):
            if abs(v) > 0.05:
                out.setdefault(f"{p.regions[r]} (idle slots) {p.vm_types[g]}", {})[name] = v
        for (r, m), v in np.ndenumerate(busy):
            key = f"{p.regions[r]} {p.models[m]} utilisation"
            out.setdefault(key, {})[name] = v / serving[r, m] if serving[r, m] else 0.0
    return out


def holds(p: Any, need: Need, minutes: list[int]) -> dict[str, float]:
    """GPU-h of the clairvoyant fleet held at its trailing maximum over each of ``minutes``
    (packed as the bound), and at each hour's busiest minute."""
    out = {}
    c = need.clair
    T, nr, nm = c.shape
    for w in minutes:
        held = pd.DataFrame(c.reshape(T, -1)).rolling(w, min_periods=1).max().to_numpy()
        out[f"trailing max {w} min"] = float(
            packed_gpus(p, held.reshape(T, nr, nm), need.types).sum() / 60.0
        )
    busiest = np.repeat(c[: T - T % 60].reshape(-1, 60, nr, nm).max(axis=1), 60, axis=0)
    out["hour's busiest minute"] = float(packed_gpus(p, busiest, need.types).sum() / 60.0)
    return out


def by_hour(start: pd.Timestamp, tapes: dict[str, Tape]) -> dict[str, dict[str, float]]:
    """Per hour each fleet's VM GPU-h."""
    out: dict[str, dict[str, float]] = {}
    for name, tp in tapes.items():
        gpus = tp.vm_gpus.sum(axis=(1, 2))
        H = len(gpus) // 60
        for h, v in enumerate(gpus[: H * 60].reshape(H, 60).sum(axis=1) / 60.0):
            out.setdefault(f"{start + pd.Timedelta(hours=h):%H:%M}", {})[name] = float(v)
    return out


def decompose(
    b: Bench, points: dict[str, Point], plans: Any, hold_min: list[int]
) -> dict[str, Any]:
    """The module docstring's tables for ``points`` and the clairvoyant fleet."""
    need = curve_need(b.p, b.demand, b.serving, floors(b.cfg, b.p), b.clair)
    tapes: dict[str, Tape] = {}
    metered: dict[str, float] = {}
    for name, pt in points.items():
        tapes[name], metered[name] = replay(b, pt, plans)
        log.info("%s replayed: %.0f GPU-h metered", name, metered[name])
    tapes[CLAIR] = clair_tape(b.p, b.demand, need)
    metered[CLAIR] = b.clair.gpu_hours
    per_fleet = split(b.p, tapes, need)
    pools = [(r, m) for r in range(len(b.p.regions)) for m in range(len(b.p.models))]
    per_pool = {
        name: {
            f"{b.p.regions[r]} {b.p.models[m]}": {
                k: float(v[:, r, m].sum() / 60.0) for k, v in pr.items()
            }
            for r, m in pools
        }
        for name, pr in per_fleet.items()
    }
    return {
        "window": [str(b.start), str(b.stop)],
        "points": {k: v.label for k, v in points.items()},
        "metered_gpu_hours": metered,
        "parts": {
            n: {k: float(v.sum() / 60.0) for k, v in pr.items()} for n, pr in per_fleet.items()
        },
        "parts_per_pool": per_pool,
        "pools": pool_table(b.p, tapes),
        "hours": by_hour(b.start, tapes),
        "clairvoyant_holds": holds(b.p, need, hold_min),
    }


def show(out: dict[str, Any]) -> None:
    """The decomposition, the pools, the hours and the clairvoyant holds as text tables."""
    print(f"window {out['window'][0]} .. {out['window'][1]}")
    for k, v in out["points"].items():
        print(f"  {k}: {v}")
    names = list(out["metered_gpu_hours"])
    head = "".join(f"{n[:14]:>15s}" for n in names)

    def table(title: str, rows: dict[str, dict[str, float]], fmt: str = "15,.0f") -> None:
        print(f"\n{title:34s}{head}")
        for key, row in rows.items():
            cells = "".join(f"{row.get(n, 0.0):{fmt}}" if n in row else f"{'':15s}" for n in names)
            print(f"{key:34s}{cells}")

    rows = {part: {n: out["parts"][n][part] for n in names} for part in PARTS}
    rows["total (parts)"] = {n: sum(out["parts"][n].values()) for n in names}
    rows["metered"] = out["metered_gpu_hours"]
    table("GPU-h by part", rows)
    for n in names:
        pp = out["parts_per_pool"][n]
        print(f"\n{n}: parts per region / model")
        print(f"{'':34s}" + "".join(f"{x[:12]:>13s}" for x in PARTS))
        for pool, v in pp.items():
            print(f"{pool:34s}" + "".join(f"{v[x]:13,.0f}" for x in PARTS))
    util = {k: v for k, v in out["pools"].items() if k.endswith("utilisation")}
    table(
        "GPU-h by region / model / VM type",
        {k: v for k, v in out["pools"].items() if k not in util},
    )
    table("utilisation of serving capacity", util, "15.3f")
    table("GPU-h by hour", out["hours"])
    print("\nclairvoyant fleet held at:")
    for k, v in out["clairvoyant_holds"].items():
        print(f"  {k:30s} {v:10,.0f} GPU-h")


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    ap.add_argument("--levers", required=True, help="a bench/levers.py --out JSON of the window")
    ap.add_argument("--holds", default="21,60,180", help="trailing-max holds, minutes")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    clock = time.perf_counter()
    b = setup(a, clock)
    variant = b.names[0]
    points = best_points(Path(a.levers), variant)
    with process_pool(a.workers) as pool:
        plans, _ = bench_plans(b, pool, clock)
    out = decompose(b, points, plans[variant], [int(x) for x in a.holds.split(",") if x])
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        show(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
