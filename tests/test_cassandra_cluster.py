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

import datetime
import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from cassandra import ConsistencyLevel, OperationTimedOut, ReadTimeout
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, ExecutionProfile
from cassandra.cluster import Cluster as DriverCluster
from cassandra.policies import WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement, ValueSequence, tuple_factory
from helpers import REPLICATION, cluster_keyspace, run_cre, sstable_writer_of, start_cre, wait_until
from vacations import break_currencies, data_records, day_positions, write_archive

from io_connectors.cassandra_client import CassandraConfig, retry_transient
from pipelines.ledger import IN_PROGRESS, Ledger, State
from pipelines.local.cassandra_cluster import DATACENTER, Cluster
from pipelines.local.cassandra_server import DEFAULT_PASSWORD, DEFAULT_USER
from pipelines.local.generator import generate_vacation, read_members
from pipelines.schema_migrations import keyspace_replication
from transforms.structured_rows import DAY_BUCKETS

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

@pytest.fixture(scope="module")
def env(cluster):
    return cluster_keyspace(cluster, "cluster")


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


@pytest.mark.campaign
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


@pytest.mark.campaign
@pytest.mark.parametrize("mode", ["cql", "bulk"])
def test_two_nodes_killed_mid_load_then_recovered(cluster, tmp_path, mode):
    """Two replicas of three lost mid-load: more than LOCAL_QUORUM allows, in either mode. The
    run fails plainly (CQL: writes that could not be written; bulk: streams to the dead nodes,
    or no quorum for a step's session), nothing of the vacation is served, and once the nodes
    are back ``cre recover`` loads and delivers it whole."""
    env = {**cluster_keyspace(cluster, f"recovered_{mode}"),  # cre recover takes up its keyspace
           "CRE_LOAD_MODE": mode}  # the ingest's and the recovery's
    vacation, records = "BAF_20261021_01", 50_000 if mode == "cql" else 120_000
    archive = generate_vacation(tmp_path, "2026-10-21", 1, records, 10, seed=82)
    zones = tmp_path / "zones"
    load = start_cre("ingest", "--input", str(archive), "--zones-root", str(zones), env=env)
    if mode == "cql":
        _loading(env, vacation)
    else:  # its writer runs: every SSTable streams at the close, after the kill
        wait_until(lambda: load.poll() is not None or sstable_writer_of(load),
                   timeout=180, interval=0.2, what="the ingest's SSTable writer")
    assert load.poll() is None, f"the load ended before the kill: exit {load.poll()}"
    cluster.kill(2)
    cluster.kill(3)
    _, stderr = load.communicate(timeout=900)
    assert load.returncode == 1, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]  # the log above it has Beam's traceback
    assert last.startswith("cre ingest: error:"), last
    # bulk: the streams to the dead nodes fail, or a step that opens its session after the
    # kill finds no quorum for the keyspace first
    assert any(reason in last for reason in (
        ("could not be written",) if mode == "cql" else
        ("failed to [127.0.0.", "cannot use Cassandra"))), last

    cluster.start()
    session = _session(env)
    row = Ledger(session).get(vacation)
    assert row.state in (State.LANDED, State.FAILED)  # left for recovery
    assert vacation not in Ledger(session).visible()  # nothing served of it
    recover = run_cre("recover", "--json", "--zones-root", str(zones), env=env)
    assert recover.code == 0, recover.stderr[-3000:]
    steps = {step["vacation_id"]: step for step in json.loads(recover.stdout.splitlines()[-1])}
    assert steps[vacation]["result"].startswith(f"ACCEPTED: {records + 10} loaded"), steps
    assert _count(session, "cre_event_versions", vacation) == (records, records)
    assert _count(session, "cre_events_by_account", vacation) == (records, records)
    assert Ledger(session).get(vacation).state == State.DELIVERED
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


@pytest.mark.campaign
def test_rolling_restart_under_queries_and_a_load(cluster, env, tmp_path):
    first = generate_vacation(tmp_path / "a", "2026-10-23", 1, 2000, 10, seed=84)
    loaded = run_cre("ingest", "--input", str(first), "--zones-root", str(tmp_path / "z"),
                     "--no-deliver", env=env)
    assert loaded.code == 0, loaded.stderr[-3000:]
    account = next(row[1] for member, raw in read_members(first).items()
                   if member.startswith("CRE_") for row in data_records(raw))
    # CQL mode: its writes go on through each restart (_written_after); a bulk load with a
    # node down is test_node_killed_mid_bulk_load_completes_at_quorum_then_repair_catches_it_up
    load = start_cre("ingest", "--input", str(generate_vacation(
        tmp_path / "b", "2026-10-23", 2, 300_000, 10, seed=85)), "--zones-root",
        str(tmp_path / "z"), "--no-deliver", "--load-mode", "cql", env=env)
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


def _cre_rows(archive: Path) -> list[list[str]]:
    """The archive's CRE records: cre_id, account_id, event_type, event_ts, value_date, amount,
    currency, counterparty_iban, label."""
    return [row for member, raw in read_members(archive).items() if member.startswith("CRE_")
            for row in data_records(raw)]


def _busiest(rows: list[list[str]], count: int = 2) -> list[str]:
    """The accounts with the most events (the first seen wins a tie)."""
    return [account for account, _ in Counter(row[1] for row in rows).most_common(count)]


def _query(env: dict, *args: str):
    run = run_cre("query", *args, "--json", env=env)
    assert run.code == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


def _answers(env: dict, vacation_id: str, accounts: list[str], rows: list[list[str]]) -> dict:
    """What ``cre query events`` and ``cre query position`` serve of the vacation for each
    account (its events; its position on its first event's value date), as their JSON."""
    answers = {}
    for account in accounts:
        events = _query(env, "events", "--account", account, "--from", "2025-01-01",
                        "--to", "2027-12-31")
        day = next(row[4] for row in rows if row[1] == account)
        answers[account] = {
            "events": [event for event in events if event["vacation_id"] == vacation_id],
            "position": _query(env, "position", "--account", account, "--date", day)}
    return answers


def _assert_served_as_archived(answers: dict, vacation_id: str, rows: list[list[str]]) -> None:
    """The answers hold each account's loaded events of the archive, every field as archived,
    and the position that the archive's events of that day add up to."""
    for account, served in answers.items():
        mine = [row for row in rows if row[1] == account]
        assert sorted((event["cre_id"], event["vacation_id"], event["account_id"],
                       event["value_date"], event["event_type"],
                       datetime.datetime.fromisoformat(event["event_ts"]),
                       Decimal(event["amount"]), event["currency"], event["counterparty_iban"],
                       event["label"]) for event in served["events"]) == sorted(
            (cre_id, vacation_id, account_id, value_date, event_type,
             datetime.datetime.fromisoformat(event_ts), Decimal(amount), currency, iban or None,
             label or None)
            for cre_id, account_id, event_type, event_ts, value_date, amount, currency, iban,
            label in mine), account
        day = mine[0][4]
        expected = day_positions(mine, day)
        assert {p["currency"]: [p["event_count"], Decimal(p["debit_total"]),
                                Decimal(p["credit_total"])] for p in served["position"]} == \
            expected, account


def _any_row(env: dict, vacation_id: str) -> bool:
    """Whether a row of the vacation is in cre_event_versions (its index, at LOCAL_QUORUM)."""
    session = _session(env)
    try:
        return retry_transient()(session.execute)(
            "SELECT cre_id FROM cre_event_versions WHERE vacation_id = %s LIMIT 1",
            (vacation_id,), timeout=60).one() is not None
    finally:
        session.cluster.shutdown()


def _zone_rows(session, vacation_id: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of the vacation in the structured zone's five tables, every column (as text:
    a decimal's scale, a timestamp's precision count), sorted; the two big tables scanned whole
    (at LOCAL_QUORUM, page by page), the others read by their partitions or index."""
    execute = retry_transient()(session.execute)
    found = {}
    for table in ("cre_event_versions", "cre_events_by_account"):
        statement = SimpleStatement(f"SELECT * FROM {table}", fetch_size=2000)
        rows, paging_state = [], None
        while True:
            page = execute(statement, paging_state=paging_state, timeout=120)
            column = page.column_names.index("vacation_id")
            rows += [row for row in page.current_rows if row[column] == vacation_id]
            paging_state = page.paging_state
            if paging_state is None:
                break
        found[table] = rows
    found["gesparam_versions"] = list(execute(
        "SELECT * FROM gesparam_versions WHERE vacation_id = %s", (vacation_id,), timeout=60))
    found["cre_days_by_vacation"] = list(execute(
        "SELECT * FROM cre_days_by_vacation WHERE vacation_id = %s AND bucket IN %s",
        (vacation_id, ValueSequence(range(DAY_BUCKETS))), timeout=60))
    found["rejects_by_vacation"] = list(execute(
        "SELECT * FROM rejects_by_vacation WHERE vacation_id = %s", (vacation_id,), timeout=60))
    return {table: sorted(tuple(map(str, row)) for row in rows) for table, rows in found.items()}


def _held_by(cluster: Cluster, env: dict, node: int, table: str,
             vacation_id: str) -> tuple[int, int]:
    """A vacation's rows in ``table`` as node ``node`` holds them: read at ONE through it alone
    (a coordinator that is a replica reads its own copy), so that neither another replica's
    copy nor a read repair makes up for what it lacks."""
    address = f"127.0.0.{node}"
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([address]),
                               consistency_level=ConsistencyLevel.ONE, request_timeout=120,
                               row_factory=tuple_factory)
    driver = DriverCluster([address], port=cluster.native_port, protocol_version=5,
                           auth_provider=PlainTextAuthProvider(DEFAULT_USER, DEFAULT_PASSWORD),
                           execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        return _count(driver.connect(env["CRE_CASSANDRA_KEYSPACE"]), table, vacation_id,
                      ConsistencyLevel.ONE)
    finally:
        driver.shutdown()


@pytest.fixture(scope="module")
def bulk_env(cluster):
    """The keyspace (replication 3) of the bulk loads, whose row counts scan it whole: no other
    test's rows in it."""
    return cluster_keyspace(cluster, "bulk")


@pytest.mark.campaign
def test_bulk_and_cql_loads_serve_the_same_answers(cluster, bulk_env, tmp_path):
    """One archive (with rejects) loaded with --load-mode cql, rolled back, replayed with
    --load-mode bulk, rolled back again: the bulk load writes the CQL load's rows, every column
    of the five tables, onto every replica, serves the same answers (the archive's), is newer
    than the first rollback's tombstones and older than the second's."""
    vacation, records = "BAF_20261105_01", 10_000
    members, broken = break_currencies(read_members(generate_vacation(
        tmp_path / "generated", "2026-11-05", 1, records, 20, seed=88)), every=500)
    archive = write_archive(tmp_path, members, vacation)
    rows = [row for row in _cre_rows(archive) if row[6] != "ZZZ"]  # the loaded ones
    assert broken > 0 and len(rows) == records - broken
    accounts = _busiest(rows)
    cql = run_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z"),
                  "--no-deliver", "--load-mode", "cql", env=bulk_env)
    assert cql.code == 0 and cql.summary["status"] == "ACCEPTED_WITH_REJECTS", \
        cql.stderr[-3000:]
    assert f"{vacation}: structured zone in cql mode" in cql.stderr
    by_cql = _answers(bulk_env, vacation, accounts, rows)
    _assert_served_as_archived(by_cql, vacation, rows)
    session = _session(bulk_env)
    written_by_cql = _zone_rows(session, vacation)
    session.cluster.shutdown()
    assert {table: len(found) for table, found in written_by_cql.items()} == {
        "cre_event_versions": len(rows), "cre_events_by_account": len(rows),
        "gesparam_versions": 20, "cre_days_by_vacation": len({(row[1], row[4]) for row in rows}),
        "rejects_by_vacation": broken}

    rolled_back = run_cre("rollback", vacation, env=bulk_env)
    assert rolled_back.code == 0, rolled_back.stderr[-3000:]
    assert not _any_row(bulk_env, vacation)
    bulk = run_cre("replay", vacation, "--no-deliver", "--load-mode", "bulk", env=bulk_env)
    assert bulk.code == 0, bulk.stderr[-3000:]
    assert f"{vacation}: structured zone in bulk mode" in bulk.stderr
    assert "io_connectors.cassandra_bulk: cre_event_versions: " in bulk.stderr  # streamed
    assert {key: bulk.summary[key] for key in ("status", "totals", "reject_codes")} == \
        {key: cql.summary[key] for key in ("status", "totals", "reject_codes")}
    assert _answers(bulk_env, vacation, accounts, rows) == by_cql
    session = _session(bulk_env)
    assert _zone_rows(session, vacation) == written_by_cql
    session.cluster.shutdown()
    for node in cluster.numbers:  # each replica got the SSTables, no repair needed
        for table in ("cre_event_versions", "cre_events_by_account"):
            assert _held_by(cluster, bulk_env, node, table, vacation) == (len(rows), len(rows))

    again = run_cre("rollback", vacation, env=bulk_env)  # a DELETE removes the bulk cells
    assert again.code == 0, again.stderr[-3000:]
    session = _session(bulk_env)
    assert _zone_rows(session, vacation) == {table: [] for table in written_by_cql}
    session.cluster.shutdown()


@pytest.mark.campaign
def test_node_killed_mid_bulk_load_completes_at_quorum_then_repair_catches_it_up(
        cluster, bulk_env, tmp_path):
    """--load-mode bulk with node 3 killed mid-load (replication 3, LOCAL_QUORUM): as a CQL
    write at LOCAL_QUORUM would, the load completes on the two live replicas of every range,
    says which node missed SSTables and that it needs a repair, and serves every row; with node
    3 back and repaired, node 3 holds every row too.

    Killed once the ingest's writer JVM runs: the rows are read, sorted and spilled, and every
    SSTable streams at the close, after the kill."""
    vacation, records = "BAF_20261025_01", 120_000
    archive = generate_vacation(tmp_path, "2026-10-25", 1, records, 10, seed=87)
    rows = _cre_rows(archive)
    accounts = _busiest(rows)
    load = start_cre("ingest", "--input", str(archive), "--zones-root", str(tmp_path / "z"),
                     "--no-deliver", "--load-mode", "bulk", env=bulk_env)
    wait_until(lambda: load.poll() is not None or sstable_writer_of(load),
               timeout=180, interval=0.2, what="the ingest's SSTable writer")
    cluster.kill(3)
    session = _session(bulk_env)
    assert load.poll() is None and Ledger(session).get(vacation).state in IN_PROGRESS, \
        f"the load ended before the kill: exit {load.poll()}"
    session.cluster.shutdown()
    stdout, stderr = load.communicate(timeout=600)
    assert load.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["status"] == "ACCEPTED"
    assert "127.0.0.3 missed SSTables of this load, which completed at LOCAL_QUORUM" in stderr
    assert f"nodetool repair {bulk_env['CRE_CASSANDRA_KEYSPACE']}" in stderr

    session = _session(bulk_env)  # node 3 still down: a quorum of two answers
    assert _count(session, "cre_event_versions", vacation) == (records, records)
    assert _count(session, "cre_events_by_account", vacation) == (records, records)
    assert Ledger(session).get(vacation).state == State.LOADED
    session.cluster.shutdown()
    _assert_served_as_archived(_answers(bulk_env, vacation, accounts, rows), vacation, rows)

    cluster.start(3)
    cluster.nodetool("repair", "--full", bulk_env["CRE_CASSANDRA_KEYSPACE"])
    for table in ("cre_event_versions", "cre_events_by_account"):
        assert _held_by(cluster, bulk_env, 3, table, vacation) == (records, records)


@pytest.mark.campaign
def test_backup_and_restore_on_the_cluster(cluster, tmp_path):
    env = cluster_keyspace(cluster, "backed_up")
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
