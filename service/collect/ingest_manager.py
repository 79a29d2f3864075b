"""The ingest manager: every uploaded vacation ingested and delivered, exactly once.

Its queue is the ledger: uploads are RECEIVED rows with the path they landed at. Each tick it
starts ``cre ingest`` for the oldest waiting ones, a few at a time, each with the service's own
zones and structured zone on its command line (the password in its environment only), so that
a run never writes wherever its inherited environment happens to point. Every replica of
``cre serve`` runs a manager: only the one that holds a vacation in the ledger
(``Ledger.schedule``, a conditional write with a lease) starts its ingest, and the ingest then
claims the vacation by its own conditional write.

A run is judged by the ledger, not by its exit code alone: one that leaves the vacation waiting
failed, and is tried again after an exponentially growing pause, until ``max_failures`` (counted
in the ledger, so by every replica together); then the vacation is left to ``cre recover`` and
shown by ``cre_ingest_manager_given_up``. After a crash or a restart nothing is lost: the hold
of a dead replica lapses, a claim whose process died is taken over by the next ingest, and a
vacation loaded but not delivered is delivered by it.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from prometheus_client import CollectorRegistry, Counter, Gauge

from io_connectors.cassandra_client import CassandraConfig
from pipelines.child_runs import child_log_dir, cre_child, ingest_command, launch_child
from pipelines.ledger import IN_PROGRESS, LEASE_SECONDS, Ledger, State, VacationRecord, this_process
from service.tenants import TenantStore

if TYPE_CHECKING:
    from service.audit import AuditTrail

_LOG = logging.getLogger(__name__)
# states whose vacation may still need a run: waiting, abandoned, loaded but not delivered
_PENDING = (State.RECEIVED, State.LANDED, State.VALIDATED, State.LOADED, State.REJECTED,
            State.FAILED)
_LONGEST_PAUSE = 900.0  # seconds between two attempts at most, however many failed


def waits(row: VacationRecord, now: datetime.datetime) -> bool:
    """Whether the vacation of ``row`` still needs a run: received, failed, abandoned by its
    run, or loaded or rejected but not delivered (and its delivery not held for an operator)."""
    if row.landed_path is None:
        return False
    if row.state in IN_PROGRESS:
        return Ledger.abandoned(row, now)
    if row.state in (State.LOADED, State.REJECTED):
        return row.delivered_at is None and row.delivery_held is None
    return row.state in (State.RECEIVED, State.FAILED)


@dataclasses.dataclass
class _Held:
    """A vacation this replica holds: its ingest running, or its next attempt awaited."""

    tenant: str
    failures: int
    renew_at: float
    process: Optional[subprocess.Popen] = None
    log: Optional[Path] = None
    retry_at: float = 0.0


class IngestManager:
    """Runs ``cre ingest`` for what waits in the ledger; a thread of ``cre serve``."""

    def __init__(self, ledger: Ledger, config: CassandraConfig, zones_root: str,
                 tenants_path: str, *, parallelism: int = 2,
                 poll_seconds: float = 2.0, max_failures: int = 3, retry_seconds: float = 30.0,
                 lease_seconds: float = LEASE_SECONDS, replica: Optional[str] = None,
                 registry: Optional[CollectorRegistry] = None,
                 audit: Optional[AuditTrail] = None,
                 clock: Callable[[], float] = time.monotonic):
        self._ledger = ledger
        self._config = config
        self._zones_root = zones_root
        self._tenants = TenantStore(Path(tenants_path))
        self._parallelism = parallelism
        self._poll = min(poll_seconds, lease_seconds / 3)  # a hold renewed in time
        self._max_failures = max_failures
        self._retry = retry_seconds
        self._lease = lease_seconds
        self._replica = replica or this_process()
        self._audit = audit
        self._clock = clock
        self._log_dir = child_log_dir()
        self._held: dict[str, _Held] = {}
        self.started = Counter("cre_ingest_manager_starts", "Ingests the manager started.",
                               registry=registry)
        self.failed = Counter("cre_ingest_manager_failures", "Ingests that ended with their "
                              "vacation still waiting, or with an error.", registry=registry)
        self.given_up = Gauge("cre_ingest_manager_given_up", "Vacations waiting whose ingest "
                              "failed --max-failures times: left for cre recover.",
                              registry=registry)

    def waiting(self) -> list[VacationRecord]:
        """The ledger rows of the vacations a run should take, oldest first."""
        now = datetime.datetime.now(datetime.UTC)
        return sorted((row for state in _PENDING for row in self._ledger.in_state(state)
                       if waits(row, now)),
                      key=lambda row: (row.received_at, row.vacation_id))

    def running(self) -> int:
        return sum(held.process is not None for held in self._held.values())

    def tick(self) -> None:
        """Judges the ingests that ended, renews this replica's holds, starts what waits."""
        now = self._clock()
        for vacation_id, held in list(self._held.items()):
            if held.process is not None and held.process.poll() is not None:
                self._ended(vacation_id, held, now)
        waiting = self.waiting()
        self.given_up.set(sum((row.manager_failures or 0) >= self._max_failures
                              for row in waiting))
        self._renew({row.vacation_id for row in waiting}, now)
        for row in waiting:
            if self.running() >= self._parallelism:
                break
            self._consider(row, now)

    def _renew(self, waiting: set[str], now: float) -> None:
        for vacation_id, held in list(self._held.items()):
            if held.process is None and vacation_id not in waiting:  # done elsewhere
                self._let_go(vacation_id)
            elif held.renew_at <= now:
                if self._ledger.hold(vacation_id, self._replica, self._lease, held.failures):
                    held.renew_at = now + self._lease / 3
                else:
                    _LOG.warning("%s: the hold lapsed and another replica took it", vacation_id)
                    del self._held[vacation_id]

    def _consider(self, row: VacationRecord, now: float) -> None:
        vacation_id = row.vacation_id
        held = self._held.get(vacation_id)
        if held is None:
            failures = row.manager_failures or 0
            if failures >= self._max_failures or not self._ledger.schedule(
                    row, self._replica, self._lease):
                return  # given up, or another replica's
            held = self._held[vacation_id] = _Held(row.tenant or "", failures,
                                                   now + self._lease / 3)
        elif held.process is not None or held.retry_at > now:
            return
        held.log = self._log_dir / f"ingest-{vacation_id}.log"
        held.process = self._launch(*self.command(row), held.log)
        self.started.inc()
        _LOG.info("ingesting %s for %s (attempt %d); its log: %s", vacation_id,
                  held.tenant or "-", held.failures + 1, held.log)
        self._record(held, "ingest.start", vacation_id, "started",
                     f"attempt {held.failures + 1}, pid {held.process.pid}, log {held.log}")

    def _ended(self, vacation_id: str, held: _Held, now: float) -> None:
        """A run ended: done if the ledger says so, else a failure, retried or given up."""
        code = held.process.returncode
        row = self._ledger.get(vacation_id)
        held.process = None
        state = row.state if row else "gone"
        if code in (0, 3) and not (row and waits(row, datetime.datetime.now(datetime.UTC))):
            _LOG.info("ingest of %s ended: %s (exit code %d)", vacation_id, state, code)
            self._let_go(vacation_id)
            self._record(held, "ingest.end", vacation_id, "done", f"exit {code}, {state}")
            return
        held.failures += 1
        self.failed.inc()
        what = f"exit {code}, the vacation {state}, failure {held.failures} of " \
               f"{self._max_failures}; its log: {held.log}"
        if held.failures >= self._max_failures:
            _LOG.error("ingest of %s failed (%s): given up, left for cre recover",
                       vacation_id, what)
            self._let_go(vacation_id)
            self._record(held, "ingest.end", vacation_id, "given_up", what)
            return
        pause = min(_LONGEST_PAUSE, self._retry * 2 ** (held.failures - 1))
        held.retry_at = now + pause
        held.renew_at = now  # records the failure in the ledger with the renewal below
        _LOG.warning("ingest of %s failed (%s); next attempt in %.0f s", vacation_id, what,
                     pause)
        self._record(held, "ingest.end", vacation_id, "failed", f"{what}; retry in {pause:.0f} s")

    def _let_go(self, vacation_id: str) -> None:
        held = self._held.pop(vacation_id)
        self._ledger.hold(vacation_id, self._replica, 0, held.failures)

    def _record(self, held: _Held, action: str, vacation_id: str, outcome: str,
                detail: str) -> None:
        if self._audit is not None:
            self._audit.record(held.tenant, action, vacation_id, outcome, detail)

    def command(self, row: VacationRecord) -> tuple[list[str], dict[str, str]]:
        """``cre ingest``'s command line and environment for the vacation of ``row``: the
        tenant's runner profile, then the service's zones, lease and structured zone."""
        tenant = self._tenants.load().get(row.tenant)
        return cre_child(self._config, *ingest_command(
            row.landed_path, self._zones_root, tenant.profile if tenant else {}, self._lease))

    def _launch(self, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        return launch_child(argv, env, log)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the manager outlives a bad tick
                _LOG.exception("ingest manager tick failed")
            stop.wait(self._poll)
