"""Versioned CQL migrations: parsed, applied once, and guarded against edits."""

from __future__ import annotations

import hashlib

import pytest
from helpers import config_of, run_cre

from pipelines.schema_migrations import (
    DEFAULT_REPLICATION,
    chosen_replication,
    migrate,
    migrations,
    replication,
    replication_problem,
    replication_spec,
    same_replication,
    statements,
)


def test_replication_specs():
    assert replication("SimpleStrategy:1") == {"class": "SimpleStrategy",
                                               "replication_factor": 1}
    assert replication("NetworkTopologyStrategy:dc1=3,dc2=2") == {
        "class": "NetworkTopologyStrategy", "dc1": 3, "dc2": 2}
    for bad in ("SimpleStrategy", "SimpleStrategy:x", "NetworkTopologyStrategy:dc1",
                "LocalStrategy:1"):
        with pytest.raises(ValueError, match="replication"):
            replication(bad)


def test_a_keyspace_replication_map_as_a_spec():
    """system_schema.keyspaces' map (the class in full, factors as text) -> the spec, and back."""
    simple = {"class": "org.apache.cassandra.locator.SimpleStrategy", "replication_factor": "3"}
    assert replication_spec(simple) == "SimpleStrategy:3"
    topology = {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
                "dc2": "2", "dc1": "3"}
    assert replication_spec(topology) == "NetworkTopologyStrategy:dc1=3,dc2=2"
    assert replication_spec({"class": "NetworkTopologyStrategy", "dc1": 3}) == \
        "NetworkTopologyStrategy:dc1=3"  # the driver's short names and ints too
    for spec in ("SimpleStrategy:1", "NetworkTopologyStrategy:dc1=3,dc2=2"):
        rendered = {key: str(value) for key, value in replication(spec).items()}
        assert replication_spec(rendered) == spec
        assert same_replication(spec, rendered)
    assert same_replication("NetworkTopologyStrategy:dc2=2,dc1=3", topology)
    assert not same_replication("NetworkTopologyStrategy:dc1=3", topology)
    assert not same_replication("SimpleStrategy:3", topology)
    for unsaid in ({"class": "org.apache.cassandra.locator.LocalStrategy"},
                   {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
                    "dc1": "3/1"},  # transient replication
                   {"class": "org.apache.cassandra.locator.NetworkTopologyStrategy"}, {}):
        with pytest.raises(ValueError, match="no spec"):
            replication_spec(unsaid)
        assert not same_replication("SimpleStrategy:1", unsaid)


def test_a_restore_takes_the_replication_given_else_the_backups_else_the_default():
    assert chosen_replication("SimpleStrategy:2", "NetworkTopologyStrategy:dc1=3") == (
        "SimpleStrategy:2", "given")
    assert chosen_replication(None, "NetworkTopologyStrategy:dc1=3") == (
        "NetworkTopologyStrategy:dc1=3", "backup")
    assert chosen_replication(None, None) == (DEFAULT_REPLICATION, "default")  # an older backup
    assert chosen_replication("", None) == (DEFAULT_REPLICATION, "default")
    for asked, recorded in (("SimpleStrategy", None), (None, "dc1=3")):
        with pytest.raises(ValueError, match="replication"):
            chosen_replication(asked, recorded)


def test_a_replication_the_cluster_cannot_hold():
    three = {"dc1": 3}
    assert replication_problem("NetworkTopologyStrategy:dc1=3", three) is None
    assert replication_problem("NetworkTopologyStrategy:dc1=1", three) is None
    assert replication_problem("NetworkTopologyStrategy:dc1=4", three) == \
        "4 replicas in data centre dc1, which has 3 nodes"
    assert replication_problem("NetworkTopologyStrategy:dc1=3,dc2=3", three) == \
        "the cluster has no data centre dc2 (it has dc1)"
    assert replication_problem("SimpleStrategy:3", three) is None
    assert replication_problem("SimpleStrategy:4", three) == \
        "4 replicas in the cluster, which has 3 nodes"
    two = {"dc1": 2, "dc2": 1}
    assert replication_problem("SimpleStrategy:3", two) is None  # SimpleStrategy ignores DCs
    assert replication_problem("NetworkTopologyStrategy:dc1=2,dc2=2", two) == \
        "2 replicas in data centre dc2, which has 1 node"
    assert replication_problem("NetworkTopologyStrategy:dc1=3,dc2=2", two) == \
        "3 replicas in data centre dc1, which has 2 nodes; 2 replicas in data centre dc2, " \
        "which has 1 node"
    assert replication_problem("SimpleStrategy:1", {"datacenter1": 1}) is None


def test_statements_drop_comments_and_split():
    text = "-- a table; with a semicolon in a comment\nCREATE TABLE a (k int PRIMARY KEY);\n\n" \
           "CREATE INDEX i ON a (k) USING 'sai';\n"
    assert statements(text) == ["CREATE TABLE a (k int PRIMARY KEY)",
                                "CREATE INDEX i ON a (k) USING 'sai'"]


# what keyspaces in service recorded when they applied each migration: an edit, even of a
# comment, makes cre refuse them (add a new migration instead)
_RELEASED = {
    1: "167fd2fc8b430a3a897edc2b9f813afa9dc6f06e55520825a3f38c943a2c3e05",
    2: "428d3cd186ca1beb98bb70698492fd955ca4f08e703ec2f1c1af2a370743cd03",
    3: "cace4ee65fd8b21545cd8c721f4037860794651f4756fdb385825c2df2522512",
    4: "290bf86596fd499018536f88d5ccea1045d88e4e99cb034ebaabd993fbf0fba8",
    5: "388979ffcb000547c9d0a165ac3d3a1c64c5931f51a218796ea34151ed4dbe8b",
    6: "0e6833c01c05728df9ed094594eb5333b2190352df9f00ce4d94debee6f2b6ac",
    7: "f6d2707addc4f721997d4c6e03f270e45967ea2b6812e162254d685b043a1771",
    8: "e11b4630e90799881fd4a9b7996ec447b56d3f04c710c6f65634ab7baa553e5f",
}


def test_released_migrations_are_never_edited():
    checksums = {version: hashlib.sha256(text.encode()).hexdigest()
                 for version, _, text in migrations()}
    assert {version: checksums[version] for version in _RELEASED} == _RELEASED


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
