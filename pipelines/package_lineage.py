"""The lineage of outbound packages (issue 35): the owner of ``package_positions`` and
``package_positions_by_day`` (migration 011).

For each delivered package, each of its positions keeps the event versions it was computed from
(cre_id -> the vacation of the version counted). The delivery writes them before the package
(``WritePackageLineage``); once the package is delivered, the rows an earlier delivery of it left
that its positions no longer have are removed (``purge`` with ``keep``), so a failed redelivery
leaves the lineage of the package still in place. A rollback of the package's vacation removes
them all. ``pipelines/lineage.py`` reads them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.display import DisplayDataItem
from cassandra.concurrent import execute_concurrent_with_args

from io_connectors.cassandra import WriteToCassandra
from io_connectors.cassandra_client import CassandraConfig
from transforms import pivot_package

PART_EVENTS = 1000  # events of one row: a busy account's day stays several small cells
_KEY = ["account_id", "value_date", "currency"]
VERSIONS = pa.schema([
    ("account_id", pa.string()), ("value_date", pa.date32()), ("currency", pa.string()),
    ("part", pa.int32()), ("versions", pa.map_(pa.string(), pa.string()))])


class LineageNotWritten(RuntimeError):
    """Rows of a package's lineage could not be written: the package is not delivered."""


def position_versions(touched: pa.Table, latest: pa.Table) -> pa.Table:
    """The event versions behind each touched position, as a table of ``VERSIONS``: the rows of
    ``latest`` (the versions a position sums) of each touched key, ``PART_EVENTS`` a part."""
    counted = latest.select([*_KEY, "cre_id", "vacation_id"]).join(
        touched.select(_KEY), _KEY, join_type="inner")
    if not counted.num_rows:
        return VERSIONS.empty_table()
    counted = counted.sort_by([(name, "ascending") for name in (*_KEY, "cre_id")])
    starts = np.zeros(counted.num_rows, dtype=bool)
    starts[0] = True
    for name in _KEY:
        column = counted[name].combine_chunks()
        starts[1:] |= pc.not_equal(column[1:], column[:-1]).to_numpy(zero_copy_only=False)
    index = np.arange(counted.num_rows)
    first = np.maximum.accumulate(np.where(starts, index, 0))
    counted = counted.append_column("part", pa.array((index - first) // PART_EVENTS, pa.int32()))
    parts = counted.group_by([*_KEY, "part"], use_threads=False).aggregate(
        [("cre_id", "list"), ("vacation_id", "list")])
    cre_ids, vacations = parts["cre_id_list"].combine_chunks(), \
        parts["vacation_id_list"].combine_chunks()
    versions = pa.MapArray.from_arrays(cre_ids.offsets, cre_ids.values, vacations.values)
    return pa.table([*(parts[name] for name in (*_KEY, "part")), versions], schema=VERSIONS)


def _settled(results: list[tuple[int, str]]) -> int:
    """The rows written, once every write has settled; raises when one became a dead letter."""
    if errors := [error for _, error in results if error]:
        raise LineageNotWritten(f"{len(errors)} batches of the package's lineage were not "
                                f"written: {errors[0]}")
    return sum(rows for rows, _ in results)


class WritePackageLineage(beam.PTransform):
    """Writes a package's ``VERSIONS`` tables to both lineage tables; outputs one element, the
    rows written, only once all are durable (a step that must follow them takes it as a side
    input), and fails the run when a write became a dead letter.

    Args:
      config: the structured zone to write to.
      vacation_id: the delivered vacation, whose package the rows describe.
      business_date: the vacation's business date.
    """

    def __init__(self, config: CassandraConfig, vacation_id: str, business_date: datetime.date):
        super().__init__()
        if not isinstance(business_date, datetime.date):
            raise TypeError(f"business_date must be a date, not {type(business_date).__name__}")
        self._config = config
        self._vacation_id = vacation_id
        self._package = pivot_package.package_name(vacation_id)
        self._business_date = business_date

    def expand(self, versions: beam.PCollection) -> beam.PCollection:
        rows = versions | "OfPackage" >> beam.Map(self._of_package)
        results = []
        for step, table in (("ByPackage", "package_positions"),
                            ("ByDay", "package_positions_by_day")):
            write = rows | f"Write{step}" >> WriteToCassandra(self._config, table)
            results += [write.written | f"{step}Written" >> beam.Map(lambda count: (count, "")),
                        write.failed | f"{step}Failed" >> beam.Map(
                            lambda failure: (0, failure.error))]
        return (results
                | "Flatten" >> beam.Flatten()
                | "AllResults" >> beam.combiners.ToList()
                | "Settled" >> beam.Map(_settled))

    def _of_package(self, table: pa.Table) -> pa.Table:
        rows = table.num_rows
        return (table.append_column("package", pa.array([self._package] * rows, pa.string()))
                .append_column("vacation_id", pa.array([self._vacation_id] * rows, pa.string()))
                .append_column("business_date", pa.array([self._business_date] * rows,
                                                         pa.date32())))

    def display_data(self) -> dict:
        return {"package": DisplayDataItem(self._package, label="Package"),
                "keyspace": DisplayDataItem(self._config.keyspace, label="Keyspace")}


def purge(session, package: str, keep: frozenset[tuple] = frozenset()) -> int:
    """Removes a package's lineage from both tables but the rows of ``keep`` ((account_id,
    value_date, currency, part) keys: a redelivery's, ``parts_of``); the rows removed.
    Idempotent."""
    stale = [(account_id, value_date, package, currency, part)
             for account_id, value_date, currency, part in session.execute(
                 "SELECT account_id, value_date, currency, part FROM package_positions "
                 "WHERE package = %s", (package,))
             if (account_id, value_date.date(), currency, part) not in keep]
    for table in ("package_positions_by_day", "package_positions")[:2 if keep else 1]:
        delete = session.prepare(
            f"DELETE FROM {table} WHERE account_id = ? AND value_date = ? AND package = ? "
            "AND currency = ? AND part = ?")
        execute_concurrent_with_args(session, delete, stale, concurrency=64,
                                     raise_on_first_error=True)
    if not keep:  # the whole package: one partition
        session.execute("DELETE FROM package_positions WHERE package = %s", (package,))
    return len(stale)


def parts_of(positions: Iterable[tuple[str, datetime.date, str, int]]) -> frozenset[tuple]:
    """The lineage rows' keys of a package's positions, (account_id, value_date, currency,
    event_count) each: ``PART_EVENTS`` events a part, as ``position_versions`` cuts them."""
    return frozenset((account_id, value_date, currency, part)
                     for account_id, value_date, currency, count in positions
                     for part in range(max(1, -(-count // PART_EVENTS))))
