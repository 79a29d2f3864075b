"""The zones a test reads behind ``cre``: the structured zone's keyspace and the GCS bucket."""

from __future__ import annotations

import uuid
from pathlib import Path

from helpers.cre import run_cre
from io_connectors.cassandra_client import CassandraConfig
from pipelines.ledger import Ledger, State
from pipelines.local.cassandra_cluster import DATACENTER, Cluster
from pipelines.local.cassandra_server import DEFAULT_PASSWORD, DEFAULT_USER

BUCKET = "mmg-dataplatform"  # the GCS emulator's one bucket (conftest's gcs fixture)
REPLICATION = f"NetworkTopologyStrategy:{DATACENTER}=3"


def config_of(env: dict) -> CassandraConfig:
    return CassandraConfig.from_hosts(
        env["CRE_CASSANDRA_HOSTS"], env.get("CRE_CASSANDRA_KEYSPACE", "cre"),
        username=env.get("CRE_CASSANDRA_USERNAME"), password=env.get("CRE_CASSANDRA_PASSWORD"),
        consistency="ONE")


def abandon(session, vacation_id: str) -> None:
    """Leaves the vacation as its run does when it dies mid-load and its lease runs out: LANDED,
    by that run's own transition, through a ledger whose leases are over as soon as given."""
    row = Ledger(session).get(vacation_id)
    Ledger(session, row.run_id, lease_seconds=-1).advance(
        vacation_id, row.state, State.LANDED, "test: its run died")


def cluster_keyspace(cluster: Cluster, prefix: str) -> dict:
    """The environment of a new keyspace on a three-node cluster, migrated with replication 3,
    read and written at LOCAL_QUORUM."""
    env = {"CRE_CASSANDRA_HOSTS": cluster.hosts, "CRE_CASSANDRA_USERNAME": DEFAULT_USER,
           "CRE_CASSANDRA_PASSWORD": DEFAULT_PASSWORD, "CRE_CASSANDRA_LOCAL_DC": DATACENTER,
           "CRE_CASSANDRA_CONSISTENCY": "LOCAL_QUORUM",
           "CRE_CASSANDRA_KEYSPACE": f"{prefix}_{uuid.uuid4().hex[:8]}"}
    migrated = run_cre("db", "migrate", "--replication", REPLICATION, env=env)
    assert migrated.code == 0, migrated.stderr
    return env


def incoming_files(root: Path) -> list[Path] | None:
    """The partial uploads (``_incoming-*``) under ``root``; None when a folder vanished while
    they were looked for (the service removes a discarded upload's empty folders), to look
    again."""
    try:
        return list(root.rglob("_incoming-*"))
    except FileNotFoundError:
        return None
