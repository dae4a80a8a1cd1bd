"""One minute of the fluid replay's service (:mod:`planner.sim.fluid`): the books it keeps,
the interactive tiers served in priority order, NIW on what is left and its own instances,
and the meter of GPUs and dollars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from planner.sim.fleet import Fleet, FleetParams

Array = npt.NDArray[np.float64]


@dataclass
class Books:
    """What the replay records: the queues now, and per minute (the drain's included where
    the first axis is T + D) what was admitted, served, dropped, metered and seen."""

    queue: Array  # [r, m, k] work waiting (tokens)
    admitted: Array  # [T + D, r, m, k]
    served: Array  # [T + D, r, m, k]
    dropped: Array  # [T, r, m, k]
    timeline: Array  # [T + D, 5]: gpus allocated, busy, scaling, $ on-demand, $ spot
    inst_log: Array  # [T, r, m] serving instances
    rho: Array  # [T, r, m] the shared pools' utilisation
    shared_log: Array  # [T, r, m, g] shared instances by VM type
    pool_cv: Array  # [T, r, m] CV of the arrivals a pool receives

    @classmethod
    def empty(cls, p: FleetParams, minutes: int, drain: int) -> Books:
        nr, nm, nk = len(p.regions), len(p.models), len(p.tiers)
        return cls(
            np.zeros((nr, nm, nk)),
            np.zeros((minutes + drain, nr, nm, nk)),
            np.zeros((minutes + drain, nr, nm, nk)),
            np.zeros((minutes, nr, nm, nk)),
            np.zeros((minutes + drain, 5)),
            np.zeros((minutes, nr, nm)),
            np.zeros((minutes, nr, nm)),
            np.zeros((minutes, nr, nm, len(p.vm_types))),
            np.ones((minutes, nr, nm)),
        )

    def end_drain(self, t: int) -> None:
        """The queues emptied at drain minute ``t``: later minutes are not recorded."""
        self.admitted = self.admitted[: t + 1]
        self.served = self.served[: t + 1]
        self.timeline = self.timeline[: t + 1]


def serve_interactive(
    p: FleetParams, cap: Array, arr: Array, books: Books, t: int, in_log: bool
) -> tuple[Array, Array]:
    """Interactive tiers in priority order take what they need of the shared capacity ``cap``
    [r, m, k] (tokens/s) in minute ``t``; a tier's queue beyond what it could serve within
    its drop time is dropped (counted only while ``in_log``). Returns the share of the minute
    still free [r, m] and the pools' pressure (work present over capacity)."""
    nr, nm = cap.shape[:2]
    free = np.ones((nr, nm))
    pressure = np.zeros((nr, nm))
    for k in p.interactive:
        c = cap[:, :, k] * 60.0
        backlog = books.queue[:, :, k] + arr[:, :, k]
        s = np.minimum(backlog, c * free)
        with np.errstate(divide="ignore", invalid="ignore"):
            used = np.where(c > 0, s / c, 0.0)
            pressure += np.where(c > 0, backlog / c, np.where(backlog > 0, np.inf, 0.0))
        free = np.maximum(free - used, 0.0)
        rest = backlog - s
        limit = cap[:, :, k] * p.drop_after_s[k]
        d = np.maximum(rest - limit, 0.0)
        books.queue[:, :, k] = rest - d
        books.served[t, :, :, k] = s
        books.admitted[t, :, :, k] = arr[:, :, k] - (d if in_log else 0.0)
        if in_log:
            books.dropped[t, :, :, k] = d
    return free, pressure


def serve_niw(
    p: FleetParams,
    cap: Array,
    own: Array,
    arr: Array,
    free: Array,
    share_idle: bool,
    books: Books,
    t: int,
    niw_cap: float | None = None,
) -> tuple[Array, Array, npt.NDArray[np.bool_]]:
    """NIW in minute ``t``: its own instances' capacity ``own`` [r, m] first, then (if
    ``share_idle``) the shared capacity the interactive tiers left ``free`` (with ``niw_cap``,
    only up to that utilisation of the shared pool: max(0, cap − (1 − free))). Returns the
    shared and own busy shares [r, m] it adds, and where it is stuck (work that nothing can
    ever serve: the only NIW pressure, deferrable work is meant to queue)."""
    k = p.deferrable
    backlog = books.queue[:, :, k] + arr[:, :, k]
    room = free if niw_cap is None else np.clip(free - (1.0 - niw_cap), 0.0, None)
    c_shared = cap[:, :, k] * 60.0 * room if share_idle else np.zeros_like(free)
    c_own = own * 60.0
    s = np.minimum(backlog, c_shared + c_own)
    from_own = np.minimum(s, c_own)
    from_shared = s - from_own
    books.queue[:, :, k] = backlog - s
    books.served[t, :, :, k] = s
    books.admitted[t, :, :, k] = arr[:, :, k]
    with np.errstate(divide="ignore", invalid="ignore"):
        shared_used = np.where(cap[:, :, k] > 0, from_shared / (cap[:, :, k] * 60.0), 0.0)
        own_used = np.where(c_own > 0, from_own / c_own, 0.0)
    stuck = (backlog > 0) & (c_shared + c_own <= 0) & (cap[:, :, k] + own <= 0)
    return shared_used, own_used, stuck


def meter(
    p: FleetParams,
    fleet: Fleet,
    pools: tuple[Array, Array],
    busy: tuple[Array, Array],
) -> tuple[float, float, float, float, float]:
    """One timeline row: GPUs allocated, GPUs busy (``busy`` shares [r, m] of the shared
    and own ``pools`` [r, m, g]), GPUs scaling, and the minute's on-demand and spot cost."""
    gpi = p.gpus_per_instance[None]
    gpus_busy = sum(
        float((b * (pool * gpi).sum(axis=2)).sum()) for b, pool in zip(busy, pools, strict=True)
    )
    vm_od, vm_spot = fleet.allocated_vms()
    return (
        float((vm_od * p.gpus_per_vm).sum() + (vm_spot * p.gpus_per_vm).sum()),
        gpus_busy,
        fleet.scaling_gpus(),
        float((vm_od * p.price).sum() / 60.0),
        float((vm_spot * p.spot_price).sum() / 60.0),
    )
