"""Writing a table in bulk: SSTables built by the workers and streamed to the replicas, past the
servers' write path (commit log, memtables, flushes).

What belongs here: ``WriteToCassandraBulk`` and its DoFn. The JVM it drives is
``io_connectors.sstable_writer``; the CQL sink, which it matches row for row, is
``io_connectors.cassandra.WriteToCassandra``.

The cells are those an INSERT would write, with one write timestamp chosen by the caller for
the whole write: a bundle written again (a retry) brings in the same cells, and a later DELETE
(a rollback, a replay's purge) still removes them. A row is not readable until its SSTable has
streamed; what makes a vacation's rows visible together is the ledger, as in CQL mode.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Optional

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from io_connectors.cassandra import (
    _check_config,
    _check_table,
    _column_names,
    _connection_data,
    insert_statement,
    written_columns,
)
from io_connectors.cassandra_client import SESSIONS, CassandraConfig
from io_connectors.sstable_writer import PROCESSES, TableSpec, Target

__all__ = ["WriteToCassandraBulk"]

_LOG = logging.getLogger(__name__)


def replica_groups(token_map, keyspace: str) -> tuple[list[int], list[int]]:
    """The ring's tokens, ascending, and for each the group of the replica set that owns the
    range ending at it: the SSTables of one group stream to those replicas only."""
    groups: dict[frozenset, int] = {}
    ring, owners = [], []
    for token in token_map.ring:
        replicas = frozenset(str(host.endpoint) for host in token_map.get_replicas(keyspace, token))
        ring.append(token.value)
        owners.append(groups.setdefault(replicas, len(groups)))
    return ring, owners


def tolerated_failures(consistency: str, replicas: int) -> int:
    """How many of a range's ``replicas`` may miss its SSTables with the load still complete:
    the margin a CQL write at ``consistency`` has (one of three at QUORUM, none at ALL)."""
    fixed = {"ANY": 1, "ONE": 1, "LOCAL_ONE": 1, "TWO": 2, "THREE": 3, "ALL": replicas}
    needed = fixed.get(consistency, replicas // 2 + 1)  # the QUORUMs
    return max(0, replicas - needed)


class _WriteSSTablesFn(beam.DoFn):
    """Describes the table and the ring in ``setup()``; opens a channel of the worker's JVM per
    bundle, sends each batch down it, and in ``finish_bundle()`` has the bundle's SSTables
    closed and streamed, then emits its row count."""

    def __init__(self, config: CassandraConfig, table: str, columns: Optional[Sequence[str]],
                 write_timestamp: int, buffer_mib: int, heap: str, directory: Optional[str]):
        self._config = config
        self._table = table
        self._columns = columns
        self._timestamp = write_timestamp
        self._buffer_mib = buffer_mib
        self._heap = heap
        self._directory = directory
        namespace = f"cassandra.{table}"
        self._rows_written = beam.metrics.Metrics.counter(namespace, "rows_written")
        self._bytes_streamed = beam.metrics.Metrics.counter(namespace, "bulk_bytes_streamed")
        self._replicas_missed = beam.metrics.Metrics.counter(namespace, "bulk_replicas_missed")

    def setup(self) -> None:
        session = SESSIONS.acquire(self._config)
        try:
            self._spec = self._describe(session)
        finally:
            SESSIONS.release(self._config)
        self._jvm = PROCESSES.get(self._heap)

    def _describe(self, session) -> TableSpec:
        """The table's bulk write, its directory left to each bundle."""
        keyspace = self._config.keyspace
        table, names = written_columns(session, keyspace, self._table, self._columns)
        token_map = session.cluster.metadata.token_map
        ring, owners = replica_groups(token_map, keyspace)
        fewest = min(len(token_map.get_replicas(keyspace, token)) for token in token_map.ring)
        (storage_port,) = session.execute("SELECT listen_port FROM system.local").one()
        (mode,) = session.execute("SELECT value FROM system_views.settings "
                                  "WHERE name = 'storage_compatibility_mode'").one() or (None,)
        return TableSpec(
            keyspace, self._table, table.as_cql_query(),
            [index.as_cql_query() for index in table.indexes.values()],
            insert_statement(keyspace, self._table, names), self._timestamp, names,
            [column.name for column in table.partition_key], ring, owners,
            tolerated_failures(self._config.consistency, fewest), self._buffer_mib,
            Target(list(self._config.hosts), self._config.port, storage_port or 7000,
                   self._config.username, self._config.password,
                   mode or "CASSANDRA_4"))  # unset: 5.0's default

    def start_bundle(self) -> None:
        self._bundle_directory = tempfile.mkdtemp(prefix=f"sstables-{self._table}-",
                                                  dir=self._directory)
        self._channel = self._jvm.open(
            dataclasses.replace(self._spec, directory=self._bundle_directory))
        self._rows = 0

    def process(self, rows: pa.Table) -> None:
        if rows.num_rows:
            self._jvm.write(self._channel, rows.select(self._spec.columns))
            self._rows += rows.num_rows

    def finish_bundle(self) -> Iterator[WindowedValue]:
        try:
            loaded = self._jvm.close(self._channel, self._table)
        finally:  # the JVM removes what it wrote, unless it died first
            shutil.rmtree(self._bundle_directory, ignore_errors=True)
        if loaded["rows"] != self._rows:
            raise RuntimeError(f"{self._table}: sent {self._rows} rows, "
                               f"the SSTables hold {loaded['rows']}")
        _LOG.info("%s: %d rows sorted in %d runs, merged into %d SSTables (%.1f MiB) %.1f s "
                  "after the rows, streamed %.1f s later (the writer's JVM: %.1f s of CPU so far)",
                  self._table, self._rows, loaded["runs"], loaded["sstables"],
                  loaded["bytes"] / 2**20, loaded["close_seconds"], loaded["load_seconds"],
                  loaded["jvm_cpu_seconds"])
        if loaded["missed_replicas"]:
            _LOG.warning("%s: %s missed SSTables of this load, which completed at %s on the "
                         "other replicas; run `nodetool repair %s %s` on them",
                         self._table, ", ".join(loaded["missed_replicas"]),
                         self._config.consistency, self._config.keyspace, self._table)
            self._replicas_missed.inc(len(loaded["missed_replicas"]))
        self._rows_written.inc(self._rows)
        self._bytes_streamed.inc(loaded["bytes"])
        window = GlobalWindow()
        yield WindowedValue(self._rows, window.max_timestamp(), [window])


@beam.typehints.with_input_types(pa.Table)
@beam.typehints.with_output_types(int)
class WriteToCassandraBulk(beam.PTransform):
    """Writes batches of records (``pyarrow.Table``, columns named as the table's) to a table as
    SSTables streamed to its replicas; returns the rows written per bundle, emitted once they
    have streamed. A bundle whose SSTables cannot be written or streamed fails
    (``BulkLoadFailed``).

    Args:
      config: the cluster, keyspace and credentials (the stream reaches every replica of each
        range, whatever the consistency).
      table: the table, in ``config.keyspace``.
      write_timestamp: the cells' write time, in microseconds since the epoch: one for the
        whole write, so that a retry writes the same cells and a later DELETE removes them.
      columns: the columns written, which must include the primary key; by default all of the
        table's.
      buffer_mib: the rows a worker's writer of this table holds before it flushes an SSTable.
      heap: the JVM's heap (one JVM per worker, shared by its bulk writes).
      directory: where the SSTables wait for their stream; by default the temporary directory.
    """

    def __init__(self, config: CassandraConfig, table: str, write_timestamp: int,
                 columns: Optional[Sequence[str]] = None, *, buffer_mib: int = 64,
                 heap: str = "1g", directory: Optional[str] = None):
        super().__init__()
        _check_config(config)
        _check_table(table)
        if config.tls_ca_file:
            raise ValueError("the bulk writer does not speak TLS to the cluster: use CQL mode")
        if not isinstance(write_timestamp, int) or write_timestamp <= 0:
            raise ValueError(f"write_timestamp must be microseconds > 0, not {write_timestamp!r}")
        if not isinstance(buffer_mib, int) or buffer_mib < 1:
            raise ValueError(f"buffer_mib must be an int >= 1, not {buffer_mib!r}")
        self._config = config
        self._table = table
        self._columns = _column_names(columns)
        self._timestamp = write_timestamp
        self._buffer_mib = buffer_mib
        self._heap = heap
        self._directory = directory

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "WriteSSTables" >> beam.ParDo(_WriteSSTablesFn(
            self._config, self._table, self._columns, self._timestamp, self._buffer_mib,
            self._heap, self._directory))

    def display_data(self) -> dict:
        return {**_connection_data(self._config, self._table, self._columns),
                "write_timestamp": self._timestamp, "buffer_mib": self._buffer_mib,
                "heap": self._heap}


def new_write_timestamp() -> int:
    """Microseconds now: the write time of one run's bulk writes."""
    return time.time_ns() // 1000
