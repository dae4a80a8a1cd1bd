"""The config's ``planner.work_limit``: plans that do not depend on the machine's load.

By default every planning solve is bounded by ``planner.time_limit_s`` of wall clock (the
hourly job needs a bounded time), so a loaded machine stops SCIP, the LP-rounding start and
the repacked starts earlier and publishes another plan from the same inputs. With a work
limit SCIP stops on its node limit (``limits/nodes``) or the gap (``planner.mip_gap``), the
starts' LPs run to their end, and nothing reads the clock: single-threaded SCIP with the same
parameters and seed then makes the same plan on any machine at any load (what a comparison
of policies or a reproducible backfill needs). ``cap_s`` stays as a wall-clock safety cap per
plan; if it binds, the plan is published with a note and an error is logged ("determinism
lost"), never silently (planner.ilp.planner.make_plan).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WorkLimit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    nodes: int = Field(default=1000, ge=1, description="SCIP limits/nodes per plan")
    cap_s: float = Field(
        default=600.0, gt=0, description="wall-clock safety cap per plan; binding is an error"
    )
