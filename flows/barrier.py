"""Named points in the dangerous windows of publishing, where a test can stop the process.

With ``SAGESERVE_BARRIER=<name>`` and ``SAGESERVE_BARRIER_FILE=<path>`` in its environment,
a process reaching the point ``<name>`` writes its pid to ``<path>`` and waits there until it
is killed. A test starts the real command in a subprocess, waits for the file, kills the
process with SIGKILL and checks what the crash left: no sleeping to guess when the process is
inside the window. Without the variables (always, in production) a barrier does nothing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

ENV = "SAGESERVE_BARRIER"
ENV_FILE = "SAGESERVE_BARRIER_FILE"


def barrier(name: str) -> None:
    """Stop here when the environment names this point (see the module docstring)."""
    if os.environ.get(ENV) != name:
        return
    target = Path(os.environ[ENV_FILE])
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(str(os.getpid()))
    tmp.replace(target)
    while True:  # until the test kills us
        signal.pause()
