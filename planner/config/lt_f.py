"""The config's ``lt_f`` section: how LT-F (planner.sim.plan_ramp) carries plans out.

Its defaults are the ``slo-reactive`` baseline's own (planner.sim.slo_policy.SloReactive), so
LT-F at the defaults differs from the baseline it is compared with only by the plan's ramps;
none is tuned on a log. ``release_min`` 15 is the scaler's default scale-in window
(``cooldown_in_min``): the plan's purchase is held into its hour as long as the scaler holds
its own steps. ``release_min`` < 60 - ``planner.plan_lead_min`` is checked with the planner
section (planner.config.semantics).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class LtfSettings(BaseModel):
    """The scaler's dials and the hand-over (module docstring). As every section: unknown
    keys are errors, numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    executor: bool = Field(default=False, description="documents carry the LT-F ramp")
    release_min: int = Field(default=15, ge=0, description="hand-over, minutes into the hour")
    target: float = Field(default=0.85, gt=0, le=2, description="pressure sized for")
    up: float = Field(default=0.95, gt=0, le=2, description="scale out above this pressure")
    down: float = Field(default=0.6, gt=0, le=2, description="scale in below this pressure")
    cooldown_in_min: int = Field(default=15, ge=1, le=240, description="scale-in window")
    niw_cap: float | None = Field(default=None, gt=0, le=1, description="NIW fill cap")

    def dials(self) -> dict[str, float | int | None]:
        """``PlanRamp``'s keyword arguments: the scaler's dials and ``release_min``."""
        return self.model_dump(exclude={"executor"})
