"""The structured zone on a real three-node cluster (127.0.0.1-3, replication 3, LOCAL_QUORUM),
and the faults a cluster has: nodes killed with SIGKILL mid-load, a rolling restart, a restore.

One cluster serves the module, and one keyspace the fault tests: each loads vacations of its
own business date, counts its own rows, and leaves every node up for the next. The recovery and
the backup tests have keyspaces of their own (both act on a whole keyspace). None is dropped:
Cassandra 5.0.x can wedge a node's schema when a keyspace is dropped while hints or repair
streams still write to it ("Unknown CF" in its MigrationStage, after which every DDL times
out), and the cluster goes with the module anyway. The module's last test stops the whole
cluster with ``cre cassandra stop`` and starts it again over its data.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout
from cassandra.query import SimpleStatement
from helpers import free_port, run_cre, start_cre, wait_until
from vacations import data_records

from io_connectors.cassandra_client import CassandraConfig, retry_transient
from pipelines.ledger import IN_PROGRESS, Ledger, State
from pipelines.local.cassandra_cluster import DATACENTER, Cluster
from pipelines.local.cassandra_server import DEFAULT_PASSWORD, DEFAULT_USER
from pipelines.local.generator import generate_vacation, read_members
from pipelines.schema_migrations import keyspace_replication

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

REPLICATION = f"NetworkTopologyStrategy:{DATACENTER}=3"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), 3, free_port(), free_port(),
                      free_port())
    try:
        cluster.start()
        yield cluster
    finally:  # a start that failed halfway leaves nodes running too
        cluster.stop()


def _keyspace(cluster: Cluster, prefix: str) -> dict:
    """The environment of a new keyspace on the cluster, migrated with replication 3."""
    env = {"CRE_CASSANDRA_HOSTS": cluster.hosts, "CRE_CASSANDRA_USERNAME": DEFAULT_USER,
           "CRE_CASSANDRA_PASSWORD": DEFAULT_PASSWORD, "CRE_CASSANDRA_LOCAL_DC": DATACENTER,
           "CRE_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
           "CRE_CASSANDRA_KEYSPACE": f"{prefix}_{uuid.uuid4().hex[:8]}"}
    migrated = run_cre("db", "migrate", "--replication", REPLICATION, env=env)
    assert migrated.code == 0, migrated.stderr
    return env


@pytest.fixture(scope="module")
def env(cluster):
    return _keyspace(cluster, "cluster")


@pytest.fixture(autouse=True)
def every_node_up(cluster):
    """Whatever the test did, every node is up for the next."""
    yield
    cluster.start()


def _session(env: dict, keyspace: str | None = "", consistency: str = "LOCAL_QUORUM"):
    config = CassandraConfig.from_hosts(
        env["CRE_CASSANDRA_HOSTS"], env["CRE_CASSANDRA_KEYSPACE"], username=DEFAULT_USER,
        password=DEFAULT_PASSWORD, consistency=consistency, local_dc=DATACENTER)
    return config.connect(env["CRE_CASSANDRA_KEYSPACE"] if keyspace == "" else keyspace)


def _count(session, table: str, vacation_id: str,
           consistency: int = ConsistencyLevel.LOCAL_QUORUM) -> tuple[int, int]:
    """A vacation's rows in ``table`` and their distinct CRE ids, read at ``consistency``.

    A scan of the whole table, filtered here (an index query at ALL on a node just back timed
    out on the server), page by page, each page retried on a cluster's transient errors (a
    replica busy with hints or compactions times out a range read now and then).
    """
    statement = SimpleStatement(f"SELECT cre_id, vacation_id FROM {table}",
                                consistency_level=consistency, fetch_size=2000)
    read_page = retry_transient()(session.execute)
    keys, paging_state = [], None
    while True:
        page = read_page(statement, paging_state=paging_state, timeout=120)
        keys += [cre_id for cre_id, found in page.current_rows if found == vacation_id]
        paging_state = page.paging_state
        if paging_state is None:
            return len(keys), len(set(keys))


def _loading(env: dict, vacation_id: str) -> None:
    """Waits until the load's first rows are in the zone (one row, at ONE: the probe must not
    slow the load it waits for)."""
    session = _session(env, consistency="ONE")

    def started() -> bool:
        try:
            return session.execute("SELECT cre_id FROM cre_event_versions WHERE vacation_id = %s "
                                   "LIMIT 1", (vacation_id,), timeout=30).one() is not None
        except (ReadTimeout, OperationTimedOut):
            return False

    try:
        wait_until(started, timeout=180, interval=0.2, what=f"the first rows of {vacation_id}")
    finally:
        session.cluster.shutdown()


def _still_loading(env: dict, load: subprocess.Popen, vacation_id: str) -> float:
    """Just after a fault: fails unless the load is still on (its process running, its
    vacation LANDED or VALIDATED); the moment, for ``_written_after``."""
    moment = time.time()
    session = _session(env)
    try:
        state = Ledger(session).get(vacation_id).state
    finally:
        session.cluster.shutdown()
    assert load.poll() is None and state in IN_PROGRESS, \
        f"the load ended before the fault: exit {load.poll()}, {state}"
    return moment


def _written_after(session, vacation_id: str, moment: float) -> bool:
    """Whether a row of the vacation was written after ``moment`` (its write time: the
    driver's clock, this machine's)."""
    statement = SimpleStatement("SELECT WRITETIME(account_id) FROM cre_event_versions "
                                "WHERE vacation_id = %s", fetch_size=5000)
    read_page = retry_transient()(session.execute)
    paging_state = None
    while True:
        page = read_page(statement, (vacation_id,), paging_state=paging_state, timeout=120)
        if any(at / 1e6 > moment for (at,) in page.current_rows):
            return True
        paging_state = page.paging_state
        if paging_state is None:
            return False


def test_one_node_killed_mid_load(cluster, env, tmp_path):
    archive = generate_vacation(tmp_path, "2026-10-20", 1, 80_000, 10, seed=81)
    load = start_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z"),
                     "--no-deliver", env=env)
    _loading(env, "BAF_20261020_01")
    cluster.kill(3)
    killed_at = _still_loading(env, load, "BAF_20261020_01")
    stdout, stderr = load.communicate(timeout=600)
    assert load.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["status"] == "ACCEPTED"

    session = _session(env)  # node 3 still down: a quorum of two answers
    assert _count(session, "cre_event_versions", "BAF_20261020_01") == (80_000, 80_000)
    assert _count(session, "cre_events_by_account", "BAF_20261020_01") == (80_000, 80_000)
    assert _written_after(session, "BAF_20261020_01", killed_at)  # the kill hit the load
    session.cluster.shutdown()

    cluster.start(3)
    cluster.nodetool("repair", "--full", env["CRE_CASSANDRA_KEYSPACE"])
    session = _session(env)  # every replica, node 3 included, has every row
    assert _count(session, "cre_event_versions", "BAF_20261020_01", ConsistencyLevel.ALL) == \
        (80_000, 80_000)
    assert Ledger(session).get("BAF_20261020_01").state == State.LOADED
    session.cluster.shutdown()


def test_two_nodes_killed_mid_load_then_recovered(cluster, tmp_path):
    env = _keyspace(cluster, "recovered")  # cre recover takes up every vacation of its keyspace
    archive = generate_vacation(tmp_path, "2026-10-21", 1, 50_000, 10, seed=82)
    zones = tmp_path / "zones"
    load = start_cre("ingest", "--input", str(archive), "--zones-root", str(zones),
                     env=env)
    _loading(env, "BAF_20261021_01")
    cluster.kill(2)
    cluster.kill(3)
    _, stderr = load.communicate(timeout=900)
    assert load.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]  # the log above it has Beam's traceback
    assert last.startswith("cre ingest: error:") and "could not be written" in last, last

    cluster.start()
    session = _session(env)
    row = Ledger(session).get("BAF_20261021_01")
    assert row.state in (State.LANDED, State.FAILED)  # left for recovery
    assert "BAF_20261021_01" not in Ledger(session).visible()  # nothing served of it
    recover = run_cre("recover", "--json", "--zones-root", str(zones), env=env)
    assert recover.code == 0, recover.stderr[-3000:]
    steps = {step["vacation_id"]: step for step in json.loads(recover.stdout.splitlines()[-1])}
    assert steps["BAF_20261021_01"]["result"].startswith("ACCEPTED: 50010 loaded"), steps
    assert _count(session, "cre_event_versions", "BAF_20261021_01") == (50_000, 50_000)
    assert _count(session, "cre_events_by_account", "BAF_20261021_01") == (50_000, 50_000)
    assert Ledger(session).get("BAF_20261021_01").state == State.DELIVERED
    session.cluster.shutdown()


def test_concurrent_ingests_of_one_vacation_with_a_node_down(cluster, env, tmp_path):
    archive = generate_vacation(tmp_path, "2026-10-22", 1, 20_000, 10, seed=83)
    cluster.kill(2)
    runs = [start_cre("ingest", "--input", str(archive), "--zones-root",
                      str(tmp_path / f"zones{n}"), "--no-deliver", env=env) for n in (1, 2)]
    outcomes = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=600)
        outcomes.append((run.returncode, stdout, stderr))
    # the other run finds it done (DUPLICATE), or refuses while the first holds it
    statuses = sorted(json.loads(stdout.strip().splitlines()[-1])["status"] if code == 0
                      else "REFUSED" if code == 1 and "is being ingested by run" in stderr
                      else f"exit {code}: {stderr[-300:]}" for code, stdout, stderr in outcomes)
    assert statuses in (["ACCEPTED", "DUPLICATE"], ["ACCEPTED", "REFUSED"])
    session = _session(env)
    assert _count(session, "cre_event_versions", "BAF_20261022_01") == (20_000, 20_000)
    history = [item.state for item in Ledger(session).history("BAF_20261022_01")]
    assert history.count(State.LANDED) == 1  # claimed once
    session.cluster.shutdown()


def test_rolling_restart_under_queries_and_a_load(cluster, env, tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-10-23", 1, 2000, 10, seed=84)
    loaded = run_cre("ingest", "--input", str(first), "--zones-root", str(tmp_path / "z"),
                     "--no-deliver", env=env)
    assert loaded.code == 0, loaded.stderr[-3000:]
    account = next(row[1] for member, raw in read_members(first).items()
                   if member.startswith("CRE_") for row in data_records(raw))
    load = start_cre("ingest", "--input", str(generate_vacation(
        tmp_path / "b", "2026-10-23", 2, 300_000, 10, seed=85)), "--zones-root",
        str(tmp_path / "z"), "--no-deliver", env=env)
    _loading(env, "BAF_20261023_02")
    failures, answered, done = [], [], threading.Event()

    def query() -> None:
        while not done.is_set():
            for query in (("status", "BAF_20261023_01"),
                          ("query", "events", "--account", account, "--from", "2025-01-01",
                           "--to", "2027-12-31")):
                run = run_cre(*query, "--json", env=env)
                (answered if run.code == 0 and json.loads(run.stdout) else failures).append(
                    f"{query}: {run.stderr[-500:]}")

    querying = threading.Thread(target=query)
    querying.start()
    try:
        for number in cluster.numbers:  # one node at a time, as an operator would
            cluster.nodetool("drain", node=number)
            cluster.stop(number)
            if number == cluster.numbers[0]:  # the load goes on with a node down
                down_at = _still_loading(env, load, "BAF_20261023_02")
            cluster.start(number)
            wait_until(lambda: all(row["state"] == "up" for row in cluster.status()),
                       timeout=120, interval=2, what=f"every node up after node {number}")
    finally:
        stdout, stderr = load.communicate(timeout=900)
        done.set()
        querying.join()
    assert load.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["status"] == "ACCEPTED"
    assert not failures, failures[:3]
    assert len(answered) >= 3
    session = _session(env)
    assert _count(session, "cre_event_versions", "BAF_20261023_01") == (2000, 2000)
    assert _count(session, "cre_event_versions", "BAF_20261023_02") == (300_000, 300_000)
    assert _written_after(session, "BAF_20261023_02", down_at)
    session.cluster.shutdown()


def test_backup_and_restore_on_the_cluster(cluster, tmp_path):
    env = _keyspace(cluster, "backed_up")
    archive = generate_vacation(tmp_path, "2026-10-24", 1, 5000, 20, seed=86)
    assert run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z"),
                   env=env).code == 0
    backup = run_cre("backup", "--to", str(tmp_path / "backups"), "--json", env=env)
    assert backup.code == 0, backup.stderr[-3000:]
    manifest = json.loads(backup.stdout.splitlines()[-1])
    assert manifest["replication"] == REPLICATION
    restored = {**env, "CRE_CASSANDRA_KEYSPACE": f"restored_{uuid.uuid4().hex[:8]}"}
    too_many = run_cre("restore", "--from", manifest["path"], "--replication",
                       f"NetworkTopologyStrategy:{DATACENTER}=4", env=restored)
    assert too_many.code == 1 and "Traceback" not in too_many.stderr
    assert too_many.stderr.strip().splitlines()[-1].startswith(
        f"cre restore: error: replication NetworkTopologyStrategy:{DATACENTER}=4 (given) does "
        f"not fit the cluster: 4 replicas in data centre {DATACENTER}, which has 3 nodes")
    # the runbook's command line: the backup's replication, 3 on dc1
    restore = run_cre("restore", "--from", manifest["path"], "--json", env=restored)
    assert restore.code == 0, restore.stderr[-3000:]
    result = json.loads(restore.stdout.splitlines()[-1])
    assert (result["replication"], result["replication_from"]) == (REPLICATION, "backup")
    session = _session(env)
    assert keyspace_replication(session, restored["CRE_CASSANDRA_KEYSPACE"]) == {
        "class": "org.apache.cassandra.locator.NetworkTopologyStrategy", DATACENTER: "3"}
    account = session.execute("SELECT account_id FROM cre_events_by_account LIMIT 1").one()[0]
    session.cluster.shutdown()
    for query in (("status", "BAF_20261024_01"), ("status", "--date", "2026-10-24"),
                  ("query", "events", "--account", account, "--from", "2025-01-01",
                   "--to", "2027-12-31")):
        original = run_cre(*query, "--json", env=env)
        again = run_cre(*query, "--json", env=restored)
        assert original.code == again.code == 0, (original.stderr, again.stderr)
        assert json.loads(again.stdout) == json.loads(original.stdout), query


def test_cre_cassandra_finds_stops_and_restarts_its_cluster(cluster, env):
    """Last (it stops every node): ``cre cassandra status|stop|start`` given only the home act
    on the cluster ``start`` recorded there: each node listed, every JVM stopped and waited for,
    then the cluster started again over its data, its nodes together (a node's login reads
    ``system_auth`` at QUORUM, which no node alone answers)."""
    home = ("--home", str(cluster.home))
    session = _session(env)
    keys = tuple(f"restart-{number}" for number in range(50))
    insert = session.prepare("INSERT INTO cre_event_versions (cre_id, vacation_id) "
                             "VALUES (?, 'BAF_RESTART')")
    for key in keys:
        session.execute(insert, (key,))
    session.cluster.shutdown()
    pids = cluster.pids()
    status = run_cre("cassandra", "status", *home)
    assert status.code == 0, status.stdout + status.stderr
    assert [line.split()[:5] for line in status.stdout.splitlines()[1:]] == [
        [str(n), f"127.0.0.{n}", str(cluster.native_port), str(pids[n]), "up"]
        for n in cluster.numbers]

    stopped = run_cre("cassandra", "stop", *home)
    assert stopped.code == 0 and stopped.stdout == "Cassandra cluster stopped\n", stopped.stderr
    for pid in pids.values():  # gone, or a zombie of this process's (the fixture started it)
        assert not Path(f"/proc/{pid}/cmdline").exists() or \
            not Path(f"/proc/{pid}/cmdline").read_bytes(), pid
    assert not cluster.running() and not cluster.pids()
    down = run_cre("cassandra", "status", *home)
    assert down.code == 3 and [line.split() for line in down.stdout.splitlines()[1:]] == [
        [str(n), f"127.0.0.{n}", str(cluster.native_port), "down"] for n in cluster.numbers]

    started = run_cre("cassandra", "start", *home)
    assert started.code == 0, started.stderr[-3000:]
    assert started.stdout.startswith("Cassandra nodes 1, 2, 3 answer CQL")
    assert cluster.running() == [1, 2, 3]
    session = _session(env)
    select = session.prepare("SELECT cre_id FROM cre_event_versions WHERE cre_id IN ?")
    found = retry_transient()(session.execute)(select, (list(keys),), timeout=60)
    assert sorted(row[0] for row in found) == sorted(keys)
    session.cluster.shutdown()
