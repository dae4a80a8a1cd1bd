"""Carrying out a stored plan: the config's executor target gets the plan's first hour, and
what it accepted is recorded in the warehouse (the fleet the next plan starts from).

Shared by the hourly flow's ``apply-plan`` task and ``sageserve plans apply``. The executor's
own retries are the only retry layer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb

from flows.planning import record_application
from planner.config import FleetConfig
from planner.executors import AppliedState, TargetSettings, WebhookError, WebhookExecutor
from planner.ilp.plan import Plan


def target_settings(cfg: FleetConfig, url: str | None = None) -> TargetSettings:
    """The config's ``executor`` section (``url`` overrides its URL)."""
    settings = TargetSettings(**cfg.executor.model_dump())
    return replace(settings, url=url) if url else settings


def lt_f_dials(cfg: FleetConfig) -> dict[str, Any] | None:
    """With ``lt_f.executor``, what the documents carry of LT-F (dials, hand-over, lead)."""
    if not cfg.lt_f.executor:
        return None
    return {**cfg.lt_f.dials(), "lead_min": cfg.planner.plan_lead_min}


def apply_plan(
    con: duckdb.DuckDBPyConnection,
    cfg: FleetConfig,
    plan: Plan,
    folder: Path,
    *,
    dry_run: bool = False,
    url: str | None = None,
) -> AppliedState:
    """Deliver every region of ``plan``'s first hour; record the accepted ones (also when
    others failed, then re-raise the ``WebhookError`` naming each failed region)."""
    executor = WebhookExecutor.from_settings(
        target_settings(cfg, url),
        folder,
        dry_run=dry_run,
        admission={t.id: t.admission for t in cfg.tiers},
        router=cfg.routing.model_dump(),
        lt_f=lt_f_dials(cfg),
    )
    try:
        state = executor.apply(plan)
    except WebhookError as exc:
        if exc.state is not None and not dry_run:
            record_application(con, exc.state)
        raise
    if not dry_run:
        record_application(con, state)
    return state
