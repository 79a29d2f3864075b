"""The zones a test reads behind ``cre``: the structured zone's keyspace and the GCS bucket."""

from __future__ import annotations

from io_connectors.cassandra_client import CassandraConfig
from pipelines.ledger import Ledger, State

BUCKET = "mmg-dataplatform"  # the GCS emulator's one bucket (conftest's gcs fixture)


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
