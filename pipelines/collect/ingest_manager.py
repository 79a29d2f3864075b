"""The ingest manager: every uploaded vacation ingested and delivered, exactly once.

Its queue is the ledger: uploads are RECEIVED rows with the path they landed at. Each tick it
starts ``cre ingest`` (which claims the vacation by a conditional write, then delivers) for the
oldest waiting ones, a few at a time. After a crash or a restart nothing is lost: a claim whose
process died is taken over by the next ingest, a vacation loaded but not delivered is delivered
by it, and a FAILED one is tried again a bounded number of times.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from pipelines.collect.tenants import TenantStore
from pipelines.ledger import Ledger, State

_LOG = logging.getLogger(__name__)
_PROJECT = Path(__file__).resolve().parents[2]
# states whose vacation may still need a run: waiting, abandoned, loaded but not delivered
_PENDING = (State.RECEIVED, State.LANDED, State.VALIDATED, State.LOADED, State.REJECTED,
            State.FAILED)


class IngestManager:
    def __init__(self, session, zones_root: str, tenants_path: str, parallelism: int = 2,
                 poll_seconds: float = 2.0, max_failures: int = 3):
        self._zones_root = zones_root
        self._tenants = TenantStore(Path(tenants_path))
        self._parallelism = parallelism
        self._poll = poll_seconds
        self._max_failures = max_failures
        self._running: dict[str, subprocess.Popen] = {}
        self._failures: dict[str, int] = {}
        self._ledger = Ledger(session)

    def waiting(self) -> list[tuple]:
        """(received_at, vacation_id, tenant, path) of vacations a run should take, oldest
        first."""
        found = []
        for state in _PENDING:
            for row in self._ledger.in_state(state):
                vacation_id, path = row["vacation_id"], row["landed_path"]
                if path is None or (state in (State.LOADED, State.REJECTED) and
                                    row["delivered_at"]):
                    continue
                if state == State.FAILED and self._failures.get(vacation_id, 0) >= \
                        self._max_failures:
                    continue
                found.append((row["received_at"], vacation_id, row["tenant"], path))
        return sorted(found)

    def tick(self) -> None:
        for vacation_id, process in list(self._running.items()):
            code = process.poll()
            if code is not None:
                del self._running[vacation_id]
                if code not in (0, 3):
                    self._failures[vacation_id] = self._failures.get(vacation_id, 0) + 1
                _LOG.info("ingest of %s ended with exit code %s", vacation_id, code)
        for _, vacation_id, tenant, path in self.waiting():
            if len(self._running) >= self._parallelism:
                break
            if vacation_id not in self._running:
                self._running[vacation_id] = self._start(vacation_id, tenant, path)

    def _start(self, vacation_id: str, tenant_name: str, path: str) -> subprocess.Popen:
        tenant = self._tenants.load().get(tenant_name)
        profile = dict(tenant.profile if tenant else {"runner": "DirectRunner"})
        options = [f"--runner={profile.pop('runner', 'DirectRunner')}",
                   *(f"--{key}={value}" for key, value in profile.items())]
        _LOG.info("ingesting %s for %s", vacation_id, tenant_name)
        log_dir = Path(os.environ.get("CRE_MANAGER_LOG_DIR", tempfile.gettempdir()))
        with open(log_dir / f"ingest-{vacation_id}.log", "ab") as log:  # the child keeps it
            return subprocess.Popen(
                [sys.executable, "-m", "pipelines.commands.cli", "ingest", "--input", path,
                 "--zones-root", self._zones_root, *options],
                cwd=_PROJECT, stdout=log, stderr=subprocess.STDOUT)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the manager outlives a bad tick
                _LOG.exception("ingest manager tick failed")
            stop.wait(self._poll)
