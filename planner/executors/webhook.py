"""The real-target executor: per-region desired-state documents written to a folder and,
when a webhook URL is configured, POSTed to it.

Every region is tried, whatever happened to the others; the result says per region whether it
was accepted, and when any failed, ``apply`` raises one ``WebhookError`` naming each failed
region, with the full result (accepted regions included) on ``error.state``. This is the only
retry layer: callers (the Prefect task, ``sageserve plans apply``) do not retry it again.

Delivery per region: HTTP POST, JSON body, header ``Idempotency-Key: <plan_id>:<region>``
(the same document always carries the same key, so a target that saw it already can answer
without applying it twice), a per-attempt timeout, and retries with exponential backoff on
what may pass (connection errors, timeouts, 408, 425, 429, 5xx). Any other 4xx is the
target refusing the document: no retry, a ``WebhookError`` naming region, status and body.

The folder holds ``desired/<region>.json`` (what was sent last) and ``applied/<region>.json``
(what the target accepted last). ``applied`` moves only after a 2xx, atomically; without a
URL nothing is accepted, so only ``desired`` is written (and the diff is against the last
desired document). Files are mode 0644 (ops tooling reads them). Dry run writes nothing and
sends nothing: it logs, and returns, that same diff. The documents follow
``schemas/desired_state.schema.json`` (tests validate every document written).
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planner.executors.protocol import AppliedState, desired_states, diff
from planner.files import write_text_atomic
from planner.ilp.plan import Plan

log = logging.getLogger(__name__)
RETRYABLE = {408, 425, 429}


class WebhookError(RuntimeError):
    """The target refused a document, or every retry failed; ``state`` (when set) is what
    the whole delivery achieved."""

    state: AppliedState | None = None


@dataclass(frozen=True)
class TargetSettings:
    """Where and how the desired-state documents are delivered (the config's ``executor``
    section). The auth header's value is read from the environment variable ``auth_env`` at
    delivery time, never from a file."""

    url: str | None = None
    timeout_s: float = 10.0
    retries: int = 4
    backoff_s: float = 0.5
    auth_header: str = "Authorization"
    auth_env: str | None = None

    def headers(self) -> dict[str, str]:
        if not self.auth_env:
            return {}
        value = os.environ.get(self.auth_env)
        if not value:
            raise WebhookError(
                f"executor.auth_env names {self.auth_env}, which is not set in the environment"
            )
        return {self.auth_header: value}


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(doc, indent=1, sort_keys=True))


@dataclass
class WebhookExecutor:
    folder: Path
    url: str | None = None
    timeout_s: float = 10.0
    retries: int = 4
    backoff_s: float = 0.5
    dry_run: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    attempts: list[tuple[str, str]] = field(default_factory=list)  # (region, outcome) log
    admission: dict[str, str] = field(default_factory=dict)  # tier -> admission policy
    router: dict[str, Any] | None = None  # the config's routing section (instance router)
    lt_f: dict[str, Any] | None = None  # LT-F's dials and lead_min (config lt_f.executor)

    @classmethod
    def from_settings(
        cls,
        settings: TargetSettings,
        folder: Path,
        *,
        dry_run: bool = False,
        admission: dict[str, str] | None = None,
        router: dict[str, Any] | None = None,
        lt_f: dict[str, Any] | None = None,
    ) -> WebhookExecutor:
        return cls(
            folder,
            settings.url,
            timeout_s=settings.timeout_s,
            retries=settings.retries,
            backoff_s=settings.backoff_s,
            dry_run=dry_run,
            headers=settings.headers() if settings.url and not dry_run else {},
            admission=dict(admission or {}),
            router=router,
            lt_f=lt_f,
        )

    def _last(self, kind: str, region: str) -> dict[str, Any] | None:
        path = self.folder / kind / f"{region}.json"
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def apply(self, plan: Plan) -> AppliedState:
        regions = set(plan.instances["region"]) | set(plan.vms["region"])
        # the rise is measured against what the target accepted (with a target), else what was
        # last written; ``_ramp`` uses it only when it is the previous hour's or this hour's
        kind = "applied" if self.url else "desired"
        last = {r: self._last(kind, r) for r in regions} if self.lt_f else None
        admission = self.admission or None
        docs = desired_states(
            plan, admission=admission, router=self.router, lt_f=self.lt_f, previous=last
        )
        notes: list[str] = []
        accepted: dict[str, dict[str, Any]] = {}
        failed: dict[str, str] = {}
        if not self.url:
            log.info("no target configured: desired/ only, nothing applied")
        for region, doc in docs.items():
            before = self._last("applied" if self.url else "desired", region)
            changes = diff(before, doc)
            if self.dry_run:
                for line in changes or [f"{region}: no change"]:
                    log.info("dry run: %s", line)
                notes.extend(changes)
                continue
            _write_json(self.folder / "desired" / f"{region}.json", doc)
            notes.extend(changes)
            if not self.url:
                continue
            try:
                self._post(region, doc)
            except WebhookError as exc:
                failed[region] = str(exc)
                log.error("%s", exc)
                continue
            _write_json(self.folder / "applied" / f"{region}.json", doc)
            accepted[region] = doc
        state = AppliedState(plan.plan_id, plan.start, accepted, notes, failed)
        if failed:
            error = WebhookError(
                f"{len(failed)} of {len(docs)} regions not delivered: "
                + "; ".join(failed[r] for r in sorted(failed))
            )
            error.state = state
            raise error
        return state

    def _post(self, region: str, doc: dict[str, Any]) -> None:
        assert self.url is not None
        body = json.dumps(doc, sort_keys=True).encode()
        key = f"{doc['plan_id']}:{region}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(
                self.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    **self.headers,
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    status = response.status
                    self.attempts.append((region, str(status)))
                    log.info("%s: %s accepted (HTTP %s, key %s)", self.url, region, status, key)
                    return
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                self.attempts.append((region, str(exc.code)))
                if exc.code in RETRYABLE or exc.code >= 500:
                    last = f"HTTP {exc.code}: {detail}"
                    log.warning("%s: %s attempt %d: %s", self.url, region, attempt + 1, last)
                    continue
                raise WebhookError(
                    f"{self.url} refused the desired state of {region} (plan "
                    f"{doc['plan_id']}): HTTP {exc.code}: {detail}"
                ) from exc
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(exc).__name__}: {reason}"
                self.attempts.append((region, "error"))
                log.warning("%s: %s attempt %d: %s", self.url, region, attempt + 1, last)
        raise WebhookError(
            f"{self.url}: desired state of {region} (plan {doc['plan_id']}) not delivered "
            f"after {self.retries + 1} attempts; last: {last}"
        )
