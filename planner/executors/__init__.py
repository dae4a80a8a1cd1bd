"""Executors carry out a plan's next hour: the simulator, or a real ops target."""

from planner.executors.protocol import AppliedState, Executor, desired_states, documents_view
from planner.executors.simulated import SimulatedExecutor
from planner.executors.webhook import TargetSettings, WebhookError, WebhookExecutor

__all__ = [
    "AppliedState",
    "Executor",
    "SimulatedExecutor",
    "TargetSettings",
    "WebhookError",
    "WebhookExecutor",
    "desired_states",
    "documents_view",
]
