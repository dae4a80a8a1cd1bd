"""Ingest benchmark: 10 million native rows from one Parquet file, validated and loaded by
`sageserve ingest`, against DuckDB's bare ``CREATE TABLE … AS SELECT * FROM read_parquet(…)`` of
the same file in the same run. Each side runs in a fresh subprocess (fresh warehouse file) so
peak memory is that process's own; runs alternate to share the machine's noise.

The ingest side reports wall seconds per phase (its ``--json`` report); ``startup`` is the rest
of its wall time: interpreter, imports, config, opening the warehouse, closing it.

    .venv/bin/python bench/ingest.py [--rows 10000000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"

BASELINE = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], config={"memory_limit": "1GB"})
con.execute("CREATE TABLE requests AS SELECT * FROM read_parquet(?)", [sys.argv[2]])
con.close()
"""


GENERATE = """
import sys
from datetime import UTC, datetime
import duckdb
path, rows = sys.argv[1], int(sys.argv[2])
start = datetime(2024, 6, 3, tzinfo=UTC).replace(tzinfo=None)
duckdb.connect().sql(
    \"\"\"
        SELECT
            'req-' || lpad(CAST(i AS VARCHAR), 10, '0') AS request_id,
            ? + to_milliseconds(i * 86400000 // ?) AS arrival_time,
            (['us-east', 'us-central', 'us-west'])[CAST(1 + hash(i) % 3 AS BIGINT)] AS region,
            (['llama2-70b', 'bloom-176b', 'llama3.1-8b', 'llama3.2-3b'])
                [CAST(1 + hash(i + 1) % 4 AS BIGINT)] AS model,
            (['IW-F', 'IW-N', 'NIW'])[CAST(1 + hash(i + 2) % 3 AS BIGINT)] AS tier,
            CAST(1 + hash(i + 3) % 4000 AS BIGINT) AS input_tokens,
            CAST(1 + hash(i + 4) % 600 AS BIGINT) AS output_tokens
        FROM range(?) AS r(i)
    \"\"\",
    params=[start, rows, rows],
).write_parquet(path)
"""


def make_input(rows: int) -> Path:
    """A Parquet file of ``rows`` valid native rows (synthetic workload, fixed seed), written by
    a subprocess: a child's peak RSS (``ru_maxrss``) starts from its parent's at fork, so the
    bench process itself stays small."""
    path = OUT / f"native-{rows}.parquet"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    subprocess.run([sys.executable, "-c", GENERATE, str(tmp), str(rows)], check=True)
    tmp.replace(path)
    return path


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB, stdout) of one subprocess."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        if status != 0:
            raise RuntimeError(f"{cmd[:3]} failed: {err.read().decode()[-2000:]}")
        return wall, usage.ru_maxrss / 1024, out.read().decode()


def phases_of(report: str, wall: float) -> dict[str, float]:
    """Per-phase seconds of one ingest run from its ``--json`` report, plus ``startup``."""
    (file,) = json.loads(report)["files"]
    if file["status"] != "loaded" or file["rows_loaded"] != file["rows_read"]:
        raise RuntimeError(f"the bench file did not load cleanly: {file}")
    phases = dict(file.get("phases") or {})
    phases["startup"] = wall - sum(phases.values())
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    data = make_input(args.rows)
    results, phases = run_pairs(data, args.repeat)
    summary = summarise(args.rows, data, results, phases)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)


Runs = dict[str, list[tuple[float, float]]]  # per command: (wall s, peak RSS MB) per run


def run_pairs(data: Path, repeat: int) -> tuple[Runs, list[dict[str, float]]]:
    """``repeat`` times the bare CTAS and then ``sageserve ingest`` of ``data``, each into a
    fresh warehouse: their (wall, peak RSS), and the ingest's phases per run."""
    sageserve = str(Path(sys.executable).with_name("sageserve"))
    results: Runs = {"baseline": [], "ingest": []}
    phases: list[dict[str, float]] = []
    env = os.environ | {"SAGESERVE_LOG_LEVEL": "WARNING"}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            db = str(Path(tmp) / "baseline.duckdb")
            results["baseline"].append(timed([sys.executable, "-c", BASELINE, db, str(data)])[:2])
        with tempfile.TemporaryDirectory(dir=OUT) as tmp:
            wh = str(Path(tmp) / "warehouse.duckdb")
            cmd = [sageserve, "--warehouse", wh, "ingest", str(data), "--no-marts", "--json"]
            wall, peak, report = timed(cmd, env)
            results["ingest"].append((wall, peak))
            phases.append(phases_of(report, wall))
    return results, phases


def summarise(
    rows: int, data: Path, results: Runs, phases: list[dict[str, float]]
) -> dict[str, Any]:
    """Medians, the ratio to the baseline, peaks and every run (the ``--json`` output)."""
    base_wall = statistics.median(w for w, _ in results["baseline"])
    ours_wall = statistics.median(w for w, _ in results["ingest"])
    return {
        "rows": rows,
        "file_mb": round(data.stat().st_size / 1e6, 1),
        "baseline_ctas_s": round(base_wall, 2),
        "ingest_s": round(ours_wall, 2),
        "ratio": round(ours_wall / base_wall, 2),
        "ingest_rows_per_s": round(rows / ours_wall),
        "baseline_peak_rss_mb": round(max(m for _, m in results["baseline"])),
        "ingest_peak_rss_mb": round(max(m for _, m in results["ingest"])),
        "ingest_phases_s": {
            k: round(statistics.median(p[k] for p in phases), 2) for k in phases[0]
        },
        "runs": {k: [[round(w, 2), round(m)] for w, m in v] for k, v in results.items()},
        "ratios_by_pair": [
            round(o / b, 2)
            for (o, _), (b, _) in zip(results["ingest"], results["baseline"], strict=True)
        ],
        "goal": "ratio <= 1.5, ingest peak RSS <= 2048 MB",
    }


def print_table(summary: dict[str, Any]) -> None:
    print(f"ingest benchmark: {summary['rows']:,} native rows, Parquet {summary['file_mb']} MB")
    print(
        f"  bare CTAS (baseline) : {summary['baseline_ctas_s']:6.2f} s   "
        f"peak {summary['baseline_peak_rss_mb']} MB"
    )
    print(
        f"  sageserve ingest     : {summary['ingest_s']:6.2f} s   "
        f"peak {summary['ingest_peak_rss_mb']} MB"
    )
    print(f"  ratio ingest/CTAS    : {summary['ratio']:.2f}x   (goal <= 1.5x, <= 2 GB)")
    phases = summary["ingest_phases_s"]
    print("  ingest phases (s)    : " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    print(f"  runs (wall s, MB)    : {summary['runs']}")


if __name__ == "__main__":
    main()
