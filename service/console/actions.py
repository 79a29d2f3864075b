"""The console's actions: each calls the operation an operator's ``cre`` command calls
(``pipelines.operations``), in the background, and the audit trail records who started it, then
how it ended.

A rollback, a few CQL statements, runs in a thread of ``cre serve``. A replay, a redelivery or a
recovery is a Beam run (a 20 GiB vacation takes longer than a request may, and its memory is
not the web server's to give): it runs as a ``cre`` child process (``pipelines.child_runs``
writes its command line), whose log's last line the trail keeps.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from io_connectors.cassandra_client import CassandraConfig
from pipelines import child_runs, operations
from pipelines.ledger import Ledger
from service.audit import AuditTrail
from service.console.operators import Operator

_LOG = logging.getLogger(__name__)


def _rollback(session: Any, vacation_id: str, _operator: str) -> str:
    return operations.rollback(session, vacation_id).describe()


def _release(session: Any, vacation_id: str, operator: str) -> str:
    """Lets a held delivery go; the ingest manager delivers it at its next look."""
    if not Ledger(session).release_delivery(vacation_id, operator):
        raise operations.OperationRefused(f"{vacation_id}'s delivery is not held")
    return f"{vacation_id}'s delivery released: the ingest manager delivers it"


@dataclasses.dataclass(frozen=True)
class Action:
    """An action the console offers. Exactly one of ``child`` (a Beam run: the ``cre``
    arguments, from the vacation id and the zones root) and ``call`` (a few statements, run in
    ``cre serve`` on a session of its own: what it did, for the trail) is given."""

    name: str
    question: str  # what the confirmation asks
    child: Optional[Callable[[str, str], list[str]]] = None
    call: Optional[Callable[[Any, str, str], str]] = None

    def __post_init__(self) -> None:
        if (self.child is None) == (self.call is None):
            raise ValueError(f"the action {self.name} needs one of child and call")


ACTIONS = {action.name: action for action in (
    Action("replay", "Ingest {vacation_id} again from its landed archive?",
           child=child_runs.replay_command),
    Action("rollback", "Roll back {vacation_id}? Its rows leave the structured zone and the "
           "versions before it are served again.", call=_rollback),
    Action("redeliver", "Build {vacation_id}'s package again and send it to Arkea ABS?",
           child=child_runs.redeliver_command),
    Action("release", "Release {vacation_id}'s delivery, held by a data-quality finding, and "
           "send its package to Arkea ABS?", call=_release),
    Action("recover", "Recover every vacation a crashed run left (this one included)?",
           child=lambda _vacation_id, root: child_runs.recover_command(root)),
)}


class ActionRunner:
    """Carries out actions in the background, child processes of ``cre serve`` or threads of
    it, and audits their outcome; ``config`` is the connection of both (the ingests')."""

    def __init__(self, config: CassandraConfig, zones_root: str, audit: AuditTrail):
        self._config = config
        self._zones_root = zones_root
        self._audit = audit
        self._log_dir = child_runs.child_log_dir()
        self._running: set[threading.Thread] = set()

    def start(self, operator: Operator, action: Action, vacation_id: str, client: str) -> None:
        """Starts ``action`` on ``vacation_id`` for ``operator``; returns at once, its
        ``started`` in the trail."""
        if action.child is None:
            self._audit.record(operator.principal, action.name, vacation_id, "started",
                               "in cre serve", client)
            target, args = self._called, (operator, action, vacation_id, client)
        else:
            target, args = self._ended, (operator, action, vacation_id, client,
                                         *self._launch(operator, action, vacation_id, client))
        _LOG.info("%s started %s of %s", operator.name, action.name, vacation_id)
        waiter = threading.Thread(target=target, name=f"console-{action.name}", args=args,
                                  daemon=True)
        self._running.add(waiter)
        waiter.start()

    def _launch(self, operator: Operator, action: Action, vacation_id: str,
                client: str) -> tuple[subprocess.Popen, Path]:
        argv, env = child_runs.cre_child(self._config,
                                         *action.child(vacation_id, self._zones_root))
        log = self._log_dir / f"console-{action.name}-{vacation_id}.log"
        process = child_runs.launch_child(argv, env, log)
        self._audit.record(operator.principal, action.name, vacation_id, "started",
                           f"pid {process.pid}, log {log}", client)
        return process, log

    def _ended(self, operator: Operator, action: Action, vacation_id: str, client: str,
               process: subprocess.Popen, log: Path) -> None:
        """Waits for a child run; its exit code and its log's last line go to the trail."""
        code = process.wait()
        last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1][-500:]
        self._finished(operator, action, vacation_id, client, code == 0,
                       f"exit {code}: {last}")

    def _called(self, operator: Operator, action: Action, vacation_id: str,
                client: str) -> None:
        """Runs an in-process action; what it did, or why it did not, goes to the trail."""
        try:
            with operations.connected(self._config) as session:
                ok, detail = True, action.call(session, vacation_id, operator.name)
        except Exception as error:  # noqa: BLE001 - said in the trail, and cre serve goes on
            if not isinstance(error, operations.OperationRefused):  # a refusal needs no trace
                _LOG.exception("%s of %s failed", action.name, vacation_id)
            ok, detail = False, f"{type(error).__name__}: {error}"
        self._finished(operator, action, vacation_id, client, ok, detail[-500:])

    def _finished(self, operator: Operator, action: Action, vacation_id: str, client: str,
                  ok: bool, detail: str) -> None:
        self._audit.record(operator.principal, action.name, vacation_id,
                           "ok" if ok else "failed", detail, client)
        (_LOG.info if ok else _LOG.error)("%s of %s by %s ended: %s", action.name, vacation_id,
                                          operator.name, detail)
        self._running.discard(threading.current_thread())

    def wait(self, timeout: float = 60) -> None:
        """Lets the actions still running end (``cre serve`` stopping), so each outcome is in
        the trail."""
        for waiter in list(self._running):
            waiter.join(timeout)
