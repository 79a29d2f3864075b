"""The Cassandra connector: wire values, the sink with its dead letters, the source."""

from __future__ import annotations

import datetime
import time
from decimal import Decimal

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from cassandra import (
    ConsistencyLevel,
    InvalidRequest,
    ReadTimeout,
    Unauthorized,
    WriteTimeout,
    WriteType,
    cqltypes,
)
from cassandra.cluster import NoHostAvailable
from cassandra.util import Date
from helpers import config_of
from helpers.cql_types import COLUMNS, ROWS, create_table, expected, read_back

from io_connectors import cql_values
from io_connectors.cassandra import (
    MAX_TOKEN,
    MIN_TOKEN,
    ReadAllFromCassandra,
    ReadFromCassandra,
    WriteToCassandra,
    _Request,
    _retry_delay,
    _retry_policy,
    token_ranges,
)
from io_connectors.cassandra_client import retry_transient

UTC = datetime.UTC
SAMPLES = [
    ("text", cqltypes.UTF8Type, pa.array(["é;\"x", "", None, "plain"])),
    ("int", cqltypes.Int32Type, pa.array([0, -1, None, 2**31 - 1], pa.int32())),
    ("bigint", cqltypes.LongType, pa.array([0, -(2**63), None, 2**63 - 1], pa.int64())),
    ("double", cqltypes.DoubleType, pa.array([0.5, -1e300, None, 3.0])),
    ("boolean", cqltypes.BooleanType, pa.array([True, False, None, True])),
    ("date", cqltypes.SimpleDateType,
     pa.array([datetime.date(2026, 11, 22), datetime.date(1900, 1, 1), None,
               datetime.date(1970, 1, 1)])),
    ("timestamp", cqltypes.DateType,
     pa.array([datetime.datetime(2026, 11, 22, 9, 15, 0, 123456, UTC),
               datetime.datetime(1960, 1, 1, tzinfo=UTC), None,
               datetime.datetime(1970, 1, 1, tzinfo=UTC)], pa.timestamp("us", "UTC"))),
    ("decimal", cqltypes.DecimalType,
     pa.array([Decimal("0.00"), Decimal("-0.01"), None, Decimal("9999999999999999.99"),
               Decimal("-128.00"), Decimal("1.27"), Decimal("-1.28"), Decimal("327.67")],
              pa.decimal128(18, 2))),
]


@pytest.mark.parametrize("cql_type, driver_type, values", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_column_serializers_match_the_driver(cql_type, driver_type, values):
    serialized = cql_values.SERIALIZERS[cql_type](pa.chunked_array([values]))
    expected = [None if value is None else driver_type.serialize(value, 5)
                for value in values.to_pylist()]
    if cql_type == "timestamp":  # the driver truncates to milliseconds too
        expected = [None if value is None else driver_type.serialize(
            value.replace(microsecond=value.microsecond // 1000 * 1000), 5)
            for value in values.to_pylist()]
    assert serialized == expected


def test_serializers_handle_sliced_chunks():
    values = pa.chunked_array([pa.array([Decimal("1.00"), Decimal("-2.50")], pa.decimal128(18, 2)),
                               pa.array([Decimal("3.25"), Decimal("4.00"), Decimal("-5.00")],
                                        pa.decimal128(18, 2)).slice(1)])
    assert cql_values.SERIALIZERS["decimal"](values) == [
        cqltypes.DecimalType.serialize(Decimal(text), 5)
        for text in ("1.00", "-2.50", "4.00", "-5.00")]


def test_token_ranges_cover_the_ring_once():
    ranges = token_ranges([-(2**40), 0, 2**50], splits_per_range=3)
    assert ranges[0][0] == MIN_TOKEN and ranges[-1][1] == MAX_TOKEN
    assert all(end == start for (_, end), (start, _) in zip(ranges, ranges[1:]))
    assert all(start < end for start, end in ranges)
    assert len(ranges) == 12


@pytest.fixture(scope="module")
def probe(structured, zone_session):
    zone_session.execute("CREATE TABLE IF NOT EXISTS connector_probe (k text, c int, d date, "
                         "t timestamp, amount decimal, flag boolean, note text, "
                         "PRIMARY KEY ((k), c))", timeout=60)
    return config_of(structured)


def _rows(first: int, count: int, keys: int = 7) -> pa.Table:
    return pa.table({
        "k": pa.array([f"key-{index % keys}" for index in range(first, first + count)]),
        "c": pa.array(range(first, first + count), pa.int32()),
        "d": pa.array([datetime.date(2026, 1, 1) + datetime.timedelta(days=index)
                       for index in range(first, first + count)]),
        "t": pa.array([datetime.datetime(2026, 1, 1, tzinfo=UTC)
                       + datetime.timedelta(seconds=index)
                       for index in range(first, first + count)], pa.timestamp("us", "UTC")),
        "amount": pa.array([Decimal(index) / 100 for index in range(first, first + count)],
                           pa.decimal128(18, 2)),
        "flag": pa.array([index % 2 == 0 for index in range(first, first + count)]),
        "note": pa.array([None if index % 3 else f"n{index}"
                          for index in range(first, first + count)], pa.string()),
    })


@pytest.mark.integration
def test_write_then_read_round_trip(probe, zone_session):
    batches = [_rows(0, 500), _rows(500, 700)]
    with TestPipeline() as pipeline:
        result = (pipeline
                  | "Batches" >> beam.Create(batches)
                  | "Write" >> WriteToCassandra(probe, "connector_probe", batch_rows=16,
                                                max_in_flight=8))
        assert_that(result.written | beam.CombineGlobally(sum), equal_to([1200]), label="All")
        assert_that(result.failed, equal_to([]), label="NoneFailed")
    expected = [tuple(row.values()) for batch in batches for row in batch.to_pylist()]
    with TestPipeline() as pipeline:
        read = (pipeline
                | "Read" >> ReadFromCassandra(probe, "connector_probe",
                                              ["k", "c", "d", "t", "amount", "flag", "note"],
                                              splits_per_range=2, page_rows=100)
                | "Rows" >> beam.FlatMap(lambda table: [tuple(row.values())
                                                        for row in table.to_pylist()]))
        assert_that(read, equal_to([
            (k, c, d, t.replace(tzinfo=None), amount, flag, note)
            for k, c, d, t, amount, flag, note in expected]))


# the Arrow type the writer gets for each CQL type (those the ingest's and the restore's tables
# hold): a value of every type written by WriteToCassandra and read back by the driver itself
_ARROW = {"text": pa.string(), "varchar": pa.string(), "ascii": pa.string(),
          "int": pa.int32(), "smallint": pa.int16(), "tinyint": pa.int8(), "bigint": pa.int64(),
          "boolean": pa.bool_(), "float": pa.float32(), "double": pa.float64(),
          "date": pa.date32(), "timestamp": pa.timestamp("us", "UTC"), "uuid": pa.uuid(),
          "timeuuid": pa.uuid(), "decimal": pa.decimal128(18, 2),
          "map<text, timestamp>": pa.map_(pa.string(), pa.timestamp("ms", "UTC")),
          "map<text, bigint>": pa.map_(pa.string(), pa.int64())}


@pytest.mark.integration
def test_every_cql_type_is_read_back_by_the_driver_as_written(probe, zone_session):
    create_table(zone_session, "every_type")
    table = pa.table({"id": pa.array([row[0] for row in ROWS], pa.int32()), **{
        name: pa.array([value.date() if isinstance(value, Date) else value
                        for value in (row[index] for row in ROWS)], _ARROW[cql_type])
        for index, (name, cql_type) in enumerate(COLUMNS.items(), 1)}})
    with TestPipeline() as pipeline:
        result = (pipeline | beam.Create([table])
                  | WriteToCassandra(probe, "every_type", batch_rows=1))
        assert_that(result.failed, equal_to([]))
    # every type a serializer writes has its samples
    assert set(_ARROW) == set(COLUMNS.values()) >= set(cql_values.SERIALIZERS)
    assert read_back(zone_session, "every_type") == expected()


@pytest.mark.integration
def test_keys_read_their_rows_and_in_column_reads_many_of_a_partition(probe):
    """One key per partition with the clustering values IN a list reads the rows the same
    per-row keys do, and only those."""
    with TestPipeline() as pipeline:
        (pipeline | "Batches" >> beam.Create([_rows(5000, 70)])
         | "Write" >> WriteToCassandra(probe, "connector_probe"))
    wanted = {"key-1": [5006, 5013, 5062], "key-3": [5001, 5002, 5008], "key-5": [4999]}
    expected = [("key-1", 5006), ("key-1", 5013), ("key-1", 5062), ("key-3", 5001),
                ("key-3", 5008)]
    with TestPipeline() as pipeline:
        keys = pipeline | "Keys" >> beam.Create([[(k, cs) for k, cs in wanted.items()]])
        by_list = (keys | "ReadIn" >> ReadAllFromCassandra(probe, "connector_probe", ("k",),
                                                             ("k", "c"), in_column="c")
                   | "InRows" >> beam.FlatMap(lambda t: list(zip(*t.to_pydict().values()))))
        by_row = (pipeline
                  | "RowKeys" >> beam.Create([[(k, c) for k, cs in wanted.items() for c in cs]])
                  | "ReadEach" >> ReadAllFromCassandra(probe, "connector_probe", ("k", "c"),
                                                       ("k", "c"))
                  | "EachRows" >> beam.FlatMap(lambda t: list(zip(*t.to_pydict().values()))))
        assert_that(by_list, equal_to(expected), label="In")
        assert_that(by_row, equal_to(expected), label="Each")


@pytest.mark.integration
def test_rows_the_server_refuses_come_out_as_dead_letters(probe):
    good = _rows(2000, 5)
    bad = pa.table({**{name: good[name].slice(0, 1) for name in good.column_names},
                    "k": pa.array([None], pa.string())})
    with TestPipeline() as pipeline:
        result = (pipeline
                  | "Batches" >> beam.Create([pa.concat_tables([good, bad])])
                  | "Write" >> WriteToCassandra(probe, "connector_probe", batch_rows=1))
        assert_that(result.written | beam.CombineGlobally(sum), equal_to([5]), label="Written")
        assert_that(result.failed | beam.Map(lambda failure: (
            failure.table, failure.rows.num_rows, failure.attempts, "null" in failure.error)),
            equal_to([("connector_probe", 1, 1, True)]), label="DeadLetters")


@pytest.mark.integration
def test_a_few_large_rows_among_small_ones_are_batched_by_their_own_size(probe, zone_session):
    """Rows of one partition each, most with one map entry, one in ten with 900 (36 KiB): by
    the average row, 64 rows a batch, and Cassandra refuses such a batch ("Batch too large",
    over 50 KiB across partitions); by each row's size, every row is written."""
    zone_session.execute("CREATE TABLE IF NOT EXISTS connector_maps (k text PRIMARY KEY, "
                         "m map<text, text>)", timeout=60)
    sizes = [900 if index % 10 == 0 else 1 for index in range(200)]
    table = pa.table({
        "k": pa.array([f"row-{index}" for index in range(len(sizes))]),
        "m": pa.array([[(f"{index:06d}-{entry:013d}", "x" * 20) for entry in range(size)]
                       for index, size in enumerate(sizes)], pa.map_(pa.string(), pa.string()))})
    with TestPipeline() as pipeline:
        result = (pipeline | beam.Create([table])
                  | WriteToCassandra(probe, "connector_maps"))
        assert_that(result.written | beam.CombineGlobally(sum), equal_to([200]), label="All")
        assert_that(result.failed | beam.Map(lambda failure: failure.error), equal_to([]),
                    label="NoneFailed")
    assert sorted(len(m) for _, m in zone_session.execute(
        "SELECT k, m FROM connector_maps")) == sorted(sizes)


@pytest.mark.integration
def test_arguments_are_checked(probe):
    with pytest.raises(ValueError, match="invalid table"):
        WriteToCassandra(probe, "x; DROP TABLE y")
    with pytest.raises(ValueError, match="positive"):
        WriteToCassandra(probe, "connector_probe", max_in_flight=0)
    with pytest.raises(ValueError, match="positive"):
        ReadFromCassandra(probe, "connector_probe", page_rows=0)


def _failed_request(error: Exception, attempts: int, first_sent_ago: float) -> _Request:
    request = _Request(statement=None, rows=[0])
    request.attempt = attempts
    request.first_sent_at = time.monotonic() - first_sent_ago
    request.error = error
    return request


def test_timeouts_are_retried_for_a_time_not_a_count():
    policy = _retry_policy(retry_seconds=120, backoff_seconds=0.2)
    timeout = WriteTimeout("slow replica", consistency=ConsistencyLevel.LOCAL_QUORUM,
                           required_responses=2, received_responses=1, write_type=WriteType.BATCH)
    first = _retry_delay(policy, _failed_request(timeout, attempts=1, first_sent_ago=0.1))
    assert 0.2 * 0.8 <= first <= 0.2 * 1.2
    # a node's restart: twenty attempts have timed out within the budget, still retried
    later = _retry_delay(policy, _failed_request(timeout, attempts=20, first_sent_ago=90))
    assert 10 * 0.8 <= later <= 10 * 1.2  # the backoff's ceiling
    assert _retry_delay(policy, _failed_request(timeout, attempts=3, first_sent_ago=121)) is None
    gone = NoHostAvailable("no host", {})
    assert _retry_delay(policy, _failed_request(gone, attempts=7, first_sent_ago=20))
    assert _retry_delay(policy, _failed_request(gone, attempts=8, first_sent_ago=25)) is None
    refused = InvalidRequest("no such column")
    assert _retry_delay(policy, _failed_request(refused, attempts=1, first_sent_ago=0)) is None


def _unauthorized(message: str) -> Unauthorized:
    """As the driver raises the server's answer."""
    return Unauthorized(f'Error from server: code=2100 [Unauthorized] message="{message}"')


# a node's own read of system_auth timed out: what a node just killed, not yet known down, costs
_LOOKUP_TIMED_OUT = _unauthorized(
    "Unable to perform authorization of super-user permission: Operation timed out - "
    "received only 1 responses.")


def test_a_timed_out_lookup_of_the_roles_rights_is_retried_a_missing_grant_is_not():
    policy = _retry_policy(retry_seconds=120, backoff_seconds=0.2)
    assert _retry_delay(policy, _failed_request(_LOOKUP_TIMED_OUT, attempts=1,
                                                first_sent_ago=0.1))
    denied = _unauthorized("User cre_reader has no MODIFY permission on <table cre.ledger>")
    assert _retry_delay(policy, _failed_request(denied, attempts=1, first_sent_ago=0)) is None

    answers = iter([_LOOKUP_TIMED_OUT, ["row"]])

    @retry_transient(attempts=2, max_wait=0)
    def read() -> list[str]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert read() == ["row"]

    @retry_transient(attempts=2, max_wait=0)
    def write() -> None:
        raise denied

    with pytest.raises(Unauthorized, match="no MODIFY permission"):
        write()


def test_a_load_s_reads_are_retried_for_a_time_not_a_count():
    """Through a node's restart, timeouts follow one another for longer than six attempts."""

    def restarting():
        timeouts = iter([ReadTimeout("restarting", consistency=ConsistencyLevel.LOCAL_QUORUM,
                                     required_responses=2, received_responses=1,
                                     data_retrieved=False)] * 10)

        def read() -> str:
            raise next(timeouts, None) or ValueError("answered")
        return read

    with pytest.raises(ReadTimeout):
        retry_transient(max_wait=0)(restarting())()  # six attempts
    with pytest.raises(ValueError, match="answered"):  # the eleventh: no transient error
        retry_transient(max_wait=0, seconds=60)(restarting())()
