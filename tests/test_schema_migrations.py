"""Versioned CQL migrations: parsed, applied once, and guarded against edits."""

from __future__ import annotations

import hashlib

import pytest
from helpers import config_of, run_cre

from pipelines.schema_migrations import migrate, migrations, replication, statements


def test_replication_specs():
    assert replication("SimpleStrategy:1") == {"class": "SimpleStrategy",
                                               "replication_factor": 1}
    assert replication("NetworkTopologyStrategy:dc1=3,dc2=2") == {
        "class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2}
    for bad in ("SimpleStrategy", "SimpleStrategy:x", "NetworkTopologyStrategy:dc1",
                "LocalStrategy:1"):
        with pytest.raises(ValueError, match="replication"):
            replication(bad)


def test_statements_drop_comments_and_split():
    text = "-- a table; with a semicolon in a comment\nCREATE TABLE a (k int PRIMARY KEY);\n\n" \
           "CREATE INDEX i ON a (k) USING 'sai';\n"
    assert statements(text) == ["CREATE TABLE a (k int PRIMARY KEY)",
                                "CREATE INDEX i ON a (k) USING 'sai'"]


def test_migrations_are_numbered_in_order():
    versions = [version for version, _, _ in migrations()]
    assert versions == sorted(versions) and versions[0] == 1


@pytest.mark.integration
def test_applied_once_and_edits_refused(structured, zone_session):
    again = run_cre("db", "migrate", "--json", env=structured)
    assert again.code == 0 and '"applied": []' in again.stdout
    zone_session.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
    try:
        with pytest.raises(ValueError, match="changed after it was applied"):
            migrate(config_of(structured), "SimpleStrategy:1")
    finally:
        original = hashlib.sha256(migrations()[0][2].encode()).hexdigest()
        zone_session.execute("UPDATE schema_migrations SET checksum = %s WHERE version = 1",
                             (original,))


@pytest.mark.integration
def test_commands_refuse_a_keyspace_older_than_the_code(cassandra_env, tmp_path):
    env = {**cassandra_env, "CRE_CASSANDRA_KEYSPACE": "test_outdated",
           "CRE_CASSANDRA_CONSISTENCY": "ONE"}
    assert run_cre("db", "migrate", env=env).code == 0
    session = config_of(env).connect("test_outdated")
    try:
        latest = max(version for version, _, _ in migrations())
        session.execute("DELETE FROM schema_migrations WHERE version = %s", (latest,))
        name = next(f"{v:03d}_{n}" for v, n, _ in migrations() if v == latest)
        for args in (("status", "BAF_20261122_01"),
                     ("ingest", "--input", str(tmp_path / "BAF_20261122_01.tar.bz2"),
                      "--zones-root", str(tmp_path))):
            run = run_cre(*args, env=env)
            assert run.code == 1
            assert run.stderr.strip().splitlines()[-1].endswith(
                f"keyspace test_outdated lacks the migrations {name}: run cre db migrate")
        session.execute("DROP TABLE schema_migrations")
        assert "was never migrated" in run_cre("status", "BAF_20261122_01", env=env).stderr
    finally:
        session.execute("DROP KEYSPACE test_outdated", timeout=120)
        session.cluster.shutdown()
