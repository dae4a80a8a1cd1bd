"""Where a log's 95 % band misses at a lead, and what kind of error each miss is (issue #18).

Reads the selections kept by ``bench/forecast_accuracy.py --keep DIR --reuse-selections``
(one log folder: ``DIR/<source>-<seed>``), takes the deployed rows with the band each
selection made, and for the conformal points at ``--lead``:

* misses per series, per origin, and on which side of the band;
* each miss classified by what removing one part of the error would have left: the
  fold's *level* (the mean log residual over the fold's 24 leads: a day-long shift), the
  log-wide *shared* error (the mean log residual of every series of the log at the same
  origin and lead), the day's *amplitude* (the fold's residuals regressed on the forecast's
  own daily shape: a deeper or shallower day) — a miss none of these explains is *shape*.
  These use the fold's realised hours: a diagnosis after the fact, not something a band
  could know at its origin.

Figures (``--figures DIR``): a series × origin heat map of the lead's log residual over the
band's half-width (beyond ±1: a miss) and the log-wide mean log residual by target hour.

    .venv/bin/python bench/forecast_band_misses.py --log /tmp/fa18/m-large-11 [--lead 24]
        [--figures docs/forecast] [--json]
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

KINDS = ("tier_shared", "shared", "level", "amplitude", "shape")


def deployed_log_rows(folder: Path) -> pd.DataFrame:
    """Every kept selection's deployed rows with log residual ``r`` and the band's log edges
    ``lo``/``hi`` (relative to the point, as the conformal band is made)."""
    from flows.forecasting import load_demand, settings_from_config
    from flows.warehouse.connection import connect
    from planner.config import load_config
    from planner.forecast.bands import origin_offsets
    from planner.forecast.horizon import deployed_hours
    from planner.forecast.series import build_panel

    settings = settings_from_config(load_config())
    parts = []
    for path in sorted((folder / "selections-default").glob("selection-*.pkl")):
        selection, _ = pickle.loads(path.read_bytes())
        with connect(folder / "wh.duckdb") as con:
            demand = load_demand(con, selection.as_of, settings.history_h)
        panel = build_panel(demand, selection.as_of, settings.history_h, settings.metrics)
        rows = deployed_hours(selection.hours, selection.folds, selection.deployed)
        key = ["series", "origin", "h", "forecaster"]
        taus = [c for c in selection.hours.columns if c.startswith("q_")]
        extra = [c for c in taus if c not in rows]
        rows = rows.merge(selection.hours[key + extra], on=key, how="left")
        c = origin_offsets(rows, panel)  # each row's band's own offset (at its origin)
        base = rows["point"].clip(lower=0) + c
        rows["r"] = np.log((rows["actual"] + c) / base)
        rows["lo"] = np.log(np.maximum(rows["q_0_025"] + c, 1e-12) / base)
        rows["hi"] = np.log((rows["q_0_975"] + c) / base)
        rows["log_point"], rows["base"] = np.log(base), base
        parts.append(rows)
    if not parts:
        raise SystemExit(f"{folder}: no kept selections (run forecast_accuracy.py --keep)")
    return pd.concat(parts, ignore_index=True)


def classify(rows: pd.DataFrame) -> pd.DataFrame:
    """Add ``level``, ``shared``, ``amplitude`` per row (module docstring) and, for misses,
    ``kind``: the first of level / shared / amplitude whose removal brings the point inside."""
    fold = rows.groupby(["series", "origin"])
    rows = rows.assign(level=fold["r"].transform("mean"))
    rows["shared"] = rows.groupby(["origin", "h"])["r"].transform("mean")
    rows["tier_shared"] = rows.groupby([rows["series"].str.split("|").str[2], "origin", "h"])[
        "r"
    ].transform("mean")
    shape = rows["log_point"] - fold["log_point"].transform("mean")
    dev = rows["r"] - rows["level"]
    num = (dev * shape).groupby([rows["series"], rows["origin"]]).transform("sum")
    den = (shape**2).groupby([rows["series"], rows["origin"]]).transform("sum")
    rows["amplitude"] = rows["level"] + (num / den.where(den > 0)).fillna(0.0) * shape
    rows["side"] = np.where(rows["r"] < rows["lo"], "below", "")
    rows.loc[rows["r"] > rows["hi"], "side"] = "above"
    rows["kind"] = ""
    for kind in KINDS[:-1]:
        inside = explains(rows, kind)
        rows.loc[(rows["side"] != "") & (rows["kind"] == "") & inside, "kind"] = kind
    rows.loc[(rows["side"] != "") & (rows["kind"] == ""), "kind"] = "shape"
    return rows


def explains(rows: pd.DataFrame, kind: str) -> pd.Series:
    """Whether the point is inside the band once the error part ``kind`` is removed."""
    left = rows["r"] - rows[kind]
    inside: pd.Series = (left >= rows["lo"]) & (left <= rows["hi"])
    return inside


def tables(rows: pd.DataFrame, lead: int) -> dict[str, Any]:
    """Misses at ``lead`` per series, per origin and per kind."""
    at = rows[(rows["h"] == lead) & rows["conformal"]].copy()
    at["miss"] = at["side"] != ""
    at["below"] = at["side"] == "below"
    at["above"] = at["side"] == "above"
    parts = at["series"].str.split("|", expand=True)
    at["tier"], at["metric"], at["region"] = parts[2], parts[3], parts[0]
    agg = {"points": ("miss", "size"), "misses": ("miss", "sum"), "below": ("below", "sum")}
    agg |= {"above": ("above", "sum"), "mean_r": ("r", "mean")}
    kinds = at[at["miss"]].groupby("kind").size().reindex(list(KINDS), fill_value=0)
    missed = at[at["miss"]]
    alone = {k: int(explains(missed, k).sum()) for k in KINDS[:-1]}
    by_origin = at.groupby("origin").agg(**agg, mean_level=("level", "mean"))
    return {
        "lead": lead,
        "points": len(at),
        "coverage": float(1 - at["miss"].mean()),
        "origins": int(at["origin"].nunique()),
        "kinds": {k: int(v) for k, v in kinds.items()},
        "explained_alone": alone,
        "by_origin": by_origin.reset_index().assign(origin=lambda d: d["origin"].astype(str)),
        "by_series": at.groupby("series").agg(**agg).sort_values("misses", ascending=False),
        "by_tier_metric": at.groupby(["tier", "metric"]).agg(**agg),
        "by_region": at.groupby("region").agg(**agg),
    }


def figures(rows: pd.DataFrame, lead: int, out: Path, label: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    out.mkdir(parents=True, exist_ok=True)
    at = rows[(rows["h"] == lead) & rows["conformal"]]
    return [
        _heatmap(at, lead, out / f"band-misses-heatmap-lead{lead}.png", label),
        _tier_lines(at, lead, out / "band-misses-shared-error.png", label),
    ]


def _heatmap(at: pd.DataFrame, lead: int, path: Path, label: str) -> Path:
    """Series × origin: the lead's log residual over the band's half-width on its side."""
    import matplotlib.pyplot as plt

    ratio = np.where(at["r"] >= 0, at["r"] / at["hi"], -at["r"] / at["lo"])
    grid = (
        at.assign(ratio=ratio).pivot_table(index="series", columns="origin", values="ratio")
    ).sort_index(key=lambda s: s.str.split("|").str[2] + s.str.split("|").str[3] + s)
    fig, ax = plt.subplots(figsize=(12, 8))
    im = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    ax.set_yticks(range(len(grid)), [s.replace("|llama2-70b", "") for s in grid.index], fontsize=7)
    ax.set_xticks(
        range(grid.shape[1]),
        [pd.Timestamp(o).strftime("%m-%d %H") for o in grid.columns],
        rotation=90,
        fontsize=7,
    )
    ax.set_xlabel(f"origin (lead-{lead} target hour = origin + {lead - 1} h)")
    ax.set_title(f"{label}: lead-{lead} log residual / band half-width (|x| > 1: a miss)")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _tier_lines(at: pd.DataFrame, lead: int, path: Path, label: str) -> Path:
    """The lead's mean log residual per tier (and over all series) by target hour."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4))
    target = at.assign(t=at["origin"] + pd.to_timedelta(at["h"] - 1, unit="h"))
    tier = target["series"].str.split("|").str[2]
    for name, style in (("IW-F", "C0"), ("IW-N", "C2"), ("NIW", "C1")):
        line = target[tier == name].groupby("t")["r"].mean().sort_index()
        ax.plot(line.index, line.to_numpy(), style, marker=".", lw=0.8, label=f"tier {name}")
    line = target.groupby("t")["r"].mean().sort_index()
    ax.plot(line.index, line.to_numpy(), "k", marker=".", lw=1.2, label="all series")
    edge = target.groupby("t")[["lo", "hi"]].median().sort_index()
    ax.fill_between(edge.index, edge["lo"], edge["hi"], color="C3", alpha=0.12, label="median band")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_ylabel("mean log residual")
    ax.set_title(f"{label}: lead-{lead} log residual by target hour, mean per tier (9 series)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def widened(rows: pd.DataFrame, lead: int, thetas: tuple[float, ...]) -> pd.DataFrame:
    """After the fact, not a band (θ read off the log it is scored on): the lead's conformal
    band spread by θ around its median in log space (Q'_τ = Q_0.5 + θ · (Q_τ − Q_0.5)),
    its 95 % coverage and scaled pinball, to price what the coverage goal would cost."""
    from planner.forecast.scores import pinball
    from planner.quantiles import column_quantile, is_quantile_column

    at = rows[(rows["h"] == lead) & rows["conformal"]]
    cols = sorted((c for c in at.columns if is_quantile_column(c)), key=column_quantile)
    base, actual = at["base"].to_numpy(), at["actual"].to_numpy(dtype=float)
    c = base - at["point"].clip(lower=0).to_numpy()
    logq = np.log(np.maximum(at[cols].to_numpy(dtype=float) + c[:, None], 1e-12) / base[:, None])
    mid = logq[:, [column_quantile(x) for x in cols].index(0.5)][:, None]
    out = []
    for theta in thetas:
        q = np.maximum(base[:, None] * np.exp(mid + theta * (logq - mid)) - c[:, None], 0.0)
        lo, hi = q[:, cols.index("q_0_025")], q[:, cols.index("q_0_975")]
        pins = [pinball(actual, q[:, i], column_quantile(x)) for i, x in enumerate(cols)]
        score = np.mean(pins, axis=0) / at["scale"].to_numpy(dtype=float)
        cover = float(((actual >= lo) & (actual <= hi)).mean())
        out.append({"theta": theta, "coverage": cover, "scaled_pinball": float(score.mean())})
    return pd.DataFrame(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--log", required=True, help="a --keep folder of one log")
    parser.add_argument("--lead", type=int, default=24)
    parser.add_argument("--figures", help="folder to write the figures to")
    parser.add_argument(
        "--widen",
        default="1,1.25,1.5,1.75,2,2.5",
        help="θ: the lead's band spread by each, scored after the fact (the goal's price)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(args.log)
    rows = classify(deployed_log_rows(folder))
    result = tables(rows, args.lead)
    result["widened"] = widened(rows, args.lead, tuple(float(x) for x in args.widen.split(",")))
    if args.figures:
        result["figures"] = [
            str(p) for p in figures(rows, args.lead, Path(args.figures), folder.name)
        ]
    if args.json:
        print(json.dumps(result, indent=2, default=lambda d: d.to_dict("records")))
        return
    pd.set_option("display.width", 200)
    print(
        f"{folder.name}: lead {args.lead}, {result['points']} conformal points on "
        f"{result['origins']} origins, coverage {result['coverage']:.1%}"
    )
    print(
        f"{sum(result['kinds'].values())} misses; by kind (the first of {KINDS} whose "
        "removal brings the point inside):",
        result["kinds"],
    )
    print("misses each part alone brings inside:", result["explained_alone"])
    for name in ("widened", "by_origin", "by_tier_metric", "by_region", "by_series"):
        print(f"\n{name}:\n{result[name].round(3).to_string()}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
