"""Where the region subproblems of planner.ilp.lagrange run: in this process (one worker), a
process pool (several), or a Dask cluster when an address is given (the distributed engine
users already run; ``dask_address`` or SAGESERVE_DASK_ADDRESS). The planning data is sent to
each worker once; a task is then a region and its prices. Results come back in task order,
so the plan does not depend on the engine."""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from planner.ilp.data import PlanningData
from planner.ilp.lagrange import RegionResult, solve_region

Task = tuple[Any, ...]  # (region, prices, niw_prices, time_limit_s, gap, required)
_DATA: PlanningData | None = None


def _log_levels() -> dict[str, int]:
    """This process's planner loggers that have a level set (e.g. a bench's ``--verbose``),
    so that a spawned worker logs what this process would."""
    return {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith("planner") and isinstance(logger, logging.Logger) and logger.level
    }


def _init(data: PlanningData, levels: dict[str, int] | None = None) -> None:
    global _DATA
    _DATA = data
    if levels:  # spawned workers start with no logging set up: theirs go to stderr too
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _ready() -> bool:
    """A worker's first task: nothing, so that it starts (spawned, its imports, the data)."""
    return _DATA is not None


def _call(job: tuple[Callable[..., Any], Task]) -> Any:
    assert _DATA is not None, "worker not initialised with the planning data"
    fn, task = job
    return fn(_DATA, *task)


def _run(task: Task) -> RegionResult:
    assert _DATA is not None, "worker not initialised with the planning data"
    return solve_region(_DATA, *task)


class RegionPool:
    """``solve(tasks)``: the RegionResults of ``tasks``, in order. Use as a context manager."""

    def __init__(self, data: PlanningData, workers: int = 1, dask_address: str | None = None):
        self.data = data
        self.address = dask_address or os.environ.get("SAGESERVE_DASK_ADDRESS") or None
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._client: Any = None
        self._data_future: Any = None
        self._warm: list[Future[Any]] = []
        if self.address:
            from distributed import Client

            self._client = Client(self.address, set_as_default=False)  # type: ignore[no-untyped-call]
            self._data_future = self._client.scatter(data, broadcast=True)
            self.workers = sum(self._client.nthreads().values())
        elif workers > 1:
            self._pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(data, _log_levels()),
            )
            # the workers start now, while the caller builds its model, not at the first
            # task: on the 20×30×4 rung the whole relaxation's interior point started ~8 s
            # after it was submitted (spawn, imports, the planning data unpickled)
            self._warm = [self._pool.submit(_ready) for _ in range(workers)]

    @property
    def engine(self) -> str:
        if self._client is not None:
            return f"dask ({self.address}, {self.workers} threads)"
        return f"process pool ({self.workers} workers)" if self._pool else "in process"

    def solve(self, tasks: list[Task]) -> list[RegionResult]:
        if self._client is not None:
            futures = [
                self._client.submit(solve_region, self._data_future, *task, pure=False)
                for task in tasks
            ]
            return list(self._client.gather(futures))
        if self._pool is not None:
            return list(self._pool.map(_run, tasks))
        return [solve_region(self.data, *task) for task in tasks]

    def map(self, fn: Callable[..., Any], tasks: list[Task]) -> list[Any]:
        """``fn(data, *task)`` for every task, in order, on the pool's engine (``fn`` a
        module-level function, so that it pickles)."""
        if self._client is not None:
            futures = [
                self._client.submit(fn, self._data_future, *task, pure=False) for task in tasks
            ]
            return list(self._client.gather(futures))
        if self._pool is not None:
            return list(self._pool.map(_call, [(fn, task) for task in tasks]))
        return [fn(self.data, *task) for task in tasks]

    def submit(self, fn: Callable[..., Any], task: Task) -> Any:
        """``fn(data, *task)`` started on the pool's engine without waiting for it: a future
        with ``done()``, ``result()`` and ``cancel()`` (concurrent.futures or Dask). In
        process (one worker) it runs now, and the future returned is already done."""
        if self._client is not None:
            return self._client.submit(fn, self._data_future, *task, pure=False)
        if self._pool is not None:
            return self._pool.submit(_call, (fn, task))
        done: Future[Any] = Future()
        try:
            done.set_result(fn(self.data, *task))
        except Exception as exc:  # the caller sees it from result(), as from a worker
            done.set_exception(exc)
        return done

    def close(self) -> None:
        for f in self._warm:  # a pool closed before its workers started: no start-up task left
            f.cancel()
        if self._pool is not None:
            self._pool.shutdown()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> RegionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
