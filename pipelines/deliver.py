"""The outbound pipeline: a vacation's pivot package for Arkea ABS, from the structured zone.

``cre deliver`` runs it, and ``cre ingest`` at the end of each vacation. POSITIONS covers each
(account, value date, currency) the vacation's events touched, computed over the latest visible
versions of all the events of that account and day, not only this vacation's.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Optional

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.query import ValueSequence

from io_connectors import arkea_abs
from io_connectors.cassandra import ReadAllFromCassandra, ReadFromCassandra
from io_connectors.cassandra_client import SESSIONS, CassandraConfig
from pipelines import openlineage_runs, package_lineage, run_metrics
from pipelines.ledger import Ledger, State
from pipelines.progress import Bar
from transforms import contract, pivot_package
from transforms.pivot_package import Position
from transforms.structured_rows import DAY_BUCKETS, day_buckets, months

_LOG = logging.getLogger(__name__)
_EVENT_COLUMNS = ("account_id", "value_date", "cre_id", "vacation_id", "event_type", "amount",
                  "currency")
_ROWS_READ = Bar("deliver: rows read", "rows")  # the vacation's events, then its days' events


class DeliveryError(contract.PlatformError):
    """The vacation cannot be delivered (unknown, or not finished)."""


_DAYS_PER_READ = 512


class DeliveryHeld(DeliveryError):
    """A data-quality finding holds the vacation's delivery until an operator releases it."""


def _touched_days(table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
    """One batch of the vacation's versions as its distinct (account_id, value_date), by
    bucket: the days of a vacation loaded before cre_days_by_vacation existed."""
    _ROWS_READ.advance(table.num_rows)
    days = table.group_by(["account_id", "value_date"]).aggregate([])
    buckets = day_buckets(days["account_id"])
    for bucket in np.unique(buckets).tolist():
        yield bucket, days.filter(buckets == bucket)


def _day_keys(days: pa.Table) -> Iterator[list[tuple]]:
    """A bucket's distinct days as keys of the events table: (account_id, month, [value_date,
    ...]), one partition's days a key, in reads of about ``_DAYS_PER_READ`` days."""
    days = days.group_by(["account_id", "value_date"]).aggregate([])
    days = days.append_column("month", months(days["value_date"]))
    partitions = days.group_by(["account_id", "month"]).aggregate([("value_date", "list")])
    keys, in_read = [], 0
    for account, month, value_dates in zip(*(column.to_pylist()
                                             for column in partitions.columns)):
        keys.append((account, month, value_dates))
        in_read += len(value_dates)
        if in_read >= _DAYS_PER_READ:
            yield keys
            keys, in_read = [], 0
    if keys:
        yield keys


_KEY = ["account_id", "value_date", "currency"]


def _touched(table: pa.Table, vacation_id: str) -> pa.Table:
    """The distinct (account, value date, currency) the vacation wrote among these events."""
    mine = table.filter(pc.equal(table["vacation_id"], vacation_id))
    return mine.select(_KEY).group_by(_KEY).aggregate([])


_POSITIONS = pa.schema([
    ("account_id", pa.string()), ("value_date", pa.date32()), ("currency", pa.string()),
    ("event_count", pa.int64()),
    # summed exactly: 38 digits hold any day's sum of the contract's amounts
    ("debit_total", pa.decimal128(38, contract.AMOUNT_SCALE)),
    ("credit_total", pa.decimal128(38, contract.AMOUNT_SCALE))])


def _positions(touched: pa.Table, latest: pa.Table) -> pa.Table:
    """The positions of the touched keys over the latest visible events of their whole days,
    as a table of ``_POSITIONS``: Arrow between steps, not one Python object per key."""
    if not touched.num_rows:
        return _POSITIONS.empty_table()
    amount = pc.abs(latest["amount"]).cast(_POSITIONS.field("debit_total").type)
    debit = pc.is_in(latest["event_type"], value_set=pa.array(sorted(contract.DEBIT_TYPES)))
    zero = pa.scalar(Decimal(0), amount.type)
    sums = pa.table({
        **{name: latest[name] for name in _KEY},
        "debit": pc.if_else(debit, amount, zero), "credit": pc.if_else(debit, zero, amount),
    }).group_by(_KEY).aggregate(
        [("debit", "count", pc.CountOptions(mode="all")), ("debit", "sum"), ("credit", "sum")])
    sums = sums.join(touched, _KEY, join_type="inner")
    positions = pa.table([sums[name] for name in (*_KEY, "debit_count", "debit_sum",
                                                  "credit_sum")], schema=_POSITIONS)
    # compacted: the aggregate's arrays sit in buffers ten times their size, which would be
    # pickled whole between steps and kept whole in the side input
    return positions.take(np.arange(positions.num_rows))


def _as_positions(table: pa.Table) -> list[Position]:
    """The package's positions from their table, once, where the package is built."""
    return [Position(account, day.isoformat(), currency, count, debit, credit)
            for account, day, currency, count, debit, credit in zip(*(
                column.to_pylist() for column in table.columns))]


class _DayPositionsFn(beam.DoFn):
    """The positions of whole days of events (every version), as one table per batch, and the
    event versions each was computed from (the ``VERSIONS`` output, the package's lineage).

    A row is the latest visible version of its event unless a later visible vacation wrote the
    same cre_id, here or elsewhere. No vacation is later than the newest visible one, so its
    rows (the delivered vacation's own, as a rule) are kept as they are; for the rows of
    earlier ones the versions table decides (100 cre_ids per request).
    """

    def __init__(self, config: CassandraConfig, vacation_id: str, visible: frozenset[str]):
        self._config = config
        self._vacation_id = vacation_id
        self._visible = sorted(visible)
        self._visible_set = frozenset(visible)

    def setup(self) -> None:
        self._session = SESSIONS.acquire(self._config)
        self._versions = self._session.prepare(
            f"SELECT cre_id, vacation_id FROM {self._config.keyspace}.cre_event_versions "
            "WHERE cre_id IN ?")

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        _ROWS_READ.advance(table.num_rows)
        if table.num_rows and self._visible:
            table = table.select(list(_EVENT_COLUMNS))
            touched, latest = _touched(table, self._vacation_id), self._latest_visible(table)
            yield _positions(touched, latest)
            yield beam.pvalue.TaggedOutput(VERSIONS, package_lineage.position_versions(
                touched, latest))

    def _latest_visible(self, table: pa.Table) -> pa.Table:
        table = table.filter(pc.is_in(table["vacation_id"], value_set=pa.array(self._visible)))
        earlier = np.flatnonzero(pc.less(table["vacation_id"], self._visible[-1]))
        keep = np.ones(table.num_rows, dtype=bool)
        if earlier.size:
            cre_ids = table["cre_id"].take(earlier).to_pylist()
            vacations = table["vacation_id"].take(earlier).to_pylist()
            latest = self._latest(sorted(set(cre_ids)))
            keep[earlier] = [latest.get(cre_id) == vacation
                             for cre_id, vacation in zip(cre_ids, vacations)]
        return table.filter(keep)

    def _latest(self, cre_ids: list[str]) -> dict[str, str]:
        """The latest visible vacation of each cre_id, by the versions table."""
        latest: dict[str, str] = {}
        chunks = [(cre_ids[start:start + 100],) for start in range(0, len(cre_ids), 100)]
        for _, result in execute_concurrent_with_args(self._session, self._versions, chunks,
                                                      concurrency=32, raise_on_first_error=True):
            for cre_id, vacation_id in result:
                if vacation_id in self._visible_set and vacation_id > latest.get(cre_id, ""):
                    latest[cre_id] = vacation_id
        return latest

    def teardown(self) -> None:
        SESSIONS.release(self._config)


def _concatenated(tables: Iterable[pa.Table]) -> pa.Table:
    return pa.concat_tables([_POSITIONS.empty_table(), *tables])


def days_recorded(session, vacation_id: str) -> bool:
    """Whether the vacation's touched days are in cre_days_by_vacation (it was loaded after
    migration 008 added it)."""
    return session.execute(
        "SELECT bucket FROM cre_days_by_vacation WHERE vacation_id = %s AND bucket IN %s "
        "LIMIT 1", (vacation_id, ValueSequence(range(DAY_BUCKETS)))).one() is not None


VERSIONS = "versions"


class ComputePositions(beam.PTransform):
    """The positions of spec 4 for one vacation, as one table of ``_POSITIONS`` (``positions``),
    and the event versions behind them (``VERSIONS``: ``package_lineage.VERSIONS`` tables).

    The vacation's touched days come from cre_days_by_vacation, one read per bucket, or, for a
    vacation loaded before that table (``days_recorded`` False), from its versions through the
    SAI index (one lookup per event), grouped into the same buckets.
    """

    def __init__(self, config: CassandraConfig, vacation_id: str, visible: frozenset[str],
                 days_recorded: bool = True):
        super().__init__()
        self._config = config
        self._vacation_id = vacation_id
        self._visible = visible
        self._days_recorded = days_recorded

    def expand(self, pbegin) -> dict[str, beam.PCollection]:
        days = (self._bucket_days(pbegin)
                | "DayKeys" >> beam.FlatMap(_day_keys)
                | "ReadDays" >> ReadAllFromCassandra(
                    self._config, "cre_events_by_account", ("account_id", "month"),
                    _EVENT_COLUMNS, in_column="value_date")
                | "DayPositions" >> beam.ParDo(_DayPositionsFn(
                    self._config, self._vacation_id, self._visible)).with_outputs(
                        VERSIONS, main="positions"))
        return {"positions": days.positions | "AllPositions" >> beam.CombineGlobally(
                    _concatenated),
                VERSIONS: days[VERSIONS]}

    def _bucket_days(self, pbegin) -> beam.PCollection:
        """The vacation's (account_id, value_date) days, one table per bucket."""
        if self._days_recorded:
            return (pbegin
                    | "Buckets" >> beam.Create(
                        [[(self._vacation_id, bucket)] for bucket in range(DAY_BUCKETS)])
                    | "RecordedDays" >> ReadAllFromCassandra(
                        self._config, "cre_days_by_vacation", ("vacation_id", "bucket"),
                        ("account_id", "value_date")))
        return (pbegin
                | "VacationEvents" >> ReadFromCassandra(
                    self._config, "cre_event_versions", ["account_id", "value_date"],
                    where="vacation_id = ?", values=(self._vacation_id,))
                | "TouchedDays" >> beam.FlatMap(_touched_days)
                | "DaysByBucket" >> beam.GroupByKey()
                | "BucketDays" >> beam.MapTuple(lambda _, tables: pa.concat_tables(tables)))


class BuildPackage(beam.PTransform):
    """The summary, the rejects and the positions of a vacation as one ``Package``, once the
    package's lineage is written (``package_lineage.WritePackageLineage``)."""

    def __init__(self, config: CassandraConfig, summary: dict, visible: frozenset[str],
                 days_recorded: bool = True):
        super().__init__()
        self._config = config
        self._summary = summary
        self._visible = visible
        self._days_recorded = days_recorded

    def expand(self, pbegin):
        vacation_id = self._summary["vacation_id"]
        rejects = (pbegin
                   | "VacationRejects" >> ReadFromCassandra(
                       self._config, "rejects_by_vacation", pivot_package.REJECT_COLUMNS,
                       where="vacation_id = ?", values=(vacation_id,))
                   | "RejectRows" >> beam.FlatMap(pa.Table.to_pylist)
                   | "AllRejects" >> beam.combiners.ToList())
        summary, business_date = self._summary, self._summary["business_date"]
        if summary["status"] == contract.Outcome.REJECTED:
            positions = pbegin | "NoPositions" >> beam.Create([_POSITIONS.empty_table()])
            lineage = pbegin | "NoLineage" >> beam.Create([0])
        else:
            computed = pbegin | "Positions" >> ComputePositions(
                self._config, vacation_id, self._visible, self._days_recorded)
            positions = computed["positions"]
            lineage = computed[VERSIONS] | "Lineage" >> package_lineage.WritePackageLineage(
                self._config, vacation_id, datetime.date.fromisoformat(business_date))
        return (pbegin
                | "Summary" >> beam.Create([summary])
                | "Members" >> beam.Map(
                    lambda document, rejects, positions, _lineage: arkea_abs.Package(
                        document["vacation_id"], business_date,
                        pivot_package.members(document, rejects, _as_positions(positions))),
                    rejects=beam.pvalue.AsSingleton(rejects),
                    positions=beam.pvalue.AsSingleton(positions),
                    _lineage=beam.pvalue.AsSingleton(lineage)))


# the tables a delivery reads, and those of the lineage it writes: its OpenLineage data sets
_READ = ("vacations", "rejects_by_vacation", "cre_days_by_vacation", "cre_events_by_account",
         "cre_event_versions")
_LINEAGE = ("package_positions", "package_positions_by_day")


def deliver(session, config: CassandraConfig, vacation_id: str, outbound_root: str,
            redeliver: bool = False,
            pipeline_options: Optional[PipelineOptions] = None) -> dict:
    """Builds and delivers the package unless it already was; records it in the ledger. One
    OpenLineage run, a part of the ingest's when it is the ingest's last step."""
    with openlineage_runs.job_run(openlineage_runs.DELIVER, vacation_id) as lineage:
        delivered = _deliver(session, config, vacation_id, outbound_root, redeliver,
                             pipeline_options)
        if delivered["delivered"] and openlineage_runs.enabled():
            lineage.read(*openlineage_runs.tables(session, dict.fromkeys(_READ)))
            lineage.wrote(openlineage_runs.file(delivered["path"], size=delivered["bytes"],
                                                fields=openlineage_runs.PACKAGE_FIELDS),
                          *openlineage_runs.tables(session, dict.fromkeys(_LINEAGE)))
        return delivered


def _deliver(session, config: CassandraConfig, vacation_id: str, outbound_root: str,
             redeliver: bool, pipeline_options: Optional[PipelineOptions]) -> dict:
    ledger = Ledger(session)
    row = ledger.get(vacation_id)
    if row is None:
        raise DeliveryError(f"{vacation_id} is not in the ledger")
    if row.state not in (State.LOADED, State.DELIVERED, State.REJECTED):
        raise DeliveryError(f"{vacation_id} is {row.state}: only LOADED or REJECTED "
                            "vacations are delivered")
    if row.delivery_held:
        raise DeliveryHeld(f"{vacation_id}: its delivery is held ({row.delivery_held}); an "
                           "operator releases it from the console or with cre deliver --release")
    path = arkea_abs.package_path(outbound_root, row.business_date.isoformat(), vacation_id)
    if row.delivered_at and not redeliver and arkea_abs.delivered(path):
        _LOG.info("%s was delivered at %s: nothing to do (--redeliver to send it again)",
                  vacation_id, row.delivered_at)
        return {**dataclasses.asdict(row.delivery), "delivered_at": row.delivered_at.isoformat(),
                "delivered": False}
    visible = ledger.visible()
    summary = row.summary.document
    _ROWS_READ.start()
    with beam.Pipeline(options=pipeline_options or PipelineOptions([])) as pipeline:
        _ = (pipeline
             | "Build" >> BuildPackage(config, summary, visible,
                                      days_recorded(session, vacation_id))
             | "Deliver" >> arkea_abs.WriteArkeaPackage(outbound_root))
    run_metrics.record_pipeline(pipeline.result)
    if not arkea_abs.delivered(path):
        raise RuntimeError(f"{vacation_id}: the pipeline ended without delivering {path}")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        data = handle.read()
    delivery = pivot_package.Delivery(vacation_id, path, hashlib.sha256(data).hexdigest(),
                                      len(data))
    # what an earlier delivery of the package left in its lineage and this one did not write
    package_lineage.purge(session, pivot_package.package_name(vacation_id),
                          keep=package_lineage.parts_of(pivot_package.positions_of(data)))
    delivered_at = ledger.record_delivery(vacation_id, row.state, delivery)
    _LOG.info("%s delivered to %s (%d bytes, sha256 %s)", vacation_id, path, len(data),
              delivery.sha256)
    return {**dataclasses.asdict(delivery), "delivered_at": delivered_at.isoformat(),
            "delivered": True}
