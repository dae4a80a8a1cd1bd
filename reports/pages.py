"""The operator pages over HTTP: `make serve` serves the outputs folder (plan pages under
``reports/<hour>/``, plan files under ``plans/``, Data Docs under ``data_docs/``) on its own
port next to the Prefect UI, because browsers refuse ``file://`` links opened from the UI.

Artifacts link here; :func:`page_url` builds those links (``SAGESERVE_PAGES_URL``, which `make
serve` sets for its worker, else the default address)."""

from __future__ import annotations

import logging
import os
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
DEFAULT_URL = "http://127.0.0.1:4280"


def pages_url() -> str:
    return os.environ.get("SAGESERVE_PAGES_URL", DEFAULT_URL).rstrip("/")


def page_url(path: Path, outputs: Path) -> str:
    """The http link of a file under the outputs folder."""
    relative = Path(path).resolve().relative_to(Path(outputs).resolve())
    return f"{pages_url()}/{relative.as_posix()}"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("pages: " + format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve_pages(outputs: Path, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``outputs`` on ``host:port`` from a daemon thread; ``.shutdown()`` stops it."""
    outputs.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer((host, port), partial(_Quiet, directory=str(outputs)))
    threading.Thread(target=server.serve_forever, name="pages", daemon=True).start()
    return server
