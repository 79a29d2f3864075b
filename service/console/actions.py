"""The console's actions: each runs the ``cre`` command an operator would type, in the
background (a replay of a 20 GiB vacation takes longer than a request may), and the audit trail
records who started it, then how it ended."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

from io_connectors.cassandra_client import CassandraConfig
from pipelines.child_runs import child_log_dir, cre_child, launch_child
from service.audit import AuditTrail
from service.console.operators import Operator

_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    question: str  # what the confirmation asks
    command: Callable[[str, str], list[str]]  # (vacation id, zones root) -> cre's arguments


ACTIONS = {action.name: action for action in (
    Action("replay", "Ingest {vacation_id} again from its landed archive?",
           lambda vacation_id, root: ["replay", vacation_id, "--zones-root", root]),
    Action("rollback", "Roll back {vacation_id}? Its rows leave the structured zone and the "
           "versions before it are served again.",
           lambda vacation_id, _root: ["rollback", vacation_id, "--json"]),
    Action("redeliver", "Build {vacation_id}'s package again and send it to Arkea ABS?",
           lambda vacation_id, root: ["deliver", "--vacation", vacation_id, "--zones-root", root,
                                      "--redeliver", "--json"]),
    Action("recover", "Recover every vacation a crashed run left (this one included)?",
           lambda _vacation_id, root: ["recover", "--zones-root", root, "--json"]),
)}


class ActionRunner:
    """Starts actions as child processes of ``cre serve`` and audits their outcome."""

    def __init__(self, config: CassandraConfig, replication: str, zones_root: str,
                 audit: AuditTrail):
        self._config = config
        self._replication = replication
        self._zones_root = zones_root
        self._audit = audit
        self._log_dir = child_log_dir()
        self._running: set[threading.Thread] = set()

    def start(self, operator: Operator, action: Action, vacation_id: str, client: str) -> None:
        argv, env = cre_child(self._config, self._replication,
                              *action.command(vacation_id, self._zones_root))
        log = self._log_dir / f"console-{action.name}-{vacation_id}.log"
        process = launch_child(argv, env, log)
        self._audit.record(operator.principal, action.name, vacation_id, "started",
                           f"pid {process.pid}, log {log}", client)
        _LOG.info("%s started %s of %s (pid %d)", operator.name, action.name, vacation_id,
                  process.pid)
        waiter = threading.Thread(target=self._ended, name=f"console-{action.name}",
                                  args=(operator, action, vacation_id, client, process, log),
                                  daemon=True)
        self._running.add(waiter)
        waiter.start()

    def _ended(self, operator: Operator, action: Action, vacation_id: str, client: str,
               process: subprocess.Popen, log: Path) -> None:
        code = process.wait()
        last = (log.read_text(errors="replace").strip().splitlines() or [""])[-1][-500:]
        self._audit.record(operator.principal, action.name, vacation_id,
                           "ok" if code == 0 else "failed", f"exit {code}: {last}", client)
        (_LOG.info if code == 0 else _LOG.error)("%s of %s by %s ended: exit %d", action.name,
                                                 vacation_id, operator.name, code)
        self._running.discard(threading.current_thread())

    def wait(self, timeout: float = 60) -> None:
        """Lets the actions still running end (``cre serve`` stopping), so each outcome is in
        the trail."""
        for waiter in list(self._running):
            waiter.join(timeout)
