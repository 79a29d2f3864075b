"""Backup, verify, restore and landing retention, against a real Cassandra.

Two vacations are ingested once for the module (one delivered, one with a reject left LOADED),
backed up, and restored into a new keyspace that must answer every query of spec 3 as the
original does.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import apache_beam as beam
import fastavro
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from helpers import BUCKET, config_of, run_cre
from helpers.cql_types import COLUMNS, ROWS, create_table, expected, insert, read_back
from vacations import data_records, refresh, valid_members, with_bad_currency, write_archive

from io_connectors.cassandra import ReadFromCassandra, WriteToCassandra
from pipelines import backup
from pipelines.ledger import Ledger
from pipelines.local.generator import generate_vacation, read_members
from pipelines.schema_migrations import (
    keyspace_replication,
    migrations,
    nodes_per_datacenter,
    replication_spec,
)
from pipelines.structured_zone import StructuredZone

DELIVERED, LOADED = "BAF_20261201_01", "BAF_20261201_02"


def _through_avro(table: pa.Table, schema: backup.TableSchema) -> pa.Table:
    """A batch of rows as the backup stores it (an Avro file) and the restore loads it back."""
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema.avro_schema()),
                    backup.avro_records(table, schema), codec="deflate")
    buffer.seek(0)
    return backup.arrow_table(list(fastavro.reader(buffer)), schema)


@pytest.mark.integration
def test_every_cql_type_round_trips_through_avro(structured, zone_session):
    """Rows of every CQL type, nulls included, inserted by the driver, read by
    ReadFromCassandra, stored in Avro and loaded back as the backup and the restore do, written
    by WriteToCassandra: the driver's own SELECT reads back what it inserted."""
    schema = backup.TableSchema("every_type", (
        backup.Column("id", "int", "partition_key"),
        *(backup.Column(name, cql_type, "regular") for name, cql_type in COLUMNS.items())), "")
    tables = ("every_type", "every_type_restored")
    for table in tables:
        create_table(zone_session, table)
    try:
        insert(zone_session, "every_type")
        assert read_back(zone_session, "every_type") == expected()
        config = config_of(structured)
        with TestPipeline() as pipeline:
            result = (pipeline
                      | ReadFromCassandra(config, "every_type", schema.column_names)
                      | beam.Map(_through_avro, schema)
                      | WriteToCassandra(config, "every_type_restored", schema.column_names))
            assert_that(result.written | beam.CombineGlobally(sum), equal_to([len(ROWS)]),
                        label="Written")
            assert_that(result.failed, equal_to([]), label="NoneFailed")
        assert read_back(zone_session, "every_type_restored") == expected()
    finally:  # the module's backup holds the migrated tables only
        for table in tables:
            zone_session.execute(f"DROP TABLE IF EXISTS {table}", timeout=120)


def test_unmapped_type_is_refused():
    with pytest.raises(backup.BackupError, match="list<text>"):
        backup.avro_kind("list<text>")


def _ingest(structured, archive, zones, *extra):
    run = run_cre("ingest", "--input", str(archive), "--zones-root", str(zones), *extra,
                  env=structured)
    assert run.code == 0, run.stderr[-3000:]
    return run


def _json(env, *args, codes=(0,)):
    run = run_cre(*args, "--json", env=env)
    assert run.code in codes, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def loaded(structured, tmp_path_factory):
    """Two vacations ingested: one DELIVERED, one with a reject left LOADED."""
    tmp = tmp_path_factory.mktemp("backup")
    zones = tmp / "zones"
    first = generate_vacation(tmp / "a", "2026-12-01", 1, 3000, 40, seed=61)
    members = valid_members(tmp / "b", business_date="2026-12-01", slot=2, seed=62)
    with_bad_currency(members)  # a BAD_CURRENCY reject
    second = write_archive(tmp, refresh(members), LOADED)
    assert _ingest(structured, first, zones).summary["status"] == "ACCEPTED"
    run = _ingest(structured, second, zones, "--no-deliver")
    assert run.summary["status"] == "ACCEPTED_WITH_REJECTS"
    return {"tmp": tmp, "zones": zones, "archives": (first, second),
            "cre": [row for archive in (first, second)
                    for member, raw in read_members(archive).items()
                    if member.startswith("CRE_") for row in data_records(raw)],
            "gesparam": [row for member, raw in read_members(first).items()
                         if member.startswith("GESPARAM_") for row in data_records(raw)]}


@pytest.fixture(scope="module")
def backed_up(structured, loaded):
    started = time.monotonic()
    manifest = _json(structured, "backup", "--to", str(loaded["tmp"] / "backups"))
    manifest["seconds"] = time.monotonic() - started
    return manifest


@pytest.fixture(scope="module")
def restored(cassandra_env, backed_up):
    env = {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": f"restored_{uuid.uuid4().hex[:8]}",
           "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    started = time.monotonic()
    result = _json(env, "restore", "--from", backed_up["path"])
    result["seconds"] = time.monotonic() - started
    yield env, result
    session = config_of(env).connect()
    session.execute(f"DROP KEYSPACE IF EXISTS {env['CRE_CASSANDRA_KEYSPACE']}", timeout=120)
    session.cluster.shutdown()


def _rows(session, table: str) -> int:
    return sum(1 for _ in session.execute(f"SELECT * FROM {table}", timeout=120))


@pytest.mark.integration
def test_backup_holds_every_table(structured, zone_session, backed_up):
    tables = {name for (name,) in zone_session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        (structured["CRE_CASSANDRA_KEYSPACE"],))}
    assert set(backed_up["tables"]) == tables - {"schema_migrations"}
    for name, entry in backed_up["tables"].items():
        assert entry["rows"] == _rows(zone_session, name), name
        assert entry["rows"] == sum(file["rows"] for file in entry["files"])
        assert entry["create"].startswith(f"CREATE TABLE {structured['CRE_CASSANDRA_KEYSPACE']}.")
    assert backed_up["tables"]["cre_event_versions"]["rows"] == 3000 + 49  # one of 50 rejected
    assert backed_up["consistent"] is True
    assert {v: row["state"] for v, row in backed_up["ledger"]["vacations"].items()} == {
        DELIVERED: "DELIVERED", LOADED: "LOADED"}
    assert [m["version"] for m in backed_up["migrations"]] == [
        version for version, _, _ in migrations()]
    assert backed_up["replication"] == replication_spec(
        keyspace_replication(zone_session, structured["CRE_CASSANDRA_KEYSPACE"]))
    print(f"\nbackup: {backed_up['rows']} rows in {backed_up['seconds']:.1f} s")


@pytest.mark.integration
def test_restored_keyspace_answers_as_the_original(structured, loaded, backed_up, restored):
    env, result = restored
    assert result["rows"] == {name: entry["rows"]
                              for name, entry in backed_up["tables"].items()}
    # no --replication: the source keyspace's, as the manifest recorded it
    assert (result["replication"], result["replication_from"]) == (
        backed_up["replication"], "backup")
    print(f"\nrestore: {sum(result['rows'].values())} rows in {result['seconds']:.1f} s")

    accounts = sorted({row[1] for row in loaded["cre"]})[:5]
    queries = [("status", DELIVERED), ("status", LOADED), ("status", "--date", "2026-12-01"),
               ("rejects", LOADED)]
    for account in accounts:
        queries.append(("query", "events", "--account", account, "--from", "2025-01-01",
                        "--to", "2027-12-31"))
        day = next(row[4] for row in loaded["cre"] if row[1] == account)
        queries.append(("query", "position", "--account", account, "--date", day))
    for table_code, key, _, _, valid_from, _ in loaded["gesparam"][:5]:
        queries.append(("query", "param", "--table", table_code, "--key", key,
                        "--on", valid_from))
    for query in queries:
        original = _json(structured, *query, codes=(0, 3))
        assert original, query
        assert _json(env, *query, codes=(0, 3)) == original, query

    source = config_of(structured).connect(structured["CRE_CASSANDRA_KEYSPACE"])
    target = config_of(env).connect(env["CRE_CASSANDRA_KEYSPACE"])
    try:
        for vacation in (DELIVERED, LOADED):  # query 6: what a vacation wrote
            assert StructuredZone(target).written(vacation) == \
                StructuredZone(source).written(vacation)
        assert StructuredZone(target).written(LOADED)["rejects_by_vacation"] == 1
        assert Ledger(target).history(DELIVERED) == Ledger(source).history(DELIVERED)
        assert keyspace_replication(target, env["CRE_CASSANDRA_KEYSPACE"]) == \
            keyspace_replication(source, structured["CRE_CASSANDRA_KEYSPACE"])
    finally:
        source.cluster.shutdown()
        target.cluster.shutdown()


@pytest.mark.integration
def test_damaged_backup_is_named_and_refused(cassandra_env, backed_up, tmp_path):
    assert run_cre("backup", "verify", "--from", backed_up["path"]).code == 0
    copy = tmp_path / "copy"
    shutil.copytree(backed_up["path"], copy)
    entry = backed_up["tables"]["cre_events_by_account"]["files"][0]
    damaged = copy / entry["path"]
    data = bytearray(damaged.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 8):
        data[offset] ^= 0xFF
    damaged.write_bytes(bytes(data))

    verify = run_cre("backup", "verify", "--from", str(copy))
    assert verify.code == 1
    assert str(damaged) in verify.stderr
    assert sum(str(copy) in line for line in verify.stderr.splitlines()) == 1

    keyspace = f"refused_{uuid.uuid4().hex[:8]}"
    env = {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": keyspace,
           "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    refused = run_cre("restore", "--from", str(copy), env=env)
    assert refused.code == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("cre restore: error: ")
    assert str(damaged) in refused.stderr and "Traceback" not in refused.stderr
    session = config_of(env).connect()
    try:
        assert keyspace not in session.cluster.metadata.keyspaces  # refused before migrating
    finally:
        session.cluster.shutdown()


def _recording(backed_up: dict, copy: Path, replication: str | None) -> Path:
    """A copy of the backup whose manifest records ``replication`` (None: none, as a backup
    made before it was recorded)."""
    shutil.copytree(backed_up["path"], copy)
    manifest = json.loads((copy / backup.MANIFEST).read_text())
    manifest.pop("replication")
    if replication:
        manifest["replication"] = replication
    (copy / backup.MANIFEST).write_text(json.dumps(manifest))
    return copy


@pytest.mark.integration
def test_restore_takes_the_backups_replication_if_the_cluster_holds_it(cassandra_env, backed_up,
                                                                       tmp_path):
    keyspace = f"replicated_{uuid.uuid4().hex[:8]}"
    env = {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": keyspace,
           "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    session = config_of(env).connect()
    (dc,) = nodes_per_datacenter(session.cluster)  # one node
    for given, refused in (
            ((), f"replication NetworkTopologyStrategy:{dc}=2 (the backup's) does not fit the "
                 f"cluster: 2 replicas in data centre {dc}, which has 1 node"),
            (("--replication", "NetworkTopologyStrategy:nowhere=1"),
             "replication NetworkTopologyStrategy:nowhere=1 (given) does not fit the cluster: "
             f"the cluster has no data centre nowhere (it has {dc})")):
        folder = _recording(backed_up, tmp_path / f"two{len(given)}",
                            f"NetworkTopologyStrategy:{dc}=2")
        run = run_cre("restore", "--from", str(folder), *given, env=env)
        assert run.code == 1 and "Traceback" not in run.stderr
        assert run.stderr.strip().splitlines()[-1].startswith(f"cre restore: error: {refused}")
        assert keyspace_replication(session, keyspace) is None  # refused before creating it
    try:
        done = _json(env, "restore", "--from", str(_recording(
            backed_up, tmp_path / "topology", f"NetworkTopologyStrategy:{dc}=1")))
        assert (done["replication"], done["replication_from"]) == (
            f"NetworkTopologyStrategy:{dc}=1", "backup")
        assert replication_spec(keyspace_replication(session, keyspace)) == \
            f"NetworkTopologyStrategy:{dc}=1"
        # a backup that records none takes the default, which the keyspace now there has not
        older = run_cre("restore", "--from", str(_recording(backed_up, tmp_path / "older", None)),
                        env=env)
        assert older.code == 1
        assert older.stderr.strip().splitlines()[-1] == (
            f"cre restore: error: {keyspace} exists with replication NetworkTopologyStrategy:"
            f"{dc}=1, not SimpleStrategy:1 (the default: the backup records none): "
            f"drop it, or restore with --replication NetworkTopologyStrategy:{dc}=1")
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        session.cluster.shutdown()


@pytest.mark.integration
def test_backup_while_a_vacation_loads(structured, zone_session, loaded, backed_up):
    ledger = Ledger(zone_session)
    vacation = "BAF_20261202_01"
    ledger.claim(vacation, datetime.date(2026, 12, 2), 1, "c" * 64,
                 datetime.datetime.now(datetime.UTC), f"landing/2026-12-02/{vacation}")
    try:
        refused = run_cre("backup", "--to", str(loaded["tmp"] / "busy"), env=structured)
        assert refused.code == 1
        assert vacation in refused.stderr.strip().splitlines()[-1]
        forced = _json(structured, "backup", "--to", str(loaded["tmp"] / "busy"), "--force")
        assert forced["consistent"] is False
        assert forced["ledger"]["in_progress"] == [vacation]
    finally:
        for table in ("vacations", "vacation_history"):
            zone_session.execute(f"DELETE FROM {table} WHERE vacation_id = %s", (vacation,))


@pytest.mark.integration
def test_landing_prune_removes_only_old_finished_vacations(structured, loaded):
    zones = loaded["zones"]
    landed = {path.name.removesuffix(".tar.bz2"): path
              for path in (zones / "landing").rglob("*.tar.bz2")}
    assert set(landed) == {DELIVERED, LOADED}
    stranger = zones / "landing" / "2026-12-03" / "BAF_20261203_01" / ("d" * 64)
    stranger.mkdir(parents=True)
    shutil.copy(landed[DELIVERED], stranger / "BAF_20261203_01.tar.bz2")
    old = time.time() - 40 * 86400
    for path in (*landed.values(), stranger / "BAF_20261203_01.tar.bz2"):
        os.utime(path, (old, old))
    args = ("landing", "prune", "--older-than", "30", "--zones-root", str(zones))

    young = _json(structured, "landing", "prune", "--older-than", "60", "--zones-root",
                  str(zones))
    assert not any(decision["remove"] for decision in young["decisions"])
    dry = run_cre(*args, "--dry-run", env=structured)
    assert dry.code == 0 and f"would remove  {landed[DELIVERED]}" in dry.stdout
    assert all(path.exists() for path in landed.values())

    pruned = _json(structured, *args)
    reasons = {Path(d["path"]).name: (d["remove"], d["reason"]) for d in pruned["decisions"]}
    assert reasons[f"{DELIVERED}.tar.bz2"][0] is True
    assert reasons[f"{LOADED}.tar.bz2"] == (
        False, "LOADED: only DELIVERED or REJECTED vacations are pruned")
    assert reasons["BAF_20261203_01.tar.bz2"] == (False, "not in the ledger")
    assert not landed[DELIVERED].parent.exists()
    assert landed[LOADED].exists() and Path(f"{landed[LOADED]}.sha256").exists()


@pytest.mark.integration
def test_backup_to_gcs(structured, loaded, gcs):
    host, bucket = gcs
    env = {**structured, "STORAGE_EMULATOR_HOST": host}
    manifest = _json(env, "backup", "--to", f"gs://{BUCKET}/backups", "--project", "test")
    assert manifest["path"].startswith(f"gs://{BUCKET}/backups/")
    names = {blob.name for blob in bucket.list_blobs(prefix="backups/")}
    prefix = manifest["path"].removeprefix(f"gs://{BUCKET}/")
    assert {f"{prefix}/{file['path']}" for entry in manifest["tables"].values()
            for file in entry["files"]} | {f"{prefix}/manifest.json"} == names
    verify = _json(env, "backup", "verify", "--from", manifest["path"])
    assert verify["damaged"] == [] and verify["rows"] == manifest["rows"]
