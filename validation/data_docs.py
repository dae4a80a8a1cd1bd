"""Data Docs that work offline: the site GX writes, made self-contained by the build.

GX's pages load Bootstrap, jQuery, bootstrap-table, Font Awesome and its logo from CDNs, and
its index builds the list of validations with bootstrap-table from those CDNs: offline the
list is empty and the pages unstyled. After each checkpoint this module

* copies Bootstrap 4, jQuery and DataTables out of their XStatic packages (``xstatic-bootstrap``,
  ``xstatic-jquery``, ``xstatic-datatables``: maintained PyPI packages, not files kept in this
  repository) into ``static/vendor/`` of the site;
* rewrites every page: CDN ``<script>``/``<link>`` tags removed, the local copies referenced
  by relative paths (GX's own ``static/`` links re-pointed: some miscount the page's depth),
  GX's remote logo replaced by its local copy, and a small stylesheet that
  draws the pass/fail marks GX draws with Font Awesome (✔ / ✘);
* fills the "Data asset" GX leaves as ``None`` for in-memory frames;
* writes the index itself as a static table (plan hour, data asset, result, expectations
  failed of checked, link), from ``validations.json``, the site's own record of every
  validation whose page still exists; DataTables only adds sorting and search on top, so the
  list shows with scripts off too.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECORD = "validations.json"
KEEP = 24 * 7 * 3  # validations kept: a week of hourly runs of the three assets
VENDOR = "static/vendor"
# (XStatic module, files under its BASE_DIR) copied to static/vendor/<name>/
ASSETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bootstrap": ("xstatic.pkg.bootstrap", ("css/bootstrap.min.css", "js/bootstrap.bundle.min.js")),
    "jquery": ("xstatic.pkg.jquery", ("jquery.min.js",)),
    "datatables": (
        "xstatic.pkg.datatables",
        (
            "js/jquery.dataTables.min.js",
            "js/dataTables.bootstrap4.min.js",
            "css/dataTables.bootstrap4.min.css",
            "images/sort_both.png",
            "images/sort_asc.png",
            "images/sort_desc.png",
        ),
    ),
}
CSS = ("bootstrap/css/bootstrap.min.css", "datatables/css/dataTables.bootstrap4.min.css")
JS = (
    "jquery/jquery.min.js",
    "bootstrap/js/bootstrap.bundle.min.js",
    "datatables/js/jquery.dataTables.min.js",
    "datatables/js/dataTables.bootstrap4.min.js",
)
MARKS = """
.fa-check-circle::before, .fa-check::before { content: "\\2714"; font-style: normal; }
.fa-times::before, .fa-times-circle::before { content: "\\2718"; font-style: normal; }
.ss-pass { color: #1e7e34; font-weight: 600; }
.ss-fail { color: #bd2130; font-weight: 600; }
"""
_REMOTE_TAG = re.compile(
    r"<script[^>]*\ssrc=\"https?://[^\"]*\"[^>]*>\s*</script>|<link[^>]*\shref=\"https?://[^\"]*\"[^>]*>",
    re.IGNORECASE,
)
_REMOTE_LOGO = re.compile(r"src=\"https://great-expectations-web-assets[^\"]*\"")
_LOCAL_STATIC = re.compile(r"(src|href)=\"(?:\./|\.\./)*static/")  # GX miscounts some depths


@dataclass(frozen=True)
class Validation:
    """One validation as the index lists it."""

    plan_hour: str  # the hour the run plans for (its run name)
    asset: str
    suite: str
    success: bool
    checked: int
    failed: int
    validated_at: str  # UTC, ISO 8601
    page: str  # relative to the site root


def vendor_assets(site: Path) -> list[Path]:
    """Copy the XStatic files into ``site/static/vendor``; returns the files written."""
    import importlib

    written = []
    for name, (module, files) in ASSETS.items():
        base = Path(importlib.import_module(module).BASE_DIR)
        for rel in files:
            target = site / VENDOR / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(base / rel, target)
            written.append(target)
    return written


def _head(prefix: str) -> str:
    tags = [f'<link rel="stylesheet" href="{prefix}{VENDOR}/{c}">' for c in CSS]
    tags += [f'<script src="{prefix}{VENDOR}/{j}"></script>' for j in JS]
    tags.append(f"<style>{MARKS}</style>")
    return "\n".join(tags) + "\n"


def offline_page(text: str, prefix: str) -> str:
    """``text`` with every CDN script and stylesheet replaced by the local copies, reached
    through ``prefix`` (the way from the page back to the site root, e.g. ``../../``)."""
    text = _REMOTE_TAG.sub("", text)
    text = _REMOTE_LOGO.sub('src="static/images/logo-long.png"', text)
    text = _LOCAL_STATIC.sub(lambda m: f'{m.group(1)}="{prefix}static/', text)
    if "static/vendor/" not in text:
        text = text.replace("</head>", _head(prefix) + "</head>", 1)
    return text


def _write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    Path(tmp).chmod(0o644)
    Path(tmp).replace(path)


def record(site: Path, new: list[Validation]) -> list[Validation]:
    """The site's validations: the record so far plus ``new``, kept only while their page
    exists, newest first."""
    path = site / RECORD
    old: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    merged = {v["page"]: Validation(**v) for v in old}
    merged.update({v.page: v for v in new})
    kept = sorted(
        (v for v in merged.values() if (site / v.page).exists()),
        key=lambda v: (v.plan_hour, v.validated_at, v.asset),
        reverse=True,
    )
    for old_page in kept[KEEP:]:
        (site / old_page.page).unlink()
    kept = kept[:KEEP]
    _write(path, json.dumps([asdict(v) for v in kept], indent=1))
    return kept


def index_html(validations: list[Validation]) -> str:
    rows = []
    for v in validations:
        mark = (
            '<span class="ss-pass result">✔ Passed</span>'
            if v.success
            else '<span class="ss-fail result">✘ Failed</span>'
        )
        e = html.escape
        rows.append(
            f'<tr class="{"table-success" if v.success else "table-danger"} validation">'
            f'<td class="plan-hour">{e(v.plan_hour)}</td><td class="asset">{e(v.asset)}</td>'
            f"<td>{mark}</td><td>{v.checked - v.failed} / {v.checked}</td>"
            f"<td>{e(v.validated_at)}</td>"
            f'<td><a href="{e(v.page)}">{e(v.suite)} @ {e(v.plan_hour)}</a></td></tr>'
        )
    body = "\n".join(rows) or '<tr><td colspan="6">no validations yet</td></tr>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Data Docs | sageserve</title>
<link rel="shortcut icon" href="./static/images/favicon.ico" type="image/x-icon">
{_head("")}</head>
<body class="p-4">
<h1 class="h3">Data quality of the hourly runs</h1>
<p>Great Expectations validations of each hourly run's data, named by the hour the run plans
for and the data asset. Rows with a failure are red.</p>
<table id="validations" class="table table-sm table-bordered">
<thead><tr><th>Plan hour</th><th>Data asset</th><th>Result</th><th>Expectations met</th>
<th>Validated at (UTC)</th><th>Page</th></tr></thead>
<tbody>
{body}
</tbody></table>
<script>
if (window.jQuery && jQuery.fn.DataTable) {{
  jQuery("#validations").DataTable({{order: [[0, "desc"]], pageLength: 50}});
}}
</script>
</body></html>
"""


def set_aside(site: Path) -> Path | None:
    """Move the recorded pages out of GX's way before a checkpoint (GX's index builder deletes
    every page whose result its in-memory store does not hold, i.e. every earlier run's);
    ``put_back`` returns them. Returns the holding folder, or None when there is nothing."""
    path = site / RECORD
    if not path.exists():
        return None
    hold = Path(tempfile.mkdtemp(dir=site, prefix=".kept-"))
    for v in json.loads(path.read_text()):
        page = site / v["page"]
        if page.exists():
            (hold / v["page"]).parent.mkdir(parents=True, exist_ok=True)
            page.replace(hold / v["page"])
    return hold


def put_back(site: Path, hold: Path | None) -> None:
    if hold is None:
        return
    for page in hold.rglob("*.html"):
        target = site / page.relative_to(hold)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            page.replace(target)
    shutil.rmtree(hold)


def make_offline(site: Path, new: list[Validation]) -> Path:
    """Vendor the assets, rewrite every page of ``site``, write the index; returns it."""
    vendor_assets(site)
    assets = {v.page: v.asset for v in new}
    for page in site.rglob("*.html"):
        rel = page.relative_to(site)
        if rel.as_posix() == "index.html" or rel.parts[0].startswith("."):
            continue
        prefix = "../" * (len(rel.parts) - 1)
        text = offline_page(page.read_text(encoding="utf-8"), prefix)
        asset = assets.get(rel.as_posix())
        if asset is not None:
            text = text.replace("Data asset: None", f"Data asset: {html.escape(asset)}")
        _write(page, text)
    index = site / "index.html"
    _write(index, index_html(record(site, new)))
    return index
