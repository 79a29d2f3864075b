"""The bulk writer: its replica groups and arguments (unit), and SSTables written by the JVM and
streamed into a real Cassandra, read back by the driver (integration)."""

from __future__ import annotations

import dataclasses

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from cassandra.util import Date
from helpers import config_of
from helpers.cql_types import COLUMNS, ROWS, create_table, expected, read_back

from io_connectors import cql_values
from io_connectors.cassandra_bulk import WriteToCassandraBulk, replica_groups, tolerated_failures
from io_connectors.cassandra_client import CassandraConfig

_CONFIG = CassandraConfig(("127.0.0.1",), "cre")


@dataclasses.dataclass(frozen=True)
class _Token:
    value: int


class _Ring:
    """A token map of three nodes: each range's replicas, by the token ending it."""

    def __init__(self, replicas: dict[int, tuple[str, ...]]):
        self.ring = [_Token(value) for value in sorted(replicas)]
        self._replicas = replicas

    def get_replicas(self, keyspace: str, token: _Token) -> list:
        assert keyspace == "cre"
        return [type("Host", (), {"endpoint": name})() for name in self._replicas[token.value]]


def test_replica_groups_put_ranges_of_one_replica_set_together():
    ring = _Ring({-100: ("a", "b"), -5: ("b", "c"), 7: ("b", "a"), 90: ("c", "a")})
    tokens, owners = replica_groups(ring, "cre")
    assert tokens == [-100, -5, 7, 90]
    assert owners == [0, 1, 0, 2]  # {a, b} twice, in either order: one group


def test_replica_groups_of_a_fully_replicated_ring_are_one():
    ring = _Ring({token: ("a", "b", "c") for token in (-9, 0, 9)})
    assert replica_groups(ring, "cre") == ([-9, 0, 9], [0, 0, 0])


@pytest.mark.parametrize("consistency, replicas, tolerated", [
    ("LOCAL_QUORUM", 3, 1), ("QUORUM", 5, 2), ("QUORUM", 1, 0), ("ONE", 3, 2),
    ("LOCAL_ONE", 1, 0), ("TWO", 3, 1), ("ALL", 3, 0), ("EACH_QUORUM", 3, 1)])
def test_a_load_tolerates_the_replicas_a_cql_write_would(consistency, replicas, tolerated):
    assert tolerated_failures(consistency, replicas) == tolerated


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="invalid table"):
        WriteToCassandraBulk(_CONFIG, "x; DROP TABLE y", 1)
    with pytest.raises(ValueError, match="write_timestamp"):
        WriteToCassandraBulk(_CONFIG, "t", 0)
    with pytest.raises(ValueError, match="buffer_mib"):
        WriteToCassandraBulk(_CONFIG, "t", 1, buffer_mib=0)
    with pytest.raises(ValueError, match="TLS"):
        WriteToCassandraBulk(dataclasses.replace(_CONFIG, tls_ca_file="ca.pem"), "t", 1)
    data = WriteToCassandraBulk(_CONFIG, "t", 1_700_000_000_000_000).display_data()
    assert data["write_timestamp"] == 1_700_000_000_000_000 and data["table"] == "t"


# the Arrow type the structured zone's rows carry for each scalar CQL type
_ARROW = {"text": pa.string(), "varchar": pa.string(), "ascii": pa.string(),
          "int": pa.int32(), "smallint": pa.int16(), "tinyint": pa.int8(), "bigint": pa.int64(),
          "boolean": pa.bool_(), "float": pa.float32(), "double": pa.float64(),
          "date": pa.date32(), "timestamp": pa.timestamp("us", "UTC"), "uuid": pa.uuid(),
          "timeuuid": pa.uuid(), "decimal": pa.decimal128(18, 2)}
_TIMESTAMP = 1_765_000_000_123_456  # microseconds: the one write time of the test's rows


@pytest.fixture(scope="module")
def bulk(structured, zone_session):
    create_table(zone_session, "every_type_bulk")
    zone_session.execute("CREATE TABLE IF NOT EXISTS bulk_probe (k text, m int, c text, "
                         "v bigint, PRIMARY KEY ((k, m), c)) WITH CLUSTERING ORDER BY (c DESC)",
                         timeout=60)
    return config_of(structured)


@pytest.mark.integration
def test_every_scalar_type_is_read_back_by_the_driver_as_written(bulk, zone_session):
    scalars = {name: cql_type for name, cql_type in COLUMNS.items() if cql_type in _ARROW}
    table = pa.table({"id": pa.array([row[0] for row in ROWS], pa.int32()), **{
        name: pa.array([value.date() if isinstance(value, Date) else value
                        for value in (row[index] for row in ROWS)], _ARROW[cql_type])
        for index, (name, cql_type) in enumerate(COLUMNS.items(), 1) if name in scalars}})
    with TestPipeline() as pipeline:
        written = (pipeline | beam.Create([table])
                   | WriteToCassandraBulk(bulk, "every_type_bulk", _TIMESTAMP, ["id", *scalars]))
        assert_that(written | beam.CombineGlobally(sum), equal_to([len(ROWS)]))
    # every scalar a CQL serializer writes, the bulk writer writes too
    assert set(_ARROW) >= set(cql_values.SERIALIZERS)
    wanted = {key: value for key, value in expected().items() if key[1] in _ARROW}
    got = {key: value for key, value in read_back(zone_session, "every_type_bulk").items()
           if key[1] in _ARROW}
    assert got == wanted


def _probe_rows(first: int, count: int) -> pa.Table:
    return pa.table({"k": [f"k{index % 50}" for index in range(first, first + count)],
                     "m": pa.array([index % 3 for index in range(first, first + count)],
                                   pa.int32()),
                     "c": [f"c{index:06d}" for index in range(first, first + count)],
                     "v": pa.array(range(first, first + count), pa.int64())})


@pytest.mark.integration
def test_rows_of_many_chunks_stream_at_one_write_time_and_again_as_the_same_cells(
        bulk, zone_session):
    """Chunks of 1 MiB: several sorted SSTables per bundle (a partition's rows in several),
    each streamed. A second write of the same rows (a retry) leaves the same cells: one
    version of each, the same write time."""
    batches = [_probe_rows(start, 5000) for start in range(0, 40_000, 5000)]
    for _ in range(2):
        with TestPipeline() as pipeline:
            written = (pipeline | beam.Create(batches)
                       | WriteToCassandraBulk(bulk, "bulk_probe", _TIMESTAMP, buffer_mib=1))
            assert_that(written | beam.CombineGlobally(sum), equal_to([40_000]))
    rows = list(zone_session.execute("SELECT k, m, c, v, writetime(v) FROM bulk_probe",
                                     timeout=60))
    assert sorted((k, m, c, v) for k, m, c, v, _ in rows) == sorted(
        (row["k"], row["m"], row["c"], row["v"])
        for batch in batches for row in batch.to_pylist())
    assert {when for *_, when in rows} == {_TIMESTAMP}
    partition = zone_session.execute("SELECT c FROM bulk_probe WHERE k = 'k7' AND m = 1").all()
    assert len(partition) == sum(1 for index in range(40_000) if index % 50 == 7 and index % 3 == 1)
