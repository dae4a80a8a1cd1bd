"""The fluid's agreement with the iteration-level reference over many traces (issue #13).

bench/simulate.py measures one trace per run. The serving model's choices were made on the
calibration day and eleven training traces and reported on three test traces (README,
"Serving model"); this runs all fifteen, each through the same agreement (ServeGen m-mid,
4 h from the start hour, scale 0.02, Llama2-70B on A100, 24 round-robin instances at
utilisations 0.5, 0.7, 0.85 and 0.95 of the calibration's κ; planner.sim.agreement.compare):

* ``test``: day 1 seed 7 (the bench trace), day 3 seed 7, day 1 seed 8, all from 10:00;
* ``calibration``: day 2 seed 7 from 10:00 (the stored curves' day);
* ``training``: the twelfth session's eleven traces, sharing no day or seed with the test
  traces (days 2 and 4-8, seeds 9-14, from 10:00 or 16:00).

Printed per set, over its interactive rows, for the request-level fluid (``fluid_sla``) and
the per-minute model (``minute_sla``): rows within 1 point, mean and largest absolute error;
then per tier and utilisation over all the traces chosen, the mean signed error (fluid minus
reference, points): a bias shared by the traces shows there, where the absolute errors mix
it with each trace's own. ``--json`` adds every row.

Each share is rounded to 4 decimals first (as bench/simulate.py prints it); a row exactly
1 point off counts as within.

    flock /tmp/sageserve-heavy.lock .venv/bin/python bench/agreement_sets.py [--json]
        [--sets test,calibration,training] [--instances 24] [--hours 4] [--scale 0.02]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from flows.cli.common import progress_bar
from planner.config import load_config
from planner.sim.latency import tier_targets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simulate import agreement, error_points, pool_arguments

# (day, seed, start hour) of each set's traces
SETS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "test": ((1, 7, 10), (3, 7, 10), (1, 8, 10)),
    "calibration": ((2, 7, 10),),
    "training": (
        (2, 9, 16),
        (4, 10, 10),
        (4, 11, 16),
        (5, 12, 16),
        (5, 13, 10),
        (6, 9, 16),
        (6, 14, 10),
        (7, 10, 10),
        (7, 11, 16),
        (8, 12, 16),
        (8, 14, 10),
    ),
}
COLUMNS = ("fluid_sla", "minute_sla")


def trace_rows(
    args: argparse.Namespace, day: int, seed: int, hour: int, niw: str
) -> list[dict[str, object]]:
    """One trace's interactive agreement rows (bench/simulate.py's; ``niw``, the tier without
    a latency target, left out), each with its trace."""
    one = argparse.Namespace(**vars(args), day=day, seed=seed, start_hour=hour, curves="stored")
    name = f"d{day}s{seed}h{hour}"
    rows = agreement(one)["agreement"]
    return [{"trace": name, **r} for r in rows if r["tier"] != niw]  # type: ignore[attr-defined]


def errors(rows: list[dict[str, object]]) -> dict[str, object]:
    """Each model's rows within 1 point, mean and largest absolute error (points), over
    ``rows`` (at least one)."""
    out: dict[str, object] = {"rows": len(rows)}
    reference = [float(r["reference_sla"]) for r in rows]  # type: ignore[arg-type]
    for column in COLUMNS:
        model = [float(r[column]) for r in rows]  # type: ignore[arg-type]
        prefix = column.removesuffix("_sla")
        within, mean, worst = error_points(model, reference)
        out[f"{prefix}_within_1_point"] = within
        out[f"{prefix}_mean_abs_error_points"] = mean
        out[f"{prefix}_max_abs_error_points"] = worst
    return out


def signed(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Per tier and utilisation, each model's mean signed error over the traces (points)."""
    out = []
    for key in sorted({(r["tier"], r["utilisation"]) for r in rows}):
        mine = [r for r in rows if (r["tier"], r["utilisation"]) == key]
        ref = np.array([r["reference_sla"] for r in mine], float)
        cells = {
            f"{c.removesuffix('_sla')}_signed_points": round(
                100.0 * float(np.mean(np.array([r[c] for r in mine], float) - ref)), 2
            )
            for c in COLUMNS
        }
        out.append({"tier": key[0], "utilisation": key[1], "traces": len(mine), **cells})
    return out


def run(args: argparse.Namespace) -> dict[str, object]:
    """Every chosen set's traces through the agreement; the summaries (module docstring)."""
    chosen = list(dict.fromkeys(s.strip() for s in args.sets.split(",") if s.strip()))
    unknown = sorted(set(chosen) - set(SETS))
    if unknown:
        raise SystemExit(f"--sets: unknown set(s) {unknown}; choose from {sorted(SETS)}")
    if not chosen:
        raise SystemExit(f"--sets: name at least one set of {sorted(SETS)}")
    niw = tier_targets(load_config())[-1].tier  # as bench/simulate.py
    by_set: dict[str, list[dict[str, object]]] = {}
    with progress_bar() as bar:
        task = bar.add_task("agreement: traces", total=sum(len(SETS[s]) for s in chosen))
        for s in chosen:
            by_set[s] = []
            for day, seed, hour in SETS[s]:
                by_set[s] += trace_rows(args, day, seed, hour, niw)
                bar.advance(task)
    every = [r for rows in by_set.values() for r in rows]
    return {
        "sets": {s: errors(rows) for s, rows in by_set.items()},
        "signed": signed(every),
        "rows": every,
    }


def print_tables(out: dict[str, object]) -> None:
    """The per-set errors, then the signed errors per tier and utilisation."""
    sets: dict[str, dict[str, object]] = out["sets"]  # type: ignore[assignment]
    heads = ("within 1 pt", "mean |err|", "max |err|")
    cells = ("within_1_point", "mean_abs_error_points", "max_abs_error_points")
    print(f"{'':18s}" + "".join(f" {m:>35s}" for m in ("request-level fluid", "per-minute model")))
    print(f"{'set':12s} {'rows':>5s}" + "".join(f" {h:>11s}" for h in heads * 2))
    for name, e in sets.items():
        values = [e[f"{m.removesuffix('_sla')}_{c}"] for m in COLUMNS for c in cells]
        print(f"{name:12s} {e['rows']:5d}" + "".join(f" {v:>11}" for v in values))
    head = f"{'tier':5s} {'utilisation':>11s} {'traces':>6s} {'fluid':>8s} {'minute':>8s}"
    print(f"\n{head}  (signed)")
    for r in out["signed"]:  # type: ignore[attr-defined]
        print(
            f"{r['tier']:5s} {r['utilisation']:11.2f} {r['traces']:6d}"
            f" {r['fluid_signed_points']:+8.2f} {r['minute_signed_points']:+8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pool_arguments(parser)
    parser.add_argument("--sets", default="test,calibration,training")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    out = run(args)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print_tables(out)


if __name__ == "__main__":
    main()
