"""Peak memory of a benchmark run: this process, its largest worker, and the summed resident
memory of the whole process tree (sampled)."""

from __future__ import annotations

import contextlib
import resource


def peak_rss_gb() -> dict[str, float]:
    """Peak resident memory so far: this process, and the largest worker process."""
    to_gb = 1024.0**2  # ru_maxrss is in KiB on Linux
    return {
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / to_gb, 2),
        "peak_worker_rss_gb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / to_gb, 2
        ),
    }


class TreeMemory:
    """The peak of the summed resident memory of this process and all its children (the
    pool's workers), sampled every ``every_s`` while in use: what the machine must hold at
    once. (``ru_maxrss`` of the children is the largest single worker and, for a spawned
    worker, starts at this process's size at the fork.) Shared libraries count once per
    process, so the figure errs high."""

    def __init__(self, every_s: float = 0.25) -> None:
        import threading

        self.every_s = every_s
        self.peak_gb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil  # type: ignore[import-untyped]  # no stubs installed

        me = psutil.Process()
        while not self._stop.is_set():
            try:
                procs = [me, *me.children(recursive=True)]
                total = 0
                for p in procs:
                    with contextlib.suppress(psutil.Error):  # a worker that just exited
                        total += p.memory_info().rss
                self.peak_gb = max(self.peak_gb, total / 1024.0**3)
            except psutil.Error:
                pass
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
