"""The console's actions without a database: an in-process action (the rollback's way) and a
child run (the replay's way) each leave ``started``, then ``ok`` or ``failed`` with a detail, in
the audit trail; the child's command line comes from ``pipelines.child_runs``."""

from __future__ import annotations

import contextlib
import sys

import pytest

from io_connectors.cassandra_client import CassandraConfig
from pipelines import child_runs, operations
from service.console.actions import ACTIONS, Action, ActionRunner
from service.console.operators import Operator

VACATION = "BAF_20261201_03"
OLIVIA = Operator("olivia", "hash", "operator")


class _Audit:
    def __init__(self):
        self.events: list[tuple[str, str, str, str, str]] = []

    def record(self, principal: str, action: str, object_: str, outcome: str,
               detail: str = "", client: str = "") -> None:
        self.events.append((principal, action, object_, outcome, detail))


def _runner(tmp_path, monkeypatch) -> tuple[ActionRunner, _Audit]:
    monkeypatch.setenv("CRE_MANAGER_LOG_DIR", str(tmp_path))
    audit = _Audit()
    return ActionRunner(CassandraConfig.from_hosts("127.0.0.1", "cre"), str(tmp_path / "zones"),
                        audit), audit


@pytest.fixture
def no_database(monkeypatch):
    @contextlib.contextmanager
    def connected(_config):
        yield "session"

    monkeypatch.setattr(operations, "connected", connected)


def test_an_in_process_action_is_audited_with_what_it_did(tmp_path, monkeypatch, no_database):
    runner, audit = _runner(tmp_path, monkeypatch)
    done = Action("rollback", "?", call=lambda session, vacation_id, operator:
                  f"{vacation_id} in {session} for {operator}")
    refused = Action("rollback", "?", call=_refuse)
    for action in (done, refused):
        runner.start(OLIVIA, action, VACATION, "10.0.0.1")
        runner.wait(10)
    assert [event[3:] for event in audit.events] == [
        ("started", "in cre serve"), ("ok", f"{VACATION} in session for olivia"),
        ("started", "in cre serve"), ("failed", f"OperationRefused: {VACATION} is RECEIVED")]
    assert {event[:3] for event in audit.events} == {("operator:olivia", "rollback", VACATION)}


def _refuse(_session, vacation_id: str, _operator: str) -> str:
    raise operations.OperationRefused(f"{vacation_id} is RECEIVED")


def test_a_child_run_is_audited_with_its_exit_code_and_last_line(tmp_path, monkeypatch):
    runner, audit = _runner(tmp_path, monkeypatch)
    launched, launch_child = [], child_runs.launch_child

    def launch(argv, env, log):
        launched.append(argv)
        return launch_child([sys.executable, "-c", "print('a'); print('the end')"],
                                       env, log)

    monkeypatch.setattr(child_runs, "launch_child", launch)
    runner.start(OLIVIA, ACTIONS["replay"], VACATION, "10.0.0.1")
    runner.wait(30)
    [argv] = launched
    assert argv[3:7] == ["replay", VACATION, "--zones-root", str(tmp_path / "zones")]
    assert [event[3] for event in audit.events] == ["started", "ok"]
    assert audit.events[0][4].startswith("pid ")
    assert audit.events[1][4] == "exit 0: the end"


def test_the_rollback_runs_in_process_and_the_beam_runs_as_children():
    assert ACTIONS["rollback"].child is None and ACTIONS["rollback"].call is not None
    assert all(ACTIONS[name].child is not None for name in ("replay", "redeliver", "recover"))
    assert ACTIONS["recover"].child(VACATION, "/zones") == ["recover", "--zones-root", "/zones",
                                                           "--json"]
    with pytest.raises(ValueError, match="one of child and call"):
        Action("nothing", "?")
