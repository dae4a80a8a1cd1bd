"""Measure the latency curves and derive the capacity curves (configs/capacity/*.csv).

For every (model, VM type) placement of the default fleet: the iteration-level instance model
on a grid of utilisation ρ × per-instance inter-arrival CV (planner.sim.latency.measure_curve),
request sizes and tiers drawn from ServeGen request rows (m-mid, day 2, 24 h; a different day
from the agreement traces of bench/simulate.py), clipped to each model's context window.
Then the capacity table n*(λ, c) from the curves.

    flock /tmp/sageserve-heavy.lock .venv/bin/python bench/calibrate.py [--requests-per-point N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from planner.config import load_config
from planner.config.models import FleetConfig
from planner.sim.capacity import CAPACITY_CURVES, LATENCY_CURVES, capacity_table
from planner.sim.latency import COLUMNS, LatencyCurves, measure_curve, tier_targets
from planner.sim.profile import fit_context, profiles_for_config
from planner.workload.servegen import ServeGenSpec, load_source, local_window

ROOT = Path(__file__).resolve().parents[1]
PERF_FILE = "perf_model_4_models.csv"
log = logging.getLogger("calibrate")


def servegen_rows(
    cfg: FleetConfig,
    source: Path,
    model: str,
    start_s: float,
    hours: float,
    scale: float,
    seed: int = 7,
) -> pd.DataFrame:
    """ServeGen request rows of ``source`` (:func:`planner.workload.servegen.local_window`)."""
    spec = ServeGenSpec(model, scale=scale, seed=seed)
    return local_window(cfg, load_source(source), spec, start_s, hours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--requests-per-point", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_config()
    profiles = profiles_for_config(cfg, args.shared / "data" / "sageserve_perf" / PERF_FILE)
    rows = servegen_rows(
        cfg, args.shared / "data/servegen/language/m-mid", "llama2-70b", 2 * 86400.0, 24, 0.002
    )
    prompt = np.maximum(rows["input_tokens"].to_numpy(np.int64), 1)
    output = np.maximum(rows["output_tokens"].to_numpy(np.int64), 1)
    targets = tier_targets(cfg)
    tier = np.asarray(rows["tier"].map({t.tier: i for i, t in enumerate(targets)}), np.int64)
    frames, timings = [], {}
    for (model, vm), prof in profiles.items():
        t0 = time.perf_counter()
        # the sizes a deployment of this model receives (ServeGen's long prompts clipped to
        # its context window, planner.sim.profile.fit_context)
        p_fit, o_fit = fit_context(prompt, output, prof.max_context)
        curve = measure_curve(
            prof, targets, p_fit, o_fit, args.requests_per_point, seed=args.seed, tier=tier
        )
        timings[f"{model}/{vm}"] = round(time.perf_counter() - t0, 1)
        log.info("%s on %s: %.1f s", model, vm, timings[f"{model}/{vm}"])
        frames.append(curve.assign(model=model, vm_type=vm))
    table = pd.concat(frames)[COLUMNS]
    LATENCY_CURVES.parent.mkdir(parents=True, exist_ok=True)
    tmp = LATENCY_CURVES.with_suffix(".tmp")
    table.round(6).to_csv(tmp, index=False)
    tmp.replace(LATENCY_CURVES)
    curves = LatencyCurves.from_frame(pd.read_csv(LATENCY_CURVES))
    kappa = curves.capacity
    cap = capacity_table(curves)
    tmp = CAPACITY_CURVES.with_suffix(".tmp")
    cap.to_csv(tmp, index=False)
    tmp.replace(CAPACITY_CURVES)
    out = {
        "token_sample_rows": len(rows),
        "mean_prompt": round(float(prompt.mean()), 1),
        "mean_output": round(float(output.mean()), 1),
        "seconds_per_placement": timings,
        "latency_curve_rows": len(table),
        "capacity_rows": len(cap),
        "kappa": {f"{m}/{g}": round(float(v), 4) for (m, g), v in kappa.items()},
    }
    print(json.dumps(out, indent=2) if args.json else out)


if __name__ == "__main__":
    main()
