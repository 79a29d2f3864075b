"""Apache Cassandra sink and source for Beam batches of records (``pyarrow.Table``).

Beam's Python SDK has no Cassandra connector. This one is shaped like Beam's own
(``mongodbio``): public transforms that check their arguments, private DoFns that open the
shared session in ``setup()`` (and the sink flushes in ``finish_bundle()``), display data. The
client they share with the rest of the product (``CassandraConfig``, ``SESSIONS``, the driver's
errors sorted, retries) is ``io_connectors.cassandra_client``.

``WriteToCassandra`` serializes whole Arrow columns to wire values (``cql_values``), groups rows
by partition and replica into unlogged batches routed to that replica, keeps a bounded window of
asynchronous requests in flight, retries timeouts and overload with exponential backoff, and
sends what still fails to a dead-letter output with its error. Writes are plain INSERTs of
whole rows: idempotent, so retries and re-runs never duplicate anything.

``ReadFromCassandra`` splits the token ring into ranges read in parallel, page by page;
``ReadAllFromCassandra`` reads the rows of batches of keys.
"""

from __future__ import annotations

import collections
import heapq
import logging
import random
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import tenacity
from apache_beam.transforms.display import DisplayDataItem
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue
from cassandra import WriteTimeout
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import FallthroughRetryPolicy
from cassandra.query import BatchStatement, BatchType, BoundStatement
from cassandra.util import Date

from io_connectors import cql_values
from io_connectors.cassandra_client import (
    RESTART_SECONDS,
    SESSIONS,
    UNREACHABLE,
    CassandraConfig,
    CassandraUnavailable,
    describe_error,
    retry_if_retryable,
)

__all__ = ["FailedWrite", "ReadAllFromCassandra", "ReadFromCassandra", "WriteResult",
           "WriteToCassandra", "token_ranges"]

_LOG = logging.getLogger(__name__)

MIN_TOKEN, MAX_TOKEN = -(1 << 63), (1 << 63) - 1


class FailedWrite(NamedTuple):
    """Rows that could not be written, with the last error: the dead-letter output."""

    table: str
    rows: pa.Table
    error: str
    attempts: int


class WriteResult(NamedTuple):
    written: beam.PCollection  # the row count of each bundle, once it is durable
    failed: beam.PCollection  # FailedWrite


class _Request:
    __slots__ = ("statement", "rows", "attempt", "first_sent_at", "sent_at", "error")

    def __init__(self, statement: BatchStatement, rows: list[int]):
        self.statement = statement
        self.rows = rows
        self.attempt = 0
        self.first_sent_at = 0.0
        self.sent_at = 0.0
        self.error: Optional[Exception] = None


class _Window:
    """The asynchronous requests in flight, bounded; callbacks only record, never block."""

    def __init__(self, session, size: int):
        self._session = session
        self._slots = threading.Semaphore(size)
        self._size = size
        self._lock = threading.Lock()
        self.done: collections.deque[_Request] = collections.deque()
        self.latencies_ms: list[int] = []

    def send(self, request: _Request) -> None:
        self._slots.acquire()
        request.attempt += 1
        request.sent_at = time.monotonic()
        if request.attempt == 1:
            request.first_sent_at = request.sent_at
        future = self._session.execute_async(request.statement)
        future.add_callbacks(self._succeeded, self._failed,
                             callback_args=(request,), errback_args=(request,))

    def _succeeded(self, _result, request: _Request) -> None:
        request.error = None
        # the future holding the rows is cyclic garbage (see SESSIONS.acquire, in cassandra_client):
        # the rows are freed now, not at the next full collection (the batch is done with)
        request.statement.clear()
        self._finish(request)

    def _failed(self, error: Exception, request: _Request) -> None:
        request.error = error
        self._finish(request)

    def _finish(self, request: _Request) -> None:
        with self._lock:
            self.latencies_ms.append(int((time.monotonic() - request.sent_at) * 1000))
        self.done.append(request)
        self._slots.release()

    def drain(self) -> None:
        """Waits for every request in flight."""
        for _ in range(self._size):
            self._slots.acquire()
        for _ in range(self._size):
            self._slots.release()

    def take_latencies(self) -> list[int]:
        with self._lock:
            taken, self.latencies_ms = self.latencies_ms, []
        return taken


# a cluster that cannot be reached at all is not waited for as long as one answering slowly:
# the bundle fails after this many attempts (about 25 s at the default backoff)
_UNREACHABLE_ATTEMPTS = 8


def _unreachable_too_long(state: tenacity.RetryCallState) -> bool:
    return (isinstance(state.outcome.exception(), UNREACHABLE)
            and state.attempt_number >= _UNREACHABLE_ATTEMPTS)


def _retry_policy(retry_seconds: float, backoff_seconds: float) -> tenacity.Retrying:
    """Tenacity's rules for the sink's requests, applied by ``_retry_delay`` to many requests
    in flight. Timeouts and overloads are bounded in time, not attempts, so that a batch rides
    out a node's restart however many of its attempts time out meanwhile."""
    return tenacity.Retrying(retry=retry_if_retryable,
                             stop=tenacity.stop_after_delay(retry_seconds) | _unreachable_too_long,
                             wait=tenacity.wait_exponential(multiplier=backoff_seconds, max=10.0))


def _retry_delay(policy: tenacity.Retrying, request: _Request) -> Optional[float]:
    """The wait before sending a failed request again, jittered so that requests failed
    together are not resent together; None when its error is final or its time spent."""
    state = tenacity.RetryCallState(policy, fn=None, args=(), kwargs={})
    state.start_time = request.first_sent_at
    state.attempt_number = request.attempt
    state.set_exception((type(request.error), request.error, request.error.__traceback__))
    if policy.stop(state) or not policy.retry(state):
        return None
    return policy.wait(state) * random.uniform(0.8, 1.2)


def written_columns(session, keyspace: str, table: str,
                    columns: Optional[Sequence[str]]) -> tuple[Any, list[str]]:
    """The table's driver metadata and the columns a writer writes (by default all of them);
    ValueError for a column the table does not have."""
    metadata = session.cluster.metadata.keyspaces[keyspace].tables[table]
    names = list(columns or metadata.columns)
    unknown = sorted(set(names) - set(metadata.columns))
    if unknown:
        raise ValueError(f"{table} has no column {unknown}")
    return metadata, names


def insert_statement(keyspace: str, table: str, names: Sequence[str]) -> str:
    """The INSERT of ``names``, bound by position: the cells a written row makes."""
    return (f"INSERT INTO {keyspace}.{table} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))})")


class _WriteFn(beam.DoFn):
    """Opens the shared session and prepares the INSERT in ``setup()``; sends each batch's rows
    through the window of requests in flight; waits for them all, retries included, in
    ``finish_bundle()``, which emits the bundle's row count and its dead letters."""

    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]],
                 max_in_flight: int, batch_rows: int, batch_bytes: int, retry_seconds: float,
                 backoff_seconds: float):
        self._config = config
        self._table = table
        self._columns = columns
        self._max_in_flight = max_in_flight
        self._batch_rows = batch_rows
        self._batch_bytes = batch_bytes
        self._retry_seconds = retry_seconds
        self._backoff = backoff_seconds
        namespace = f"cassandra.{table}"
        self._rows_written = beam.metrics.Metrics.counter(namespace, "rows_written")
        self._retries = beam.metrics.Metrics.counter(namespace, "retries")
        self._failed_rows = beam.metrics.Metrics.counter(namespace, "failed_rows")
        self._latency = beam.metrics.Metrics.distribution(namespace, "write_latency_ms")

    def setup(self) -> None:
        self._retrying = _retry_policy(self._retry_seconds, self._backoff)
        self._session = SESSIONS.acquire(self._config)
        table, names = written_columns(self._session, self._config.keyspace, self._table,
                                       self._columns)
        self._types = [(name, table.columns[name].cql_type) for name in names]
        unsupported = [f"{n} {t}" for n, t in self._types if cql_values.serializer(t) is None]
        if unsupported:
            raise ValueError(f"cannot serialize {self._table} columns {unsupported}")
        missing = [c.name for c in table.partition_key if c.name not in names]
        if missing:
            raise ValueError(f"the columns written to {self._table} lack its key {missing}")
        self._partition = [names.index(column.name) for column in table.partition_key]
        self._insert = self._session.prepare(insert_statement(self._config.keyspace,
                                                              self._table, names))
        self._insert.is_idempotent = True

    def start_bundle(self) -> None:
        self._window = _Window(self._session, self._max_in_flight)
        self._retry_heap: list[tuple[float, int, _Request, pa.Table]] = []
        self._sent: dict[int, pa.Table] = {}
        self._written = 0
        self._failures: list[FailedWrite] = []

    def process(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        values = cql_values.serialize_columns(table, self._types)
        for request in self._batches(values):
            self._sent[id(request)] = table
            self._window.send(request)
            self._settle(block=False)

    def finish_bundle(self) -> Iterator[WindowedValue]:
        while True:
            self._window.drain()
            self._settle(block=False)
            if not self._retry_heap:
                break
            self._settle(block=True)
        self._report()
        window = GlobalWindow()
        yield WindowedValue(self._written, window.max_timestamp(), [window])
        for failure in self._failures:
            yield beam.pvalue.TaggedOutput(
                "failed", WindowedValue(failure, window.max_timestamp(), [window]))

    def teardown(self) -> None:
        SESSIONS.release(self._config)

    def _batches(self, values: list[cql_values.Values]) -> Iterator[_Request]:
        """Rows grouped by partition, then by replica, into routed unlogged batches.

        A batch holds at most ``batch_rows`` rows and ``batch_bytes`` of their wire values (a
        row larger goes alone): large batches strain the coordinator, and Cassandra refuses one
        over 50 KiB that spans partitions. Each row is measured, not the average one: a few
        large rows among small ones (a busy account's map of versions) would pass an average.
        """
        keys = cql_values.routing_keys([values[index] for index in self._partition])
        by_partition: dict[bytes, list[int]] = collections.defaultdict(list)
        for row, key in enumerate(keys):
            by_partition[key].append(row)
        metadata = self._session.cluster.metadata
        by_replica: dict[Any, list[tuple[bytes, list[int]]]] = collections.defaultdict(list)
        for key, rows in by_partition.items():
            replicas = metadata.get_replicas(self._config.keyspace, key)
            by_replica[replicas[0] if replicas else None].append((key, rows))
        rows_of = list(zip(*values))
        sizes = [sum(map(len, filter(None, row))) for row in rows_of]  # 0.55 s per 1M rows
        for groups in by_replica.values():
            batch: list[int] = []
            size, routing = 0, groups[0][0]
            for key, rows in groups:
                for row in rows:
                    if batch and (len(batch) >= self._batch_rows
                                  or size + sizes[row] > self._batch_bytes):
                        yield self._request(batch, routing, rows_of)
                        batch, size, routing = [], 0, key
                    batch.append(row)
                    size += sizes[row]
            if batch:
                yield self._request(batch, routing, rows_of)

    def _request(self, rows: list[int], routing_key: bytes, rows_of: list) -> _Request:
        statement = BatchStatement(BatchType.UNLOGGED,
                                   consistency_level=self._config.consistency_level)
        # routed first: add() then takes no routing key from the rows
        statement.routing_key = routing_key
        statement.keyspace = self._config.keyspace
        # the rows are already wire values: given to one bound statement as its values (what
        # bind() would have made of them), each added as it is; add() keeps the row, not the
        # bound statement, so one serves the whole batch
        bound = BoundStatement(self._insert)
        for row in rows:
            bound.values = rows_of[row]
            statement.add(bound)
        statement.is_idempotent = True
        statement.retry_policy = FallthroughRetryPolicy()  # retried here, with backoff
        return _Request(statement, rows)

    def _settle(self, block: bool) -> None:
        """Counts what finished, schedules retries, resends those that are due."""
        while self._window.done:
            request = self._window.done.popleft()
            table = self._sent.pop(id(request))
            if request.error is None:
                self._written += len(request.rows)
            elif (delay := _retry_delay(self._retrying, request)) is not None:
                heapq.heappush(self._retry_heap,
                               (time.monotonic() + delay, id(request), request, table))
            elif isinstance(request.error, UNREACHABLE):
                # the cluster is gone, not this write: fail the bundle, the run is retried whole
                raise CassandraUnavailable(
                    f"Cassandra at {self._config.describe()} unreachable after "
                    f"{request.attempt} attempts: {describe_error(request.error)}")
            else:
                self._dead_letter(request, table)
        now = time.monotonic()
        while self._retry_heap and (block or self._retry_heap[0][0] <= now):
            due, _, request, table = heapq.heappop(self._retry_heap)
            if due > now:
                time.sleep(due - now)
                now = time.monotonic()
            _LOG.warning("retrying %d rows into %s (attempt %d): %s", len(request.rows),
                         self._table, request.attempt + 1, describe_error(request.error))
            self._retries.inc()
            self._sent[id(request)] = table
            if isinstance(request.error, WriteTimeout):
                # the replica that coordinated it may have a stale view of a restarted peer
                # (CI: minutes of timeouts with no replica answering): let the load balancing
                # policy pick another coordinator
                request.statement.routing_key = None
            self._window.send(request)
            block = False

    def _dead_letter(self, request: _Request, table: pa.Table) -> None:
        error = describe_error(request.error)
        _LOG.error("%d rows could not be written to %s after %d attempts: %s",
                   len(request.rows), self._table, request.attempt, error)
        self._failures.append(FailedWrite(self._table, table.take(request.rows), error,
                                          request.attempt))
        self._failed_rows.inc(len(request.rows))

    def _report(self) -> None:
        self._rows_written.inc(self._written)
        for latency in self._window.take_latencies():
            self._latency.update(latency)


@beam.typehints.with_input_types(pa.Table)
class WriteToCassandra(beam.PTransform):
    """Writes batches of records (``pyarrow.Table``, columns named as the table's) to a table.

    Returns a ``WriteResult``: ``written`` (rows per bundle, emitted once they are durable at
    the configured consistency) and ``failed`` (``FailedWrite`` dead letters).

    Args:
      config: the cluster, keyspace, credentials and consistency to write with.
      table: the table, in ``config.keyspace``.
      columns: the columns written, which must include the partition key; by default all of
        the table's.
      max_in_flight: the asynchronous requests a worker keeps in flight before the next waits.
      batch_rows: the most rows of one unlogged batch (the rows of one replica).
      batch_bytes: the largest batch, by the wire size of its rows' values (a larger row goes
        alone): large batches strain the coordinator, and Cassandra refuses one over its
        batch_size_fail_threshold (50 KiB) that spans partitions. It counts each cell with its
        timestamp and TTL, a sixth more than the wire for a map of short texts: 32 KiB leaves
        room (48 KiB failed the 1M-row delivery's lineage).
      retry_seconds: how long a batch is sent again after timeouts or overloads before it
        becomes a dead letter: longer than a node's restart, so that a rolling restart loses
        nothing. A cluster that cannot be reached at all fails the bundle after 8 attempts.
      backoff_seconds: the wait before the first retry, doubled at each next one (at most
        10 s).
    """

    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]] = None,
                 *, max_in_flight: int = 128, batch_rows: int = 64, batch_bytes: int = 32 << 10,
                 retry_seconds: float = RESTART_SECONDS, backoff_seconds: float = 0.2):
        super().__init__()
        _check_config(config)
        _check_table(table)
        columns = _column_names(columns)
        _check_positive(max_in_flight=max_in_flight, batch_rows=batch_rows,
                        batch_bytes=batch_bytes)
        for name, value in (("retry_seconds", retry_seconds), ("backoff_seconds", backoff_seconds)):
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, not {value!r}")
        self._config = config
        self._table = table
        self._columns = columns
        self._settings = (max_in_flight, batch_rows, batch_bytes, retry_seconds, backoff_seconds)

    def expand(self, batches: beam.PCollection) -> WriteResult:
        outputs = batches | "WriteBatches" >> beam.ParDo(
            _WriteFn(self._config, self._table, self._columns, *self._settings)
        ).with_outputs("failed", main="written")
        return WriteResult(outputs.written, outputs.failed)

    def display_data(self) -> dict:
        max_in_flight, batch_rows, batch_bytes, retry_seconds, backoff_seconds = self._settings
        return {**_connection_data(self._config, self._table, self._columns),
                "consistency": self._config.consistency, "max_in_flight": max_in_flight,
                "batch_rows": batch_rows, "batch_bytes": batch_bytes,
                "retry_seconds": retry_seconds, "backoff_seconds": backoff_seconds}


def token_ranges(ring: Sequence[int], splits_per_range: int) -> list[tuple[int, int]]:
    """Ranges ``(start, end]`` covering the whole Murmur3 ring, cut at the nodes' tokens."""
    bounds = sorted(set(ring)) or [MIN_TOKEN]
    ranges = []
    edges = [MIN_TOKEN, *[t for t in bounds if t != MIN_TOKEN], MAX_TOKEN]
    for start, end in zip(edges, edges[1:]):
        step = max((end - start) // splits_per_range, 1)
        cuts = [start + step * index for index in range(1, splits_per_range)
                if start + step * index < end]
        points = [start, *cuts, end]
        ranges.extend(zip(points, points[1:]))
    return ranges


class _SplitFn(beam.DoFn):
    """Cuts the token ring the shared session's cluster metadata knows into ranges."""

    def __init__(self, config: CassandraConfig, splits_per_range: int):
        self._config = config
        self._splits_per_range = splits_per_range

    def setup(self) -> None:
        self._session = SESSIONS.acquire(self._config)

    def process(self, _unused) -> Iterator[tuple[int, int]]:
        ring = [token.value for token in self._session.cluster.metadata.token_map.ring]
        yield from token_ranges(ring, self._splits_per_range)

    def teardown(self) -> None:
        SESSIONS.release(self._config)


def _arrow(names: Sequence[str], types: dict[str, str], rows: Sequence[tuple]) -> pa.Table:
    return pa.table({name: _column(types[name], [row[index] for row in rows])
                     for index, name in enumerate(names)})


def _column(cql_type: str, values: list) -> pa.Array:
    """One column's values as the driver or a caller gives them, as Arrow."""
    if cql_type == "date":  # the driver's Date counts days, as date32 does: 20x faster
        return pa.array([value.days_from_epoch if isinstance(value, Date) else value
                         for value in values], pa.date32())
    if cql_type == "decimal":
        return _decimal_array(values)
    return _map_array(values) if cql_type.startswith("map<") else pa.array(values)


def _decimal_array(values: list) -> pa.Array:
    """Decimals at the scale of the first ones, or at the one inferred from them all if a
    later value has more digits: inferring precision and scale value by value takes 8x as long
    (2.5 s for 1M amounts)."""
    scale = pa.array(values[:1024]).type
    if pa.types.is_decimal(scale):
        try:
            return pa.array(values, pa.decimal128(38, scale.scale))
        except (pa.ArrowInvalid, OverflowError):
            pass
    return pa.array(values)


def _map_array(values: list) -> pa.MapArray:
    """A map column: keys and items inferred like any column's values."""
    offsets, keys, items = [0], [], []
    for value in values:
        for key, item in (value or {}).items():
            keys.append(key)
            items.append(item)
        offsets.append(len(keys))
    mask = pa.array([value is None for value in values])
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(keys),
                                   pa.array(items), mask=mask)


class _TableReaderFn(beam.DoFn):
    """Opens the shared session and learns the table's columns and key."""

    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]]):
        self._config = config
        self._table = table
        self._columns = columns
        self._rows_read = beam.metrics.Metrics.counter(f"cassandra.{table}", "rows_read")

    def setup(self) -> None:
        self._session = SESSIONS.acquire(self._config)
        metadata = self._session.cluster.metadata.keyspaces[self._config.keyspace]
        self._metadata = metadata.tables[self._table]
        self._names = list(self._columns or self._metadata.columns)
        self._types = {name: self._metadata.columns[name].cql_type for name in self._names}
        self._select = f"SELECT {', '.join(self._names)} FROM {self._config.keyspace}.{self._table}"

    def teardown(self) -> None:
        SESSIONS.release(self._config)


class _ReadRangeFn(_TableReaderFn):
    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]],
                 where: Optional[str], values: tuple, page_rows: int):
        super().__init__(config, table, columns)
        self._where = where
        self._values = values
        self._page_rows = page_rows

    def setup(self) -> None:
        super().setup()
        key = ", ".join(column.name for column in self._metadata.partition_key)
        where = f" AND {self._where}" if self._where else ""
        self._statement = self._session.prepare(
            f"{self._select} WHERE token({key}) > ? AND token({key}) <= ?{where}")
        self._statement.fetch_size = self._page_rows

    def process(self, token_range: tuple[int, int]) -> Iterator[pa.Table]:
        result = self._session.execute(self._statement, (*token_range, *self._values))
        while True:
            rows = result.current_rows
            if rows:
                self._rows_read.inc(len(rows))
                yield _arrow(self._names, self._types, rows)
            if not result.has_more_pages:
                break
            result.fetch_next_page()


@beam.typehints.with_output_types(pa.Table)
class ReadFromCassandra(beam.PTransform):
    """Reads a table (or the rows of it ``where`` selects, e.g. through an SAI index) as
    batches of records (``pyarrow.Table``, one per page).

    The ring is cut at every node's tokens, each range again into ``splits_per_range`` pieces;
    a reshuffle spreads the ranges over the workers.

    Args:
      config: the cluster, keyspace, credentials and consistency to read with.
      table: the table, in ``config.keyspace``.
      columns: the columns read; by default all of the table's.
      where: a CQL condition ANDed to each token range's, with ``?`` markers for ``values``.
      values: one value per ``?`` of ``where``.
      splits_per_range: the pieces each range between two nodes' tokens is cut into: more
        pieces, more parallel reads.
      page_rows: the rows of one page, and so of one output batch at most.
    """

    def __init__(self, config: CassandraConfig, table: str,
                 columns: Optional[Iterable[str]] = None, *, where: Optional[str] = None,
                 values: Sequence[Any] = (), splits_per_range: int = 4, page_rows: int = 5000):
        super().__init__()
        _check_config(config)
        _check_table(table)
        columns = _column_names(columns)
        _check_positive(splits_per_range=splits_per_range, page_rows=page_rows)
        if where is not None and not isinstance(where, str):
            raise TypeError(f"where must be a str, not {type(where).__name__}")
        if where is not None and where.count("?") != len(values):
            raise ValueError("where needs one value per ? marker")
        self._config = config
        self._table = table
        self._columns = columns
        self._where = where
        self._values = tuple(values)
        self._splits_per_range = splits_per_range
        self._page_rows = page_rows

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "Start" >> beam.Create([None])
                | "SplitTokenRing" >> beam.ParDo(_SplitFn(self._config, self._splits_per_range))
                | "SpreadRanges" >> beam.Reshuffle()
                | "ReadRanges" >> beam.ParDo(_ReadRangeFn(
                    self._config, self._table, self._columns, self._where, self._values,
                    self._page_rows)))

    def display_data(self) -> dict:
        return {**_connection_data(self._config, self._table, self._columns),
                "where": self._where or "", "splits_per_range": self._splits_per_range,
                "page_rows": self._page_rows}


class _ReadKeysFn(_TableReaderFn):
    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]],
                 key_columns: Sequence[str], in_column: Optional[str], concurrency: int):
        super().__init__(config, table, columns)
        self._key_columns = key_columns
        self._in_column = in_column
        self._concurrency = concurrency

    def setup(self) -> None:
        super().setup()
        # a key's own columns are the same in each of its rows: taken from the key, not read
        self._read = [name for name in self._names if name not in self._key_columns]
        where = " AND ".join([*(f"{column} = ?" for column in self._key_columns),
                              *([f"{self._in_column} IN ?"] if self._in_column else [])])
        self._statement = self._session.prepare(
            f"SELECT {', '.join(self._read or self._key_columns[:1])} "
            f"FROM {self._config.keyspace}.{self._table} WHERE {where}")

    def process(self, keys: Sequence[tuple]) -> Iterator[pa.Table]:
        results = execute_concurrent_with_args(self._session, self._statement, keys,
                                               concurrency=self._concurrency,
                                               raise_on_first_error=True)
        counts, rows = [], []
        for _, result in results:
            before = len(rows)
            rows.extend(result)
            counts.append(len(rows) - before)
        self._rows_read.inc(len(rows))
        read = _arrow(self._read, self._types, rows)
        of_key = pa.array(np.repeat(np.arange(len(keys)), counts))
        yield pa.table({name: read[name] if name in self._read else _column(
            self._types[name], [key[self._key_columns.index(name)] for key in keys]).take(of_key)
            for name in self._names})


@beam.typehints.with_output_types(pa.Table)
class ReadAllFromCassandra(beam.PTransform):
    """For batches of keys (lists of tuples of ``key_columns`` values: a partition key, maybe
    with clustering columns), the matching rows, one ``pyarrow.Table`` per batch.

    Args:
      config: the cluster, keyspace, credentials and consistency to read with.
      table: the table, in ``config.keyspace``.
      key_columns: the columns each key gives a value of, in order.
      columns: the columns read; by default all of the table's.
      in_column: a clustering column after ``key_columns`` that each key gives a list of
        values of, as its last element, matched with ``IN``: one query for many rows of a
        partition (a request costs the driver as much as ~50 rows).
      concurrency: the queries of one batch of keys in flight at once.
    """

    def __init__(self, config: CassandraConfig, table: str, key_columns: Sequence[str],
                 columns: Optional[Iterable[str]] = None, *, in_column: Optional[str] = None,
                 concurrency: int = 64):
        super().__init__()
        _check_config(config)
        _check_table(table)
        key_columns = _column_names(key_columns)
        if not key_columns:
            raise ValueError("key_columns must not be empty")
        if in_column is not None and (not isinstance(in_column, str)
                                      or in_column in key_columns):
            raise ValueError(f"in_column must be a column name not in key_columns, "
                             f"not {in_column!r}")
        _check_positive(concurrency=concurrency)
        self._config = config
        self._table = table
        self._key_columns = key_columns
        self._columns = _column_names(columns)
        self._in_column = in_column
        self._concurrency = concurrency

    def expand(self, keys: beam.PCollection) -> beam.PCollection:
        return keys | "ReadKeys" >> beam.ParDo(_ReadKeysFn(
            self._config, self._table, self._columns, self._key_columns, self._in_column,
            self._concurrency))

    def display_data(self) -> dict:
        return {**_connection_data(self._config, self._table, self._columns),
                "key_columns": ",".join(self._key_columns), "in_column": self._in_column or "",
                "concurrency": self._concurrency}


def _check_config(config: CassandraConfig) -> None:
    if not isinstance(config, CassandraConfig):
        raise TypeError(f"config must be a CassandraConfig, not {type(config).__name__}")


def _check_table(table: str) -> None:
    if not isinstance(table, str) or not table.replace("_", "").isalnum():
        raise ValueError(f"invalid table name {table!r}")


def _column_names(columns: Optional[Iterable[str]]) -> Optional[tuple[str, ...]]:
    """The ``columns`` argument as a tuple; None (all the table's) for none."""
    names = () if columns is None or isinstance(columns, str) else tuple(columns)
    if isinstance(columns, str) or not all(isinstance(name, str) for name in names):
        raise TypeError(f"columns must be an iterable of column names, not {columns!r}")
    return names or None


def _check_positive(**settings: int) -> None:
    for name, value in settings.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, not {value!r}")


def _connection_data(config: CassandraConfig, table: str,
                     columns: Optional[Sequence[str]]) -> dict:
    """The display data every transform of this module shows: where it reads or writes."""
    return {"hosts": DisplayDataItem(",".join(config.hosts), label="Cassandra hosts"),
            "keyspace": config.keyspace, "table": table,
            "columns": ",".join(columns) if columns else "(all)"}
