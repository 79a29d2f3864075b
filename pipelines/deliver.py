"""The outbound pipeline: a vacation's pivot package for Arkea ABS, from the structured zone.

``cre deliver`` runs it, and ``cre ingest`` at the end of each vacation. POSITIONS covers each
(account, value date, currency) the vacation's events touched, computed over the latest visible
versions of all the events of that account and day, not only this vacation's.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Iterator
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

from io_connectors import arkea_abs
from io_connectors.cassandra import (
    SESSIONS,
    CassandraConfig,
    ReadAllFromCassandra,
    ReadFromCassandra,
)
from pipelines import run_metrics
from pipelines.ledger import Ledger, State
from transforms import contract, pivot_package
from transforms.pivot_package import Position
from transforms.progress import Bar

_LOG = logging.getLogger(__name__)
_EVENT_COLUMNS = ("account_id", "value_date", "cre_id", "vacation_id", "event_type", "amount",
                  "currency")
Key = tuple[str, str, str]  # account_id, value date (ISO), currency
_ROWS_READ = Bar("deliver: rows read", "rows")  # the vacation's events, then its days' events


class DeliveryError(contract.PlatformError):
    """The vacation cannot be delivered (unknown, or not finished)."""


def _touched(table: pa.Table) -> Iterator[Key]:
    """The distinct (account, value date, currency) of one batch of the vacation's events."""
    _ROWS_READ.advance(table.num_rows)
    keys = table.group_by(["account_id", "value_date", "currency"]).aggregate([])
    yield from ((account, day.isoformat(), currency) for account, day, currency in zip(
        *(keys[name].to_pylist() for name in ("account_id", "value_date", "currency"))))


def _day_key(key: Key) -> tuple[str, str]:
    return key[0], key[1]


def _day_keys(days: list[tuple[str, str]]) -> list[tuple[str, int, datetime.date]]:
    """The events partition and day of touched days: (account_id, month, value_date)."""
    keys = []
    for account, text in days:
        day = datetime.date.fromisoformat(text)
        keys.append((account, day.year * 100 + day.month, day))
    return keys


class _LatestVisibleFn(beam.DoFn):
    """Keeps the rows that are the latest visible version of their event.

    A row of a visible vacation is the latest unless a later visible vacation wrote the same
    cre_id, here or elsewhere. No vacation is later than the newest visible one, so its rows
    (the delivered vacation's own, as a rule) are kept as they are; for the rows of earlier
    ones the versions table decides (100 cre_ids per request).
    """

    def __init__(self, config: CassandraConfig, visible: frozenset[str]):
        self._config = config
        self._visible = sorted(visible)
        self._visible_set = frozenset(visible)

    def setup(self) -> None:
        self._session = SESSIONS.acquire(self._config)
        self._versions = self._session.prepare(
            f"SELECT cre_id, vacation_id FROM {self._config.keyspace}.cre_event_versions "
            "WHERE cre_id IN ?")

    def process(self, table: pa.Table) -> Iterator[pa.Table]:
        _ROWS_READ.advance(table.num_rows)
        if not table.num_rows or not self._visible:
            return
        table = table.select(list(_EVENT_COLUMNS))
        table = table.filter(pc.is_in(table["vacation_id"], value_set=pa.array(self._visible)))
        earlier = np.flatnonzero(pc.less(table["vacation_id"], self._visible[-1]))
        keep = np.ones(table.num_rows, dtype=bool)
        if earlier.size:
            cre_ids = table["cre_id"].take(earlier).to_pylist()
            vacations = table["vacation_id"].take(earlier).to_pylist()
            latest = self._latest(sorted(set(cre_ids)))
            keep[earlier] = [latest.get(cre_id) == vacation
                             for cre_id, vacation in zip(cre_ids, vacations)]
        yield table.filter(keep)

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


def _position_parts(table: pa.Table) -> Iterator[tuple[Key, tuple[int, Decimal, Decimal]]]:
    """One batch's partial (count, debit, credit) per key: the combine finishes the sums."""
    if not table.num_rows:
        return
    amount = pc.abs(table["amount"])
    # summed exactly: 38 digits hold any batch's sum of the contract's amounts
    amount = amount.cast(pa.decimal128(38, amount.type.scale))
    debit = pc.is_in(table["event_type"], value_set=pa.array(sorted(contract.DEBIT_TYPES)))
    zero = pa.scalar(Decimal(0), amount.type)
    parts = pa.table({
        "account_id": table["account_id"], "value_date": table["value_date"],
        "currency": table["currency"], "debit": pc.if_else(debit, amount, zero),
        "credit": pc.if_else(debit, zero, amount),
    }).group_by(["account_id", "value_date", "currency"]).aggregate(
        [("debit", "count", pc.CountOptions(mode="all")), ("debit", "sum"), ("credit", "sum")])
    for account, day, currency, count, debit_sum, credit_sum in zip(*(
            parts[name].to_pylist() for name in (
                "account_id", "value_date", "currency", "debit_count", "debit_sum",
                "credit_sum"))):
        yield (account, day.isoformat(), currency), (count, debit_sum, credit_sum)


def _sum_parts(parts) -> tuple[int, Decimal, Decimal]:
    count, debit, credit = 0, Decimal(0), Decimal(0)
    for part_count, part_debit, part_credit in parts:
        count, debit, credit = count + part_count, debit + part_debit, credit + part_credit
    return count, debit, credit


def _touched_positions(joined: tuple[Key, dict]) -> Iterator[Position]:
    key, groups = joined
    if groups["touched"]:
        for count, debit, credit in groups["position"]:
            yield Position(*key, count, debit, credit)


class ComputePositions(beam.PTransform):
    """The positions of spec 4 for one vacation, as ``Position``s."""

    def __init__(self, config: CassandraConfig, vacation_id: str, visible: frozenset[str]):
        super().__init__()
        self._config = config
        self._vacation_id = vacation_id
        self._visible = visible

    def expand(self, pbegin):
        touched = (pbegin
                   | "VacationEvents" >> ReadFromCassandra(
                       self._config, "cre_event_versions", ["account_id", "value_date",
                                                            "currency"],
                       where="vacation_id = ?", values=(self._vacation_id,))
                   | "TouchedKeys" >> beam.FlatMap(_touched)
                   | "DistinctKeys" >> beam.Distinct())
        positions = (touched
                     | "Days" >> beam.Map(_day_key)
                     | "DistinctDays" >> beam.Distinct()
                     | "BatchDays" >> beam.BatchElements(min_batch_size=64, max_batch_size=512)
                     | "DayKeys" >> beam.Map(_day_keys)
                     | "ReadDays" >> ReadAllFromCassandra(
                         self._config, "cre_events_by_account",
                         ("account_id", "month", "value_date"), _EVENT_COLUMNS)
                     | "LatestVisible" >> beam.ParDo(_LatestVisibleFn(self._config,
                                                                      self._visible))
                     | "PositionParts" >> beam.FlatMap(_position_parts)
                     | "SumPerKey" >> beam.CombinePerKey(_sum_parts))
        return ({"touched": touched | "AsKeys" >> beam.Map(lambda key: (key, True)),
                 "position": positions}
                | "JoinTouched" >> beam.CoGroupByKey()
                | "TouchedPositions" >> beam.FlatMap(_touched_positions))


class BuildPackage(beam.PTransform):
    """The summary, the rejects and the positions of a vacation as one ``Package``."""

    def __init__(self, config: CassandraConfig, summary: dict, visible: frozenset[str]):
        super().__init__()
        self._config = config
        self._summary = summary
        self._visible = visible

    def expand(self, pbegin):
        vacation_id = self._summary["vacation_id"]
        rejects = (pbegin
                   | "VacationRejects" >> ReadFromCassandra(
                       self._config, "rejects_by_vacation", pivot_package.REJECT_COLUMNS,
                       where="vacation_id = ?", values=(vacation_id,))
                   | "RejectRows" >> beam.FlatMap(pa.Table.to_pylist)
                   | "AllRejects" >> beam.combiners.ToList())
        if self._summary["status"] == contract.Status.REJECTED:
            positions = pbegin | "NoPositions" >> beam.Create([[]])
        else:
            positions = (pbegin
                         | "Positions" >> ComputePositions(self._config, vacation_id,
                                                           self._visible)
                         | "AllPositions" >> beam.combiners.ToList())
        summary, business_date = self._summary, self._summary["business_date"]
        return (pbegin
                | "Summary" >> beam.Create([summary])
                | "Members" >> beam.Map(
                    lambda document, rejects, positions: arkea_abs.Package(
                        document["vacation_id"], business_date,
                        pivot_package.members(document, rejects, positions)),
                    rejects=beam.pvalue.AsSingleton(rejects),
                    positions=beam.pvalue.AsSingleton(positions)))


def deliver(session, config: CassandraConfig, vacation_id: str, outbound_root: str,
            redeliver: bool = False,
            pipeline_options: Optional[PipelineOptions] = None) -> dict:
    """Builds and delivers the package unless it already was; records it in the ledger."""
    ledger = Ledger(session)
    row = ledger.get(vacation_id)
    if row is None:
        raise DeliveryError(f"{vacation_id} is not in the ledger")
    if row["state"] not in (State.LOADED, State.DELIVERED, State.REJECTED):
        raise DeliveryError(f"{vacation_id} is {row['state']}: only LOADED or REJECTED "
                            "vacations are delivered")
    path = arkea_abs.package_path(outbound_root, row["business_date"].isoformat(), vacation_id)
    if row["delivered_at"] and not redeliver and arkea_abs.delivered(path):
        _LOG.info("%s was delivered at %s: nothing to do (--redeliver to send it again)",
                  vacation_id, row["delivered_at"])
        return {**json.loads(row["delivery"]), "delivered_at": row["delivered_at"].isoformat(),
                "delivered": False}
    visible = ledger.visible()
    summary = json.loads(row["summary"])
    _ROWS_READ.start()
    with beam.Pipeline(options=pipeline_options or PipelineOptions([])) as pipeline:
        _ = (pipeline
             | "Build" >> BuildPackage(config, summary, visible)
             | "Deliver" >> arkea_abs.WriteArkeaPackage(outbound_root))
    run_metrics.record_pipeline(pipeline.result)
    if not arkea_abs.delivered(path):
        raise RuntimeError(f"{vacation_id}: the pipeline ended without delivering {path}")
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
        data = handle.read()
    delivery = {"vacation_id": vacation_id, "path": path,
                "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    delivered_at = ledger.record_delivery(vacation_id, row["state"], json.dumps(delivery))
    _LOG.info("%s delivered to %s (%d bytes, sha256 %s)", vacation_id, path, len(data),
              delivery["sha256"])
    return {**delivery, "delivered_at": delivered_at.isoformat(), "delivered": True}
