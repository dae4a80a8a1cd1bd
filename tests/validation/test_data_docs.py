"""Data Docs offline: the build copies Bootstrap, jQuery and DataTables out of their XStatic
packages, rewrites the pages to use them, keeps earlier runs' pages, and writes an index that
lists every validation by plan hour and data asset with its result; a real browser (Debian's
chromium through playwright) opens it with the network cut off."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.validation.test_quality import bands, requests
from validation.data_docs import ASSETS, VENDOR
from validation.quality import run_checkpoint

SHOTS = Path(__file__).resolve().parents[2] / ".sageserve" / "screenshots"
FILES = pd.DataFrame(
    [{"path": "a.parquet", "status": "loaded", "rows_read": 10, "duplicates_skipped": 0}]
)
SHARES = pd.DataFrame([{"share_IW-F": 0.4, "share_IW-N": 0.3, "share_NIW": 0.3}])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two hourly runs into one site: the first passes, the second fails (volume collapse,
    a file delivered twice)."""
    docs = tmp_path_factory.mktemp("docs") / "data_docs"
    good = {"requests_last_hour": requests(1000), "tier_shares": SHARES, "ingested_files": FILES}
    assert run_checkpoint(
        good, bands(), docs, "plan-20240610T1400", pd.Timestamp("2024-06-10 14:00")
    ).success
    bad = {
        "requests_last_hour": requests(20),
        "tier_shares": SHARES,
        "ingested_files": FILES.assign(duplicates_skipped=10),
    }
    assert not run_checkpoint(
        bad, bands(), docs, "plan-20240610T1500", pd.Timestamp("2024-06-10 15:00")
    ).success
    return docs


def test_assets_come_from_the_xstatic_packages(site: Path) -> None:
    import importlib

    for name, (module, files) in ASSETS.items():
        base = Path(importlib.import_module(module).BASE_DIR)
        for rel in files:
            copied = site / VENDOR / name / rel
            assert copied.read_bytes() == (base / rel).read_bytes(), copied


def test_pages_reference_no_remote_script_or_stylesheet(site: Path) -> None:
    remote = re.compile(r"<(script|link)[^>]*(src|href)=\"https?://", re.IGNORECASE)
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 10  # index, 3 suites, 6 validations
    for page in pages:
        text = page.read_text()
        assert not remote.search(text), page
        assert not re.search(r"<img[^>]*src=\"https?://", text), page
        for ref in re.findall(r"(?:src|href)=\"([^\"#?]+)\"", text):
            if ref.startswith(("http", "mailto")):
                continue  # plain links (GX's docs) are fine offline: nothing loads them
            assert (page.parent / ref).exists(), f"{page}: {ref} missing"


def test_index_lists_every_run_by_plan_hour_and_asset_with_its_result(site: Path) -> None:
    record = json.loads((site / "validations.json").read_text())
    got = {(v["plan_hour"], v["asset"]): v["success"] for v in record}
    assert got == {
        ("2024-06-10 14:00", "requests_last_hour"): True,
        ("2024-06-10 14:00", "tier_shares"): True,
        ("2024-06-10 14:00", "ingested_files"): True,
        ("2024-06-10 15:00", "requests_last_hour"): False,
        ("2024-06-10 15:00", "tier_shares"): True,
        ("2024-06-10 15:00", "ingested_files"): False,
    }
    index = (site / "index.html").read_text()
    assert index.count('class="ss-fail result">✘ Failed') == 2
    assert index.count('class="ss-pass result">✔ Passed') == 4
    for v in record:  # the earlier run's pages survive the later run
        page = (site / v["page"]).read_text()
        assert f"Data asset: {v['asset']}" in page
        assert "plan-20240610T1" in v["page"]


@pytest.mark.browser
def test_browser_opens_the_index_offline_and_finds_the_results(site: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import Route, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        context = browser.new_context(offline=True, viewport={"width": 1400, "height": 900})
        context.route("**/*", offline)
        page = context.new_page()
        page.goto((site / "index.html").as_uri(), wait_until="load")
        # DataTables (local copy) ran: it adds its search box and sorts by plan hour
        page.locator("#validations_filter input").wait_for(timeout=10_000)
        rows = page.locator("#validations tbody tr.validation")
        assert rows.count() == 6
        first = rows.nth(0)
        assert first.locator(".plan-hour").inner_text() == "2024-06-10 15:00"
        failed = page.locator("#validations tbody tr", has_text="✘ Failed")
        assert failed.count() == 2
        assert sorted(failed.locator(".asset").all_inner_texts()) == [
            "ingested_files",
            "requests_last_hour",
        ]
        # Bootstrap (local copy) styles the table: red rows for failures
        colour = failed.first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour not in ("rgba(0, 0, 0, 0)", "transparent"), colour
        page.screenshot(path=str(SHOTS / "data-docs-index.png"), full_page=True)
        # the search filters to one asset
        page.locator("#validations_filter input").fill("ingested_files")
        assert page.locator("#validations tbody tr.validation").count() == 2
        page.locator("#validations_filter input").fill("")
        # a failed validation's page: styled, its asset named, the ✘ mark drawn
        failed.filter(has_text="requests_last_hour").locator("a").click()
        page.wait_for_load_state("load")
        assert "Data asset: requests_last_hour" in page.inner_text("body")
        mark = page.locator("i.fa-times").first.evaluate(
            "e => getComputedStyle(e, '::before').content"
        )
        assert "✘" in mark
        # Bootstrap's spacing utilities apply (pl-5 = 3rem): the local stylesheet loaded
        padding = page.locator(".pl-5").first.evaluate("e => getComputedStyle(e).paddingLeft")
        assert padding == "48px", padding
        page.screenshot(path=str(SHOTS / "data-docs-validation.png"), full_page=True)
        browser.close()
    assert blocked == [], f"pages asked for the network: {blocked[:5]}"
