"""Versioned CQL migrations: parsed, applied once, and guarded against edits."""

from __future__ import annotations

import hashlib

import pytest
from conftest import config_of, run_cre

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
