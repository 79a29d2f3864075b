"""The ingest manager's own logic: what a run is started with, how a failed run is counted and
retried, and (against Cassandra) that of several replicas' managers one starts each vacation."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import hashlib
import threading
import time
from pathlib import Path
from typing import Optional

import httpx
import pytest
from helpers import PASSWORDS, Service, add_tenant, config_of, run_cre, wait_until
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from vacations import MEMBER_CASES, valid_members, write_archive

from io_connectors.cassandra_client import CassandraConfig
from pipelines.child_runs import cassandra_arguments
from pipelines.ledger import Ledger, State, VacationRecord
from pipelines.local.generator import generate_vacation
from pipelines.options import CassandraOptions, cassandra_config, flag_parser
from service.audit import events_since
from service.collect.ingest_manager import IngestManager
from service.tenants import TenantStore

VACATION = "BAF_20260701_01"
CONFIG = CassandraConfig(("10.0.0.7", "10.0.0.8"), "cre_prod", port=9142, username="cre_app",
                         password="s3cret-pw", consistency="LOCAL_QUORUM", local_dc="dc1",
                         tls_ca_file="/etc/cre/ca.pem")


class _Child:
    """A launched ``cre ingest``: running until ``end``, then its exit code."""

    def __init__(self, pid: int):
        self.pid, self.returncode = pid, None

    def poll(self) -> Optional[int]:
        return self.returncode

    def end(self, code: int) -> None:
        self.returncode = code


class _Manager(IngestManager):
    """The manager with its children faked: ``launched`` holds them, in order."""

    def __init__(self, ledger, tmp_path: Path, **options):
        super().__init__(ledger, CONFIG, str(tmp_path / "zones"), str(tmp_path / "tenants.json"),
                         **options)
        self.launched: list[_Child] = []

    def _launch(self, argv: list[str], env: dict[str, str], log: Path) -> _Child:
        self.launched.append(_Child(len(self.launched) + 1))
        return self.launched[-1]


class _Ledger:
    """The ledger's rows in memory, for the manager's bookkeeping alone (one replica)."""

    def __init__(self, **rows: VacationRecord):
        self.rows = rows

    def in_state(self, state: State) -> list[VacationRecord]:
        return [row for row in self.rows.values() if row.state == state]

    def get(self, vacation_id: str) -> VacationRecord:
        return self.rows[vacation_id]

    def schedule(self, row: VacationRecord, replica: str, seconds: float) -> bool:
        return True

    def hold(self, vacation_id: str, replica: str, seconds: float, failures: int) -> bool:
        self.rows[vacation_id] = dataclasses.replace(self.rows[vacation_id],
                                                     manager_failures=failures)
        return True


class _Audit:
    def __init__(self):
        self.events: list[tuple[str, str, str, str]] = []

    def record(self, tenant: str, action: str, object_: str, outcome: str, detail: str = "",
               client: str = "") -> None:
        self.events.append((tenant, action, object_, outcome))


def _row(vacation_id: str = VACATION, **fields) -> VacationRecord:
    return VacationRecord(**{
        "vacation_id": vacation_id, "state": State.RECEIVED, "sha256": "ab" * 32,
        "tenant": "arkea", "landed_path": f"/zones/landing/arkea/{vacation_id}.tar.bz2",
        "received_at": datetime.datetime(2026, 7, 1, 6, tzinfo=datetime.UTC), **fields})


def test_a_run_gets_the_service_zone_on_its_command_line_and_the_password_in_its_env(
        tmp_path, monkeypatch):
    TenantStore(tmp_path / "tenants.json").add(
        "arkea", "correct horse battery", profile={"runner": "FlinkRunner",
                                                   "flink_master": "flink:8081",
                                                   "keyspace": "not_this_one"})
    monkeypatch.setenv("CRE_CASSANDRA_HOSTS", "elsewhere:9042")
    monkeypatch.setenv("CRE_CASSANDRA_KEYSPACE", "wrong")
    monkeypatch.setenv("CRE_CASSANDRA_PASSWORD", "inherited")
    argv, env = _Manager(_Ledger(), tmp_path).command(_row())
    assert argv[3:] == [
        "ingest", "--runner=FlinkRunner", "--flink_master=flink:8081", "--keyspace=not_this_one",
        "--input", "/zones/landing/arkea/BAF_20260701_01.tar.bz2",
        "--zones-root", str(tmp_path / "zones"), "--lease-seconds=90",
        "--cassandra_hosts=10.0.0.7:9142,10.0.0.8:9142", "--keyspace=cre_prod",
        "--cassandra_username=cre_app", "--cassandra_consistency=LOCAL_QUORUM",
        "--cassandra_local_dc=dc1",
        "--cassandra_tls_ca_file=/etc/cre/ca.pem"]  # the service's keyspace last: it wins
    assert not any("s3cret-pw" in arg for arg in argv)
    assert {key: value for key, value in env.items() if key.startswith("CRE_CASSANDRA_")} == {
        "CRE_CASSANDRA_PASSWORD": "s3cret-pw"}


def test_the_arguments_connect_a_child_as_the_service_connects(monkeypatch):
    for name in ("HOSTS", "KEYSPACE", "CONSISTENCY", "USERNAME", "LOCAL_DC", "TLS_CA_FILE"):
        monkeypatch.delenv(f"CRE_CASSANDRA_{name}", raising=False)
    monkeypatch.setenv("CRE_CASSANDRA_PASSWORD", CONFIG.password)
    parser = flag_parser(CassandraOptions.FLAGS)
    child = parser.parse_args(cassandra_arguments(CONFIG))
    assert cassandra_config(child) == CONFIG


def test_a_run_that_leaves_its_vacation_waiting_is_retried_with_backoff_then_given_up(
        tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("CRE_MANAGER_LOG_DIR", str(tmp_path))
    now = [0.0]
    ledger, audit, registry = _Ledger(**{VACATION: _row()}), _Audit(), CollectorRegistry()
    manager = _Manager(ledger, tmp_path, max_failures=3, retry_seconds=10, clock=lambda: now[0],
                       registry=registry, audit=audit)

    def at(seconds: float) -> int:
        now[0] = seconds
        manager.tick()
        return len(manager.launched)

    assert at(0) == 1
    manager.launched[-1].end(0)  # exit 0, yet the ledger still says RECEIVED
    assert at(1) == 1  # a failure: the next attempt 10 s later
    assert ledger.rows[VACATION].manager_failures == 1
    assert f"RECEIVED, failure 1 of 3; its log: {tmp_path / 'ingest-BAF_20260701_01.log'}" in \
        caplog.records[-1].getMessage()
    assert (at(10.9), at(11)) == (1, 2)
    manager.launched[-1].end(3)
    assert (at(12), at(31.9), at(32)) == (2, 2, 3)  # then 20 s later
    manager.launched[-1].end(1)
    assert [at(33), at(10_000)] == [3, 3]  # the third failure: given up, never a loop
    assert ledger.rows[VACATION].manager_failures == 3
    sample = registry.get_sample_value
    assert (sample("cre_ingest_manager_starts_total"),
            sample("cre_ingest_manager_failures_total"),
            sample("cre_ingest_manager_given_up")) == (3, 3, 1)
    assert [(action, outcome) for _, action, _, outcome in audit.events] == [
        ("ingest.start", "started"), ("ingest.end", "failed")] * 2 + [
        ("ingest.start", "started"), ("ingest.end", "given_up")]
    assert "given up, left for cre recover" in caplog.records[-1].getMessage()


@pytest.mark.parametrize("code, state", [(0, State.DELIVERED), (3, State.REJECTED)])
def test_a_run_that_moves_its_vacation_on_is_done(tmp_path, code, state):
    ledger, registry = _Ledger(**{VACATION: _row()}), CollectorRegistry()
    manager = _Manager(ledger, tmp_path, registry=registry)
    manager.tick()
    ledger.rows[VACATION] = dataclasses.replace(
        ledger.rows[VACATION], state=state, delivered_at=datetime.datetime.now(datetime.UTC))
    manager.launched[-1].end(code)
    manager.tick()
    manager.tick()
    assert len(manager.launched) == 1
    assert registry.get_sample_value("cre_ingest_manager_failures_total") == 0


def test_a_delivery_held_for_an_operator_is_left_until_released(tmp_path):
    held = _row(state=State.LOADED, delivery_held="critical data-quality finding on x")
    ledger = _Ledger(**{VACATION: held})
    manager = _Manager(ledger, tmp_path)
    manager.tick()
    assert manager.launched == []
    ledger.rows[VACATION] = dataclasses.replace(held, delivery_held=None)  # released
    manager.tick()
    assert len(manager.launched) == 1


@pytest.mark.integration
def test_of_two_replicas_one_starts_each_vacation_and_a_dead_ones_are_taken_over(
        structured, zone_session, tmp_path):
    ledger = Ledger(zone_session)
    received = datetime.datetime.now(datetime.UTC)
    vacations = [f"BAF_20260801_0{slot}" for slot in range(1, 7)]
    for slot, vacation_id in enumerate(vacations, 1):
        ledger.receive(vacation_id, datetime.date(2026, 8, 1), slot,
                       hashlib.sha256(vacation_id.encode()).hexdigest(), received,
                       f"/zones/landing/arkea/2026-08-01/{vacation_id}/x/{vacation_id}.tar.bz2",
                       "arkea")
    sessions = [config_of(structured).connect(zone_session.keyspace) for _ in range(2)]
    managers = [_Manager(Ledger(session), tmp_path, replica=replica, parallelism=3,
                         lease_seconds=3)
                for session, replica in zip(sessions, ("replica-a", "replica-b"))]
    try:
        barrier = threading.Barrier(2)

        def tick_together(manager: _Manager) -> None:
            for _ in range(3):
                barrier.wait()
                manager.tick()

        threads = [threading.Thread(target=tick_together, args=(m,)) for m in managers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # each vacation started once, though both wanted the oldest ones first
        assert [len(manager.launched) for manager in managers] == [3, 3]
        assert sorted(ledger.get(v).manager for v in vacations) == \
            ["replica-a"] * 3 + ["replica-b"] * 3
        # replica-a dies (it ticks no more): once its holds lapse, replica-b starts its vacations
        survivor = managers[1]
        for child in survivor.launched:  # its own runs end (failed: they are waiting again)
            child.end(1)
        first = len(survivor.launched)
        wait_until(lambda: survivor.tick() or len(survivor.launched),
                   lambda count: count == first + 3, timeout=15, interval=0.3)
        assert len(survivor.launched) - first == 3
        assert {ledger.get(v).manager for v in vacations} == {"replica-b"}
    finally:  # out of the queue of the next tests' managers
        for vacation_id in vacations:
            ledger.transition_any(vacation_id, State.RECEIVED, State.ROLLED_BACK, "test: done")
        for session in sessions:
            session.cluster.shutdown()


def _manager_metric(replica: Service, name: str) -> float:
    text = httpx.get(f"{replica.url}/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == name)


@pytest.mark.integration
def test_two_replicas_configured_by_flags_alone_ingest_each_upload_once(
        structured, zone_session, tmp_path):
    """The service's structured zone reaches its ingests from its flags, with nothing in the
    environment; two replicas over one keyspace and landing root start each upload once."""
    add_tenant(tmp_path / "tenants.json", "arkea")
    flags = ["--cassandra-hosts", structured["CRE_CASSANDRA_HOSTS"],
             "--keyspace", structured["CRE_CASSANDRA_KEYSPACE"],
             "--cassandra-consistency", "ONE", "--parallelism", "1"]
    if "CRE_CASSANDRA_USERNAME" in structured:
        flags += ["--cassandra-username", structured["CRE_CASSANDRA_USERNAME"],
                  "--cassandra-password", structured["CRE_CASSANDRA_PASSWORD"]]
    since = datetime.datetime.now(datetime.UTC)
    replicas = [Service(tmp_path, {}, *flags) for _ in range(2)]  # no CRE_CASSANDRA_*
    try:
        inbox = tmp_path / "client-input-dir"
        for slot in (1, 2):
            generate_vacation(inbox, "2026-07-05", slot, 300, 4, seed=90 + slot)
        write_archive(inbox, MEMBER_CASES["RECON_COUNT_MISMATCH"](valid_members(tmp_path)))
        fetch = run_cre("fetchdata", "-u", "arkea", "-d", str(inbox), "--server",
                        replicas[0].url, env={"CRE_PASSWORD": PASSWORDS["arkea"]})
        assert fetch.code == 0, fetch.stdout + fetch.stderr

        def statuses() -> dict[str, str]:
            with replicas[1].client("arkea") as client:
                return {u["vacation_id"]: u["status"] for u in client.get("/v1/uploads").json()}

        def logs() -> list[str]:
            return [replica.log.read_text()[-3000:] for replica in replicas]

        final = wait_until(statuses, lambda found: set(found.values()) == {
            "DELIVERED", "REJECTED"} and len(found) == 3, timeout=120, interval=1, detail=logs)
        assert final == {"BAF_20260705_01": "DELIVERED", "BAF_20260705_02": "DELIVERED",
                         "BAF_20261122_03": "REJECTED"}, logs()
        time.sleep(5)  # a few more ticks of both managers: nothing is started again
        assert sum(_manager_metric(r, "cre_ingest_manager_starts_total")
                   for r in replicas) == 3
        assert sum(_manager_metric(r, "cre_ingest_manager_failures_total")
                   for r in replicas) == 0
    finally:
        for replica in replicas:
            replica.kill()
    ledger = Ledger(zone_session)
    for vacation_id in final:
        assert ledger.get(vacation_id).delivered_at is not None
        claims = [item.message for item in ledger.history(vacation_id)
                  if item.message.startswith("claimed")]
        assert len(claims) == 1, claims
    starts = collections.Counter(
        event["object"] for event in events_since(zone_session, "arkea", since)
        if event["action"] == "ingest.start")
    assert starts == dict.fromkeys(final, 1)
