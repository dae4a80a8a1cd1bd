"""Forecast accuracy on ServeGen-derived logs (the real-traffic test bed), per metric and lead.

Each log is 10 days of one ServeGen client population turned into request rows, ingested, and
the daily selection run at its end; the deployed choice (chosen at each origin from earlier
folds only, strictly out of sample) is scored per metric at leads 1, 6 and 24 h and pooled over
leads 1-24: MASE against seasonal naive at 24 h and 168 h, scaled pinball loss, 95 % band
coverage, and the number of daily origins each figure rests on.

Tuning and reporting use different clients: the forecasters are tuned on m-mid
(``--logs m-mid:7``); the report logs are m-large with two seeds (different clients pinned to
different regions and tiers). ``--candidates`` runs the selection again with another candidate
list on the same log, side by side (for the before/after of a new candidate).

    .venv/bin/python bench/forecast_accuracy.py [--logs m-large:7,m-large:11] [--scale 0.002]
        [--candidates default,default+gbm] [--keep DIR --reuse-selections [--refinish]] [--json]
"""

from __future__ import annotations

import argparse
import json
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SERVEGEN = ROOT.parent / "shared" / "data" / "servegen" / "language"
MODEL_OF = {"m-mid": "llama3.1-8b", "m-large": "llama2-70b"}

sys.path.insert(0, str(Path(__file__).resolve().parent))
from forecast_bands import band_rows, print_bands, refinished, score_bands  # noqa: E402
from forecast_nowcast import tune_nowcast, with_nowcast  # noqa: E402


def build(
    workdir: Path,
    scale: float,
    seed: int,
    sources: tuple[str, ...] = ("m-mid", "m-large"),
) -> Path:
    sageserve = str(Path(sys.executable).with_name("sageserve"))
    logs, wh = workdir / "logs", workdir / "wh.duckdb"
    args = [sageserve, "synth-servegen"]
    for src in sources:
        args += ["--source", str(SERVEGEN / src), "--model", MODEL_OF[src]]
    args += ["--scale", str(scale), "--seed", str(seed), "--out", str(logs)]
    subprocess.run(args, check=True, capture_output=True)
    subprocess.run(
        [sageserve, "--warehouse", str(wh), "ingest", str(logs)],
        check=True,
        capture_output=True,
    )
    return wh


def evaluate(
    wh: Path,
    workers: int = 2,
    candidates: list[str] | None = None,
    shifts: tuple[int, ...] = (0,),
    champion: str | None = None,
    bands: tuple[str, ...] = (),
    cache: Path | None = None,
    refinish: bool = False,
) -> dict[str, Any]:
    """The selection at the end of the log (and ``shifts`` hours earlier: origins at other
    clock hours, as the hourly job meets them); ``by_horizon`` pools the deployed rows of all
    of them, ``overall``/``by_metric`` are the unshifted run's (as ``sageserve backtest``).
    ``bands``: each selection's rows re-calibrated with each band (:mod:`forecast_bands`),
    pooled the same way (``out["bands"]``). ``cache``: a folder each selection is pickled to
    on its first run and read from after (delete it when the model changes); ``refinish``: a
    kept selection's bands and nowcasts made again (:func:`forecast_bands.refinished`)."""
    import pandas as pd

    from flows.forecasting import settings_from_config
    from flows.warehouse.connection import connect
    from planner.forecast.horizon import deployed_hours
    from reports.backtest import aggregate

    cfg = _config(candidates, champion)
    settings = settings_from_config(cfg)
    rows, walls, origins = [], [], []
    by_band: dict[str, list[Any]] = {b: [] for b in bands}
    out: dict[str, Any] = {}
    with connect(wh) as con:
        row = con.execute("SELECT max(hour) FROM demand_hourly WHERE coverage > 0").fetchone()
        if row is None or row[0] is None:
            raise SystemExit(f"{wh}: no demand to score; ingest a log first")
        for shift in shifts:
            as_of = pd.Timestamp(row[0]) + pd.Timedelta(hours=1 - shift)
            selection, wall = _selection(con, cfg, as_of, workers, cache, shift)
            walls.append(wall)
            if refinish:
                selection = refinished(selection, con, _panel(con, as_of, settings), settings)
            deployed = deployed_hours(selection.hours, selection.folds, selection.deployed)
            rows.append(with_nowcast(con, deployed, as_of, settings))
            if bands:
                for spec, part in _bands_of(con, selection, as_of, settings, bands).items():
                    by_band[spec].append(part)
            origins += [str(o) for o in sorted(selection.deployed["origin"].unique())]
            if not out:
                out = aggregate(selection)
                out["series"] = len(selection.fitted)
    pooled = pd.concat(rows, ignore_index=True)
    return _pooled(out, pooled, by_band, walls, origins, settings, cfg)


def _bands_of(
    con: Any, selection: Any, as_of: Any, settings: Any, bands: tuple[str, ...]
) -> dict[str, Any]:
    """Per band spec, ``selection``'s rows re-calibrated with it (:mod:`forecast_bands`) on
    the warehouse's panel as of ``as_of``."""
    return band_rows(selection, _panel(con, as_of, settings), settings.backtest, bands)


def _pooled(
    out: dict[str, Any],
    pooled: Any,
    by_band: dict[str, list[Any]],
    walls: list[float],
    origins: list[str],
    settings: Any,
    cfg: Any,
) -> dict[str, Any]:
    """``out`` (the unshifted run's figures) with the figures pooled over every selection:
    per metric and lead of the deployed rows ``pooled`` (and of each band's, when any), and
    what they rest on (each selection's wall time ``walls``, every deployed origin)."""
    from planner.forecast.horizon import summarize

    out["by_horizon"] = summarize(pooled, LEADS)
    out["rows"] = pooled
    if by_band:
        out |= score_bands(by_band, LEADS)
    out["selection_s"] = round(walls[0], 1)
    out["nowcast_minutes"] = settings.nowcast_minutes
    out["deployed_origins"] = sorted(origins)
    out["candidates_run"] = list(cfg.forecast.candidates)
    out["champion"] = cfg.forecast.champion
    return out


def _panel(con: Any, as_of: Any, settings: Any) -> Any:
    """The selection's panel at ``as_of`` (hours before it)."""
    from flows.forecasting import load_demand
    from planner.forecast.series import build_panel

    demand = load_demand(con, as_of, settings.history_h)
    return build_panel(demand, as_of, settings.history_h, settings.metrics)


def _config(candidates: list[str] | None, champion: str | None) -> Any:
    """The config with the forecast's candidates and champion replaced where given."""
    from planner.config import load_config

    cfg = load_config()
    update = {k: v for k, v in (("candidates", candidates), ("champion", champion)) if v}
    if update:
        cfg = cfg.model_copy(update={"forecast": cfg.forecast.model_copy(update=update)})
    return cfg


def _selection(
    con: Any, cfg: Any, as_of: Any, workers: int, cache: Path | None, shift: int
) -> tuple[Any, float]:
    """The selection at ``as_of`` and its wall time (read from ``cache`` if it is there)."""
    from flows.forecasting import run_selection

    stored = cache / f"selection-{shift}.pkl" if cache else None
    if stored is not None and stored.exists():
        selection, wall = pickle.loads(stored.read_bytes())
        return selection, wall
    started = time.perf_counter()
    selection = run_selection(con, cfg, as_of, workers)
    wall = time.perf_counter() - started
    if stored is not None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(pickle.dumps((selection, wall)))
    return selection, wall


LEADS = (1, 2, 6, 24)  # 2: the hour a plan made 20 minutes before it carries out


def _candidates(spec: str) -> list[str] | None:
    from planner.config import load_config

    default = list(load_config().forecast.candidates)
    if spec == "default":
        return None
    names = spec.split("+")
    out = default if names[0] == "default" else [names[0]]
    return out + [n for n in names[1:] if n not in out]


def print_table(label: str, result: dict[str, Any]) -> None:
    """One run's report: its header, the deployed figures per metric and lead, the
    nowcast's, the unshifted run's overall figures and choices, and the bands' (if any)."""
    _print_header(label, result)
    _print_leads(result)
    _print_nowcast(result)
    print(
        "overall (unshifted run, fold means, as `sageserve backtest`):",
        {k: round(v, 4) for k, v in result["overall"].items()},
    )
    print("chosen:", result.get("chosen"))
    if result.get("bands"):
        print_bands(result)


def _print_header(label: str, result: dict[str, Any]) -> None:
    """What the figures rest on, and the per-lead table's column heads."""
    scored = result["deployed_origins"]
    hours = sorted({o[11:16] for o in scored})
    print(
        f"\n== {label}: {result['series']} series; per-lead figures rest on {len(scored)} "
        f"origins ({scored[0]} .. {scored[-1]}, at {', '.join(hours)} UTC), each scored with "
        f"the choice made from earlier folds only; selection {result['selection_s']} s; "
        f"candidates {result['candidates_run']}, champion {result['champion']}"
    )
    print(
        f"{'metric':16s} {'lead':>5s} {'points':>6s} {'orig':>4s} {'MASE':>6s} {'sn24':>6s} "
        f"{'vs sn24':>8s} {'sn168':>6s} {'vs sn168':>8s} {'pinball':>7s} {'95% band':>8s} "
        f"{'±se':>5s} {'below':>6s} {'above':>6s} {'worst':>6s} {'band pts/orig':>13s}"
    )


def _print_leads(result: dict[str, Any]) -> None:
    """The deployed choice's figures per metric and lead, and how the band is read."""
    nan = float("nan")
    for metric, leads in result["by_horizon"].items():
        for lead, s in leads.items():
            if not s:
                continue
            print(
                f"{metric:16s} {lead:>5s} {s['points']:6.0f} {s['origins']:4.0f} "
                f"{s['mase']:6.3f} {s['snaive24_mase']:6.3f} "
                f"{s['improvement_vs_snaive24']:8.1%} {s.get('snaive168_mase', float('nan')):6.3f} "
                f"{s.get('improvement_vs_snaive168', float('nan')):8.1%} "
                f"{s['scaled_pinball']:7.3f} {s['band95_coverage']:8.1%} "
                f"{s.get('band95_coverage_se', float('nan')):5.1%} "
                f"{s.get('band95_below', float('nan')):6.1%} "
                f"{s.get('band95_above', float('nan')):6.1%} "
                f"{s.get('band95_worst_origin_miss_share', float('nan')):6.0%} "
                f"{s.get('band95_points', float('nan')):8.0f}/{s.get('band95_origins', nan):<4.0f}"
            )
    print(
        "95 % band: ±se clustered by origin (an origin's points share one day's surprise); "
        "below/above: share of points under/over the band; worst: share of the misses at the "
        "single worst origin; band pts/orig: the points and origins the band is scored on "
        "(conformal: origins with earlier folds, not a selection's first)"
    )


def _print_nowcast(result: dict[str, Any]) -> None:
    """What each lead means, and the nowcast's figures per metric and lead."""
    nan = float("nan")
    from planner.forecast.horizon import lead_definitions

    print("leads (origin t = the newest complete hour):")
    for lead, text in lead_definitions(result["nowcast_minutes"]).items():
        print(f"  {lead:>5s}: {text}")
    print(
        f"nowcast (as the hourly job publishes it, {result['nowcast_minutes']} minutes of the "
        "origin's hour read), MASE (vs sn24; points/origins); 95 % band: calibrated on "
        "nowcasts' residuals [moved forecast band]; mean width / scale, nowcast band "
        "[forecast band]; lead 1 also the minutes read alone as the hour's value:"
    )
    for metric, leads in result["by_horizon"].items():
        print(
            f"  {metric:16s} "
            + "  ".join(
                f"lead {k}: {s.get('nowcast_mase', nan):.3f} "
                f"({s.get('nowcast_improvement_vs_snaive24', nan):.1%}; "
                f"{s.get('nowcast_points', nan):.0f}/{s.get('nowcast_origins', nan):.0f}"
                + (
                    f"; reading alone {s['reading_improvement_vs_snaive24']:.1%}"
                    if "reading_improvement_vs_snaive24" in s
                    else ""
                )
                + ", "
                f"band {s.get('nowcast_band95_coverage', nan):.1%} "
                f"[{s.get('nowcast_moved_band95_coverage', nan):.1%}], "
                f"width {s.get('nowcast_band_width', nan):.2f} [{s.get('band_width', nan):.2f}])"
                for k, s in leads.items()
                if s
            )
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logs", default="m-large:7,m-large:11", help="source:seed,...")
    parser.add_argument("--scale", type=float, default=0.002)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--candidates",
        default="default",
        help="comma-separated runs; each 'default', 'default+gbm' or 'a+b+c'",
    )
    parser.add_argument(
        "--shifts",
        default="0,6,12,18",
        help="selections this many hours before the log's end (origins at other clock hours)",
    )
    parser.add_argument(
        "--tune-nowcast",
        action="store_true",
        help="grid-search the nowcast on these logs",
    )
    parser.add_argument("--champion", help="the selection's default forecaster")
    parser.add_argument("--keep", help="folder to keep the built warehouses in (reused)")
    parser.add_argument(
        "--reuse-selections",
        action="store_true",
        help="with --keep: pickle each selection there and reuse it (e.g. to score more "
        "--bands on the same selections); delete the folder when the model changes",
    )
    parser.add_argument(
        "--refinish",
        action="store_true",
        help="with --reuse-selections: each kept selection's bands and nowcasts made again by "
        "the current code on its own backtest rows (forecasts and choices are the kept ones)",
    )
    parser.add_argument("--dump", help="folder to write each log's deployed rows to (pickle)")
    parser.add_argument(
        "--bands",
        default="",
        help="comma-separated: each selection re-calibrated with these bands, e.g. "
        "'none,pool:own=0/group=metric/tail=0.8' (planner.forecast.calibration.Pooling)",
    )
    parser.add_argument("--json", action="store_true")
    return parser


def main() -> None:
    args = _parser().parse_args()
    results: dict[str, Any] = {}
    for log_spec in args.logs.split(","):
        source, seed = log_spec.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(args.keep) / f"{source}-{seed}" if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            wh = folder / "wh.duckdb"
            if not wh.exists():
                wh = build(folder, args.scale, int(seed), (source,))
            results |= _run_log(args, source, seed, folder, wh)
    if args.json:
        for r in results.values():
            r.pop("rows", None)
        print(json.dumps(results, indent=2, default=str))


def _run_log(args: Any, source: str, seed: str, folder: Path, wh: Path) -> dict[str, Any]:
    """One log's runs (one per ``--candidates`` spec)."""
    shifts = tuple(int(x) for x in args.shifts.split(","))
    results: dict[str, Any] = {}
    for cand in args.candidates.split(","):
        label = f"{source} seed {seed} scale {args.scale}, candidates {cand}"
        results[label] = evaluate(
            wh,
            args.workers,
            _candidates(cand),
            shifts,
            champion=args.champion,
            bands=tuple(b for b in args.bands.split(",") if b),
            cache=folder / f"selections-{cand}" if args.reuse_selections else None,
            refinish=args.refinish,
        )
        if args.dump:
            Path(args.dump).mkdir(parents=True, exist_ok=True)
            results[label]["rows"].to_pickle(Path(args.dump) / f"{source}-{seed}-{cand}.pkl")
        if args.tune_nowcast:
            print(label, tune_nowcast(results[label]["rows"]))
        if not args.json:
            print_table(label, results[label])
            sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
