"""Publishing a plan for ops: Parquet, CSV and JSON per table plus a manifest with checksums,
written into a folder per plan hour, atomically (a temp folder renamed into place), and the
``latest`` / ``LATEST`` pointers moved only once the folder is complete.

Order (see flows.planning.run_plan): the warehouse commits the plan first, then the folder is
written, then the pointers move. A crash before the commit leaves warehouse and files as they
were; a crash after it leaves the warehouse one plan ahead of the files, which
:func:`repair` (run at the start of every plan run) puts right by re-exporting the stored plan.
The published files therefore never name a plan the warehouse does not have."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from flows.barrier import barrier
from planner.ilp.plan import Plan
from planner.ilp.plan_tables import column_dictionary
from planner.ilp.verify import Verification


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    """Naive UTC times (the warehouse's convention) marked as UTC for the files."""
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_dtype(out[column]) and out[column].dt.tz is None:
            out[column] = out[column].dt.tz_localize("UTC")
    return out


def folder_name(plan: Plan) -> str:
    return f"{plan.start:%Y%m%dT%H%M}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json_default(value: Any) -> Any:
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def export_plan(plan: Plan, check: Verification, root: Path) -> Path:
    """Write the plan under ``root/<plan hour>/`` and point ``root/latest`` at it."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / folder_name(plan)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=root))
    try:
        for name, plain in plan.frames().items():
            frame = _utc(plain)
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
            frame.to_csv(tmp / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        (tmp / "COLUMNS.md").write_text(column_dictionary())
        document = {
            "plan": plan.summary(),
            "verification": {
                "ok": check.ok,
                "violations": check.violations,
                "warnings": check.warnings,
            },
            "notes": list(plan.notes),
            **{name: frame.to_dict(orient="records") for name, frame in plan.frames().items()},
        }
        (tmp / "plan.json").write_text(json.dumps(document, indent=1, default=_json_default))
        manifest = {
            "plan_id": plan.plan_id,
            "plan_hour": plan.start.isoformat(),
            "as_of": plan.as_of.isoformat(),
            "forecast_origin": plan.forecast_origin.isoformat() if plan.forecast_origin else None,
            "config_hash": plan.solver.config_hash,
            "solver": plan.solver.as_dict(),
            "verified": check.ok,
            "written_at": datetime.now(UTC).isoformat(),
            "files": {  # every file written above
                path.name: {"sha256": _sha256(path), "bytes": path.stat().st_size}
                for path in sorted(tmp.iterdir())
            },
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1, default=_json_default))
        tmp.chmod(0o755)
        _swap_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    barrier("plan-exported")
    point_latest(root, final.name)
    return final


def _swap_into_place(tmp: Path, final: Path) -> None:
    """Rename the finished folder into place; a re-publish of the same hour replaces it."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)


def point_latest(root: Path, name: str) -> None:
    """``latest`` (a symlink) and ``LATEST`` (a file naming the folder), each replaced
    atomically by rename."""
    link_tmp = root / f".latest.{os.getpid()}"
    link_tmp.unlink(missing_ok=True)
    link_tmp.symlink_to(name)
    link_tmp.replace(root / "latest")
    barrier("latest-moved")
    text_tmp = root / f".LATEST.{os.getpid()}"
    text_tmp.write_text(name + "\n")
    text_tmp.replace(root / "LATEST")


def verify_manifest(folder: Path) -> list[str]:
    """Files whose checksum or size differs from the manifest (empty when intact)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    bad = []
    for name, meta in manifest["files"].items():
        path = folder / name
        if (
            not path.exists()
            or path.stat().st_size != meta["bytes"]
            or _sha256(path) != meta["sha256"]
        ):
            bad.append(name)
    return bad


# temp folders of an export (".20240611T0100.ab12cd") and pointer temps (".latest.123")
_LEFTOVER = re.compile(r"^\.(\d{8}T\d{4}\.(.+|old)|latest\.\d+|LATEST\.\d+)$")


def published_plan_id(root: Path) -> str | None:
    """The plan id both pointers name, or None when they are missing, disagree, or the folder
    they name is incomplete (a checksum or the manifest does not match)."""
    try:
        name = (root / "LATEST").read_text().strip()
        link = str((root / "latest").readlink())
    except OSError:
        return None
    folder = root / name
    if link != name or not (folder / "manifest.json").is_file() or verify_manifest(folder):
        return None
    return str(json.loads((folder / "manifest.json").read_text())["plan_id"])


def remove_leftovers(root: Path) -> list[str]:
    """Temp folders and files a killed export left behind (nothing else removes them)."""
    removed: list[str] = []
    if not root.is_dir():
        return removed
    for path in root.iterdir():
        if _LEFTOVER.match(path.name):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
