"""Data-quality gate of the hourly run: Great Expectations (GX Core 1.x) suites over the
warehouse's recent data, run through one checkpoint that writes Data Docs as static HTML.

GX validates pandas frames the flow pulls from DuckDB (GX's SQL datasource fails on DuckDB
here: see ../shared/ECOSYSTEM-NOTES.md). Three batches:

* ``requests_last_hour``: the last hour's request rows: no null keys, unique ``request_id``,
  token counts within bounds, known regions/models/tiers, the row count within a band learned
  from history (the same hour of the past days: [low × min, high × max]), and freshness: the
  newest arrival no older than ``freshness_h`` at the run's time;
* ``tier_shares``: one row, each tier's share of the last hour's requests, each within a band
  learned from the same hours of the past days (± ``share_slack`` around their min and max);
* ``ingested_files``: the files this run ingested: none rejected and no duplicate rows (a file
  delivered twice under another name shows up here).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pandas as pd

log = logging.getLogger(__name__)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class Bands:
    """What 'normal' is, learned from history."""

    volume: tuple[float, float]  # requests in the hour
    tier_share: dict[str, tuple[float, float]]
    max_input_tokens: int
    max_output_tokens: int
    regions: list[str]
    models: list[str]
    tiers: list[str]
    newest_after: pd.Timestamp  # the freshness bound


@dataclass
class QualityResult:
    success: bool
    failed: list[str] = field(default_factory=list)  # "batch: expectation(column): observed"
    checked: int = 0
    docs_index: Path | None = None
    details: list[dict[str, Any]] = field(default_factory=list)


def learn_bands(
    history: pd.DataFrame,
    hour: pd.Timestamp,
    *,
    regions: list[str],
    models: list[str],
    tiers: list[str],
    max_input_tokens: int,
    max_output_tokens: int,
    freshness_h: float = 2.0,
    low: float = 0.5,
    high: float = 1.5,
    share_slack: float = 0.05,
) -> Bands:
    """Bands from ``history`` rows (hour, tier, requests) of past days. With no history of
    the hour of day, the bands are wide open (nothing to learn from yet)."""
    same = history[pd.to_datetime(history["hour"]).dt.hour == hour.hour]
    totals = same.groupby("hour")["requests"].sum()
    if totals.empty:
        volume = (0.0, float("inf"))
        shares: dict[str, tuple[float, float]] = {t: (0.0, 1.0) for t in tiers}
    else:
        volume = (low * float(totals.min()), high * float(totals.max()))
        by_tier = same.pivot_table(index="hour", columns="tier", values="requests", aggfunc="sum")
        frac = by_tier.div(by_tier.sum(axis=1), axis=0).fillna(0.0)
        shares = {
            t: (
                max(float(frac[t].min()) - share_slack, 0.0),
                min(float(frac[t].max()) + share_slack, 1.0),
            )
            if t in frac
            else (0.0, 1.0)
            for t in tiers
        }
    return Bands(
        volume,
        shares,
        max_input_tokens,
        max_output_tokens,
        regions,
        models,
        tiers,
        hour + pd.Timedelta(hours=1) - pd.Timedelta(hours=freshness_h),
    )


def _suites(gx: Any, bands: Bands) -> dict[str, list[Any]]:
    e = gx.expectations
    keys = ["request_id", "arrival_time", "region", "model", "tier"]
    requests = [e.ExpectColumnValuesToNotBeNull(column=c) for c in keys]
    requests += [
        e.ExpectColumnValuesToBeUnique(column="request_id"),
        e.ExpectColumnValuesToBeBetween(
            column="input_tokens", min_value=0, max_value=bands.max_input_tokens
        ),
        e.ExpectColumnValuesToBeBetween(
            column="output_tokens", min_value=0, max_value=bands.max_output_tokens
        ),
        e.ExpectColumnValuesToBeInSet(column="region", value_set=bands.regions),
        e.ExpectColumnValuesToBeInSet(column="model", value_set=bands.models),
        e.ExpectColumnValuesToBeInSet(column="tier", value_set=bands.tiers),
        e.ExpectTableRowCountToBeBetween(
            min_value=int(bands.volume[0]),
            max_value=None if bands.volume[1] == float("inf") else int(bands.volume[1]),
        ),
        e.ExpectColumnMaxToBeBetween(
            column="arrival_time", min_value=bands.newest_after.to_pydatetime()
        ),
    ]
    shares = [
        e.ExpectColumnValuesToBeBetween(column=f"share_{t}", min_value=lo, max_value=hi)
        for t, (lo, hi) in bands.tier_share.items()
    ]
    files = [
        e.ExpectColumnValuesToBeBetween(column="duplicates_skipped", min_value=0, max_value=0),
        e.ExpectColumnValuesToBeInSet(column="status", value_set=["loaded", "skipped"]),
    ]
    return {"requests_last_hour": requests, "tier_shares": shares, "ingested_files": files}


def _checkpoint(gx: Any, context: Any, source: Any, name: str, expectations: list[Any]) -> Any:
    """The checkpoint validating the frame ``name`` against its suite, updating Data Docs."""
    from great_expectations.checkpoint.actions import UpdateDataDocsAction

    batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
    suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(data=batch, suite=suite, name=name)
    )
    return context.checkpoints.add(
        gx.Checkpoint(
            name=f"hourly-{name}",
            validation_definitions=[definition],
            actions=[UpdateDataDocsAction(name="docs", site_names=["sageserve"])],
            result_format={"result_format": "SUMMARY"},
        )
    )


def _docs_context(gx: Any, docs_dir: Path) -> Any:
    """An ephemeral GX context whose Data Docs site ``sageserve`` is ``docs_dir``."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    docs_dir.mkdir(parents=True, exist_ok=True)
    context.add_data_docs_site(
        site_name="sageserve",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(docs_dir),
            },
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    return context


def _collect(result: QualityResult, batch: str, results: Any) -> None:
    for r in results:
        cfg = r.expectation_config
        column = cfg.kwargs.get("column", "")
        observed = r.result.get("observed_value", r.result.get("unexpected_count"))
        result.checked += 1
        result.details.append(
            {
                "batch": batch,
                "expectation": cfg.type,
                "column": column,
                "success": bool(r.success),
                "observed": str(observed),
            }
        )
        if not r.success:
            result.success = False
            result.failed.append(f"{batch}: {cfg.type}({column}): observed {observed}")


def run_checkpoint(
    frames: dict[str, pd.DataFrame],
    bands: Bands,
    docs_dir: Path,
    run_name: str,
    plan_hour: pd.Timestamp | None = None,
) -> QualityResult:
    """Validate ``frames`` (keys as in the module docstring) and write Data Docs into
    ``docs_dir`` (``index.html``), made to work offline (validation/data_docs.py). Pages are
    named by ``run_name``; the index lists each validation by ``plan_hour`` (the hour the run
    plans for; ``run_name`` when not given) and data asset."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    from validation.data_docs import Validation, make_offline, put_back, set_aside

    docs_dir = docs_dir.resolve()  # GX's filesystem store wants an absolute path
    context = _docs_context(gx, docs_dir)
    source = context.data_sources.add_pandas("warehouse")
    result = QualityResult(success=True)
    run_time = datetime.now(UTC)
    run_id = RunIdentifier(run_name=run_name, run_time=run_time)
    shown = f"{plan_hour:%Y-%m-%d %H:%M}" if plan_hour is not None else run_name
    pages: list[Validation] = []
    hold = set_aside(docs_dir)  # GX's index builder would delete earlier runs' pages
    try:
        for name, expectations in _suites(gx, bands).items():
            if frames.get(name) is None:
                continue
            checkpoint = _checkpoint(gx, context, source, name, expectations)
            outcome = checkpoint.run(batch_parameters={"dataframe": frames[name]}, run_id=run_id)
            for key, run in outcome.run_results.items():
                page = "validations/" + "/".join(map(str, cast(Any, key).to_tuple())) + ".html"
                checked, failed = len(run.results), sum(not r.success for r in run.results)
                when = f"{run_time:%Y-%m-%d %H:%M:%S}"
                pages.append(
                    Validation(shown, name, name, bool(run.success), checked, failed, when, page)
                )
                _collect(result, name, run.results)
    finally:
        put_back(docs_dir, hold)
    result.docs_index = make_offline(docs_dir, pages)
    if result.failed:
        log.warning(
            "data quality: %d of %d failed: %s", len(result.failed), result.checked, result.failed
        )
    return result
