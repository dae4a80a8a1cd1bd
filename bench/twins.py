"""Within-window twins: how much of the reference's SLA attainment the fluid's minute
aggregates cannot see, and whether the request-level fluid sees it (issue #13).

A twin of an agreement trace keeps every arrival time and, within each ``--window``-second
window of the replayed time, hands the window's (prompt, output, tier) triples to its
arrivals in a random order. So every minute (the windows nest in the replay's minutes) keeps
its requests per tier, its size histogram, its token and busy-second sums and the CV and
burst variances of its arrivals: every input of the per-minute model
(planner.sim.minute_model, through planner.sim.pool), given one κ table for both (the
trace's). What changes is which arrival carries which request. Both the trace and its twin
go through the iteration-level reference (planner.sim.instances) at utilisations 0.5, 0.7,
0.85 and 0.95 of κ, as in bench/simulate.py's agreement, and through both fluids. The
per-minute model must not move (``minute_moved_points``). Where a row's reference moves by
more than 2 points between the trace and its twin, no fluid that reads only those
aggregates can be within 1 point of both (``rows_apart_over_2``). The request-level fluid
(planner.sim.request_fluid) reads the rows, so it can follow the reference: its error on
the trace and on the twin (``fluid_*``: rows within 1 point, mean and largest absolute
error over both), beside the per-minute model's (``minute_*``).
``--within`` sets among which requests of a window the triples are permuted:

* ``pool``: all of them. In ServeGen a client keeps one tier, so this moves tiers between
  clients' arrivals as well as sizes;
* ``tier``: one tier's (each arrival keeps its tier; sizes move between the tier's clients);
* ``tenant``: one tenant's (ServeGen client's). A null check: ServeGen draws a client's
  sizes independently of its arrivals, so this twin differs from the trace only by chance.

    flock /tmp/sageserve-heavy.lock .venv/bin/python bench/twins.py [--json]
        [--day 1] [--start-hour 10] [--seed 7] [--window 60] [--within pool|tier|tenant]
        [--twin-seed 0] [--instances 24] [--hours 4] [--scale 0.02]
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import cast

import numpy as np
import numpy.typing as npt

from flows.cli.common import progress_bar
from planner.sim.agreement import compare, replay_arrivals
from planner.sim.capacity import load_latency_curves
from planner.sim.mix_kappa import kappa_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import MODEL, VM, agreement_inputs, print_report, trace_arguments

UTILISATIONS = (0.5, 0.7, 0.85, 0.95)
APART_POINTS = 2.0  # a pair further apart than this: no one fluid is within 1 point of both
GROUPS = {"pool": None, "tier": "tier", "tenant": "tenant"}  # --within: permute among


def twin_index(
    arrival_s: npt.ArrayLike,
    window_s: float,
    rng: np.random.Generator,
    group: npt.ArrayLike | None = None,
) -> npt.NDArray[np.int64]:
    """``idx`` such that request i of the twin carries the sizes and tier of request
    ``idx[i]``: within each ``window_s``-second window of ``arrival_s`` (and each ``group``,
    where given), a uniformly random permutation of the window's requests. Every window (and
    group) keeps its multiset of requests; the arrival times do not move."""
    t = np.asarray(arrival_s, float)
    key = (t // window_s).astype(np.int64)  # as planner.sim.pool.minute_index buckets minutes
    if group is not None:
        _, g = np.unique(np.asarray(group), return_inverse=True)
        key = key * (int(g.max()) + 1) + g
    slots = np.lexsort((np.arange(len(t)), key))  # each key's requests, in row order
    donors = np.lexsort((rng.random(len(t)), key))  # each key's requests, shuffled
    idx = np.empty(len(t), np.int64)
    idx[slots] = donors
    return idx


def twin_rows(args: argparse.Namespace) -> dict[str, object]:
    """The trace and its twin through both models at each utilisation (module docstring)."""
    prof, targets, (rows, tier, prompt, output) = agreement_inputs(args)
    lc = load_latency_curves()
    kappa = lc.capacity[(MODEL, VM)]
    busy = prof.busy_s(prompt, output)
    replay = partial(
        compare,
        profile=prof,
        targets=targets,
        curves=[lc.curve(MODEL, VM, t.tier) for t in targets],
        capacity=kappa,
        instances=args.instances,
        # one κ table for both: kappa_table samples rows by index, so a table measured on the
        # twin's rows would differ by sampling alone and move the fluid
        queue_kappa=kappa_table(prof, prompt, output),
    )
    t = rows["t"].to_numpy(float)
    t = t - t.min()
    column = GROUPS[args.within]
    group = None if column is None else rows[column].to_numpy()
    rng = np.random.default_rng(args.twin_seed)
    out: list[dict[str, object]] = []
    with progress_bar() as bar:
        task = bar.add_task("twins: utilisations", total=len(UTILISATIONS))
        for u in UTILISATIONS:
            arrivals = replay_arrivals(t, busy, args.instances, kappa, u)
            idx = twin_index(arrivals, args.window, rng, group)
            pair = [
                replay(t, p, o, k, utilisations=(u,)).rows
                for p, o, k in ((prompt, output, tier), (prompt[idx], output[idx], tier[idx]))
            ]
            out += [
                {
                    "utilisation": u,
                    "tier": a.tier,
                    "fluid_sla": a.fluid_sla,
                    "twin_fluid_sla": b.fluid_sla,
                    "minute_sla": a.minute_sla,
                    "twin_minute_sla": b.minute_sla,
                    "reference_sla": a.reference_sla,
                    "twin_reference_sla": b.reference_sla,
                }
                for a, b in zip(*pair, strict=True)
            ]
            bar.advance(task)
    return {"trace": trace_name(args), "requests": len(rows), **summary(out, targets[-1].tier)}


def trace_name(args: argparse.Namespace) -> str:
    """The trace and the twin's construction, as the report's first line."""
    return (
        f"servegen m-mid day {args.day} {args.start_hour:02d}:00+{args.hours}h"
        f" scale {args.scale} seed {args.seed}, window {args.window:g} s within"
        f" {args.within}, twin seed {args.twin_seed}, {args.instances} instances"
    )


def summary(out: list[dict[str, object]], niw: str) -> dict[str, object]:
    """Over the interactive rows (every tier but ``niw``, which has no latency target): how
    far the reference moves between the trace and its twin, how far each fluid does, and
    each fluid's error on the trace and the twin together (2 × the rows)."""
    inter = [r for r in out if r["tier"] != niw]

    def points(a: str, b: str) -> list[float]:
        return [100 * abs(cast(float, r[a]) - cast(float, r[b])) for r in inter]

    apart = points("twin_reference_sla", "reference_sla")
    errors: dict[str, object] = {}
    for fluid in ("fluid", "minute"):
        err = points(f"{fluid}_sla", "reference_sla")
        err += points(f"twin_{fluid}_sla", "twin_reference_sla")
        errors[f"{fluid}_rows_within_1_point"] = sum(e <= 1.0 for e in err)
        errors[f"{fluid}_mean_abs_error_points"] = round(float(np.mean(err)), 2)
        errors[f"{fluid}_max_abs_error_points"] = round(max(err), 2)
    return {
        "max_apart_points": round(max(apart), 2),
        "mean_apart_points": round(float(np.mean(apart)), 2),
        "rows_apart_over_2": sum(a > APART_POINTS for a in apart),
        "minute_moved_points": round(max(points("twin_minute_sla", "minute_sla")), 6),
        "fluid_moved_points": round(max(points("twin_fluid_sla", "fluid_sla")), 2),
        **errors,
        "interactive_rows": len(inter),
        "rows": out,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    trace_arguments(parser)
    parser.add_argument("--window", type=float, default=60.0, help="twin window (s, replay time)")
    parser.add_argument(
        "--within",
        choices=tuple(GROUPS),
        default="pool",
        help="permute among the window's requests (pool), its tier's or its tenant's",
    )
    parser.add_argument("--twin-seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    per_minute = 60.0 / args.window if args.window > 0 else 0.0
    if per_minute < 1 or abs(per_minute - round(per_minute)) > 1e-9:
        parser.error(f"--window {args.window}: must divide the 60-s minute (e.g. 60, 30, 10)")
    out = twin_rows(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    columns = ("fluid_sla", "twin_fluid_sla", "reference_sla", "twin_reference_sla")
    print_report(out, "rows", (*columns, "minute_sla", "twin_minute_sla"))


if __name__ == "__main__":
    main()
