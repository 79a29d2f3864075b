"""Validated batches as the rows of the structured zone's tables (``schemas/cql``).

Every row carries the vacation that wrote it: that is what makes a vacation's rows visible all
at once (when the ledger says LOADED), lets a later vacation's correction win, and lets a
rollback find and remove exactly what the vacation wrote.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from transforms import contract
from transforms.validate import ValidatedBatch


def _constant(value: str, rows: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(np.zeros(rows, np.int32), [value]).cast(pa.string())


def months(value_dates: pa.ChunkedArray) -> pa.Array:
    """``yyyymm`` of each date: the month bucket of an account's events."""
    days = value_dates.cast(pa.date32()).to_numpy().astype("datetime64[M]").astype(np.int64)
    return pa.array((days // 12 + 1970) * 100 + days % 12 + 1, pa.int32())


def _utc_micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The Avro timestamp-micros integers as an Arrow timestamp."""
    return column.cast(pa.timestamp("us", tz="UTC"))


def cre_events(batch: ValidatedBatch, vacation_id: str) -> pa.Table:
    records = batch.records
    return pa.table({
        "account_id": records["account_id"], "month": months(records["value_date"]),
        "value_date": records["value_date"], "cre_id": records["cre_id"],
        "vacation_id": _constant(vacation_id, records.num_rows),
        "event_type": records["event_type"], "event_ts": _utc_micros(records["event_ts"]),
        "amount": records["amount"], "currency": records["currency"],
        "counterparty_iban": records["counterparty_iban"], "label": records["label"],
    })


def _lineage(batch: ValidatedBatch) -> dict[str, pa.Array | pa.ChunkedArray]:
    """Where each record came from: its member and the line its record starts on."""
    records = batch.records
    return {"member_name": _constant(batch.member_name, records.num_rows),
            "line_number": records["line_number"]}


def cre_versions(batch: ValidatedBatch, vacation_id: str) -> pa.Table:
    records = batch.records
    return pa.table({
        "cre_id": records["cre_id"], "vacation_id": _constant(vacation_id, records.num_rows),
        "account_id": records["account_id"], "value_date": records["value_date"],
        "currency": records["currency"], **_lineage(batch),
    })


# the buckets of cre_days_by_vacation: all the days of an account in one, so that the delivery
# reads, filters and sums each bucket's days whole, in one place
DAY_BUCKETS = 16


def day_buckets(accounts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The bucket of each account's days (stable across processes and versions: crc32)."""
    return np.fromiter((zlib.crc32(account.encode()) % DAY_BUCKETS
                        for account in accounts.to_pylist()), np.int32, len(accounts))


def cre_days(batch: ValidatedBatch, vacation_id: str) -> pa.Table:
    """The distinct days the batch's events touched: a few rows for many events."""
    days = batch.records.select(["account_id", "value_date"]).group_by(
        ["account_id", "value_date"]).aggregate([])
    return pa.table({
        "vacation_id": _constant(vacation_id, days.num_rows),
        "bucket": pa.array(day_buckets(days["account_id"]), pa.int32()),
        "account_id": days["account_id"], "value_date": days["value_date"],
    })


def _distinct(days: pa.Table) -> pa.Table:
    return days.group_by(days.column_names).aggregate([]).select(days.column_names)


class _DistinctDaysFn(beam.DoFn):
    """The days of a bundle's batches, each once, emitted as the bundle ends.

    Every batch of a vacation touches much the same days (the bench's 1M events: 18,000 days,
    written 290,000 times batch by batch): writing them once per bundle spares the server
    the repeats. The rows are emitted within the bundle, so a retried bundle writes them
    again; past ``flush_rows`` distinct days they are emitted at once, keeping memory flat.
    """

    def __init__(self, vacation_id: str, flush_rows: int = 200_000):
        self._vacation_id = vacation_id
        self._flush_rows = flush_rows

    def start_bundle(self) -> None:
        self._days: list[pa.Table] = []
        self._rows = 0

    def process(self, batch: ValidatedBatch) -> Iterator[pa.Table]:
        days = cre_days(batch, self._vacation_id)
        self._days.append(days)
        self._rows += days.num_rows
        if self._rows > self._flush_rows:  # mostly repeats: keep them once, emit if still many
            self._days = [_distinct(pa.concat_tables(self._days))]
            self._rows = self._days[0].num_rows
            if self._rows > self._flush_rows // 2:
                self._rows = 0
                yield self._days.pop()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        if self._days:
            yield GlobalWindows.windowed_value(_distinct(pa.concat_tables(self._days)))


def gesparam_versions(batch: ValidatedBatch, vacation_id: str) -> pa.Table:
    records = batch.records
    return pa.table({
        "table_code": records["table_code"], "param_key": records["param_key"],
        "valid_from": records["valid_from"],
        "vacation_id": _constant(vacation_id, records.num_rows),
        "param_value": records["param_value"], "label": records["label"],
        "valid_to": records["valid_to"], **_lineage(batch),
    })


def rejects(batch: ValidatedBatch, vacation_id: str) -> pa.Table:
    table = batch.rejects
    return pa.table({"vacation_id": _constant(vacation_id, table.num_rows),
                     **{name: table[name] for name in table.column_names}})


RowsFn = Callable[[ValidatedBatch, str], pa.Table]


def _each(rows: RowsFn) -> Callable[[str], beam.PTransform]:
    """The table's rows of every batch, batch by batch."""
    return lambda vacation_id: beam.Map(rows, vacation_id)


def _days_once_per_bundle(vacation_id: str) -> beam.PTransform:
    return beam.ParDo(_DistinctDaysFn(vacation_id))


# what each data type writes: (step label, table, the transform of its validated batches into
# the table's rows, given the vacation id); rejects of both types share a table
TABLES: dict[str, list[tuple[str, str, Callable[[str], beam.PTransform]]]] = {
    contract.CRE: [("CreEvents", "cre_events_by_account", _each(cre_events)),
                   ("CreVersions", "cre_event_versions", _each(cre_versions)),
                   ("CreDays", "cre_days_by_vacation", _days_once_per_bundle),
                   ("CreRejects", "rejects_by_vacation", _each(rejects))],
    contract.GESPARAM: [("GesparamVersions", "gesparam_versions", _each(gesparam_versions)),
                        ("GesparamRejects", "rejects_by_vacation", _each(rejects))],
}
